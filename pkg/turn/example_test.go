package turn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

func ExampleNewClient() {
	// In production the token and account come from CLOUDFLARE_API_TOKEN and
	// CLOUDFLARE_ACCOUNT_ID, or from options:
	client, err := turn.NewClient(
		turn.WithAPIToken("an-api-token-with-calls-write"),
		turn.WithAccountID("023e105f4ecef8ad9ca31a8372d0c353"),
		turn.WithUserAgent("myapp/1.0"),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.AccountID())
	// Output: 023e105f4ecef8ad9ca31a8372d0c353
}

func ExampleClient_CreateKey() {
	srv := turntest.NewServer() // an offline fake of Cloudflare; use turn.NewClient in production
	defer srv.Close()
	client := srv.Client()

	key, err := client.CreateKey(context.Background(), turn.CreateKeyParams{Name: "video-calls"})
	if err != nil {
		log.Fatal(err)
	}
	// The secret is shown only this once: store it now. It prints redacted.
	fmt.Println(key.Name, len(key.ID), len(key.Secret.Reveal()))
	fmt.Println(key.Secret)
	// Output:
	// video-calls 32 64
	// [REDACTED]
}

func ExampleClient_ListKeys() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	for _, name := range []string{"staging", "production"} {
		if _, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: name}); err != nil {
			log.Fatal(err)
		}
	}

	keys, err := client.ListKeys(ctx, turn.ListKeysParams{})
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range keys {
		fmt.Println(k.Name)
	}
	// Output:
	// staging
	// production
}

func ExampleClient_AllKeys() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: "only"}); err != nil {
		log.Fatal(err)
	}

	for k, err := range client.AllKeys(ctx, turn.ListKeysParams{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(k.Name)
	}
	// Output: only
}

func ExampleClient_GenerateICEServers() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	key, err := client.CreateKey(ctx, turn.CreateKeyParams{Name: "ice"})
	if err != nil {
		log.Fatal(err)
	}

	ice, err := client.GenerateICEServers(ctx, turn.GenerateICEServersParams{
		KeyID:     key.ID,
		KeySecret: key.Secret,
		TTL:       24 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	// Send json.Marshal(ice) to the browser: it is the RTCConfiguration for new RTCPeerConnection.
	body, err := json.Marshal(ice)
	if err != nil {
		log.Fatal(err)
	}
	var config struct {
		ICEServers []map[string]any `json:"iceServers"`
	}
	json.Unmarshal(body, &config)
	turnEntry := config.ICEServers[1]
	fmt.Println(len(config.ICEServers), turnEntry["username"] != nil, turnEntry["credential"] != nil)
	// Printing it never shows the credentials.
	fmt.Println(ice.Servers[1].Credential)
	// Output:
	// 2 true true
	// [REDACTED]
}

func ExampleAPIError() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()

	_, err := client.GetKey(context.Background(), turn.KeyParams{KeyID: "00000000000000000000000000000000"})
	if errors.Is(err, turn.ErrNotFound) {
		fmt.Println("no such key")
	}
	var apiErr *turn.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Errors[0].Code, apiErr.RayID != "")
	}
	// Output:
	// no such key
	// 404 10006 true
}

func ExampleErrInvalidArgument() {
	client, err := turn.NewClient(turn.WithGetenv(nil))
	if err != nil {
		log.Fatal(err)
	}
	// A secret read with os.ReadFile keeps the file's last newline. Nothing is sent: the
	// arguments are checked first.
	secret := strings.Repeat("0", 64) + "\n"
	_, err = client.GenerateICEServers(context.Background(), turn.GenerateICEServersParams{
		KeyID: "2a95132c15732412d22c1476fa83f27a", KeySecret: turn.NewSecret(secret), TTL: time.Hour,
	})
	fmt.Println(errors.Is(err, turn.ErrInvalidArgument))
	fmt.Println(err)
	// Output:
	// true
	// turn: generate ICE servers: invalid argument: key secret ends with a newline, so it was probably read from a file or with $(cat ...): trim it
}

func ExampleClient_Clone() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()

	// A copy that never retries, for a caller that answers its own callers with a Retry-After.
	once, err := client.Clone(turn.WithRetry(0))
	if err != nil {
		log.Fatal(err)
	}
	srv.InjectFault(turntest.Fault{Operation: turntest.OpListTurnKeys, Status: 503, Count: 2})
	_, err = once.ListKeys(context.Background(), turn.ListKeysParams{})
	fmt.Println(errors.Is(err, turn.ErrServer), srv.Requests()["listTurnKeys"])
	// Output: true 1
}

func ExampleGenerateICEServersParams_Validate() {
	p := turn.GenerateICEServersParams{KeyID: "2a95132c15732412d22c1476fa83f27a", KeySecret: turn.NewSecret("short"), TTL: time.Hour}
	err := p.Validate() // nothing is sent: a server can refuse a bad request without an upstream call
	fmt.Println(errors.Is(err, turn.ErrInvalidArgument))
	// Output: true
}

// Do reaches another endpoint of the Cloudflare API with the client's token, limits and retries:
// here a GraphQL Analytics query, as package turnusage sends its own.
func ExampleClient_Do() {
	srv := turntest.NewServer()
	defer srv.Close()
	client := srv.Client()

	query, err := json.Marshal(map[string]any{
		"query":     `query($acct: string!) { viewer { accounts(filter: {accountTag: $acct}) { settings { callsTurnUsageAdaptiveGroups { maxPageSize } } } } }`,
		"variables": map[string]string{"acct": client.AccountID()},
	})
	if err != nil {
		log.Fatal(err)
	}
	var answer struct {
		Data struct {
			Viewer struct {
				Accounts []struct {
					Settings struct {
						Dataset struct {
							MaxPageSize int `json:"maxPageSize"`
						} `json:"callsTurnUsageAdaptiveGroups"`
					} `json:"settings"`
				} `json:"accounts"`
			} `json:"viewer"`
		} `json:"data"`
	}
	srv.InjectFault(turntest.Fault{Operation: turntest.OpGraphQL, Status: 503, Count: 1})
	err = client.Do(context.Background(), turn.DoParams{Name: "settings", Method: http.MethodPost, Path: "graphql", Body: query, Idempotent: true}, func(r *turn.Response) error {
		switch {
		case r.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("settings: %w", turn.ErrRateLimited) // retried, after Retry-After if there is one
		case r.StatusCode >= 500:
			return fmt.Errorf("settings: %d: %w", r.StatusCode, turn.ErrServer) // retried
		case r.StatusCode != http.StatusOK:
			return fmt.Errorf("settings: %d", r.StatusCode) // returned at once
		}
		fmt.Println("answered on attempt", r.Attempt)
		return json.Unmarshal(r.Body, &answer)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("max page size:", answer.Data.Viewer.Accounts[0].Settings.Dataset.MaxPageSize)
	// Output:
	// answered on attempt 2
	// max page size: 10000
}
