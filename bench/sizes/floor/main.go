// Command floor creates a TURN key with nothing but net/http and encoding/json: the size floor.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

func main() {
	body, _ := json.Marshal(map[string]string{"name": "size"})
	req, err := http.NewRequest(http.MethodPost,
		"https://api.cloudflare.com/client/v4/accounts/"+os.Getenv("CLOUDFLARE_ACCOUNT_ID")+"/calls/turn_keys", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv("CLOUDFLARE_API_TOKEN"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	var out struct {
		Success bool `json:"success"`
		Result  struct {
			UID string `json:"uid"`
			Key string `json:"key"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.Success {
		fmt.Fprintln(os.Stderr, "create failed:", resp.Status, err)
		os.Exit(1)
	}
	fmt.Println(out.Result.UID)
}
