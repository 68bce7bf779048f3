package turnusage_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cfturn/cfturn/pkg/turn/turntest"
	"github.com/cfturn/cfturn/pkg/turn/turnusage"
)

// Usage per customer, and one customer's billing total, from the fake's analytics.
func Example() {
	srv := turntest.NewServer()
	defer srv.Close()
	const keyID = "0123456789abcdef0123456789abcdef"
	now := time.Now()
	// What the fake's relay would have counted for two customers' credentials.
	srv.RecordUsage(now.Add(-50*time.Minute), keyID, "user-1", "customer-42", 3*turnusage.GB, 40*turnusage.MB)
	srv.RecordUsage(now.Add(-20*time.Minute), keyID, "user-2", "customer-7", 500*turnusage.MB, 5*turnusage.MB)

	ctx := context.Background()
	// In production: turn.NewClient() reads CLOUDFLARE_API_TOKEN (it needs Account Analytics
	// Read) and CLOUDFLARE_ACCOUNT_ID; srv.Client() is a turn.Client pointed at the fake.
	c, err := turnusage.NewClient(srv.Client())
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := c.Usage(ctx, turnusage.Query{From: now.Add(-time.Hour), To: now, By: []turnusage.Dimension{turnusage.ByIdentifier}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rep.Rows {
		fmt.Printf("%-12s egress %s, ingress %s\n", r.CustomIdentifier, turnusage.FormatBytes(r.EgressBytes), turnusage.FormatBytes(r.IngressBytes))
	}
	fmt.Printf("estimated cost: $%.2f\n", turnusage.EstimateCost(rep.Totals.EgressBytes, turnusage.DefaultFreeTierBytes, turnusage.DefaultPricePerGB))

	// Bill one customer with one query that returns one sum, as Cloudflare advises.
	bill, err := c.Total(ctx, turnusage.Query{From: now.Add(-time.Hour), To: now, CustomIdentifiers: []string{"customer-42"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("customer-42 egress bytes:", bill.EgressBytes)
	// Output:
	// customer-42  egress 3.00 GB, ingress 40.0 MB
	// customer-7   egress 500 MB, ingress 5.00 MB
	// estimated cost: $0.00
	// customer-42 egress bytes: 3000000000
}

// A spend guard: month-to-date egress of a key against a monthly budget.
func ExampleGuard() {
	srv := turntest.NewServer()
	defer srv.Close()
	const keyID = "0123456789abcdef0123456789abcdef"
	srv.RecordUsage(time.Now(), keyID, "user-1", "customer-42", 950*turnusage.GB, 0)

	c, err := turnusage.NewClient(srv.Client())
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := turnusage.NewGuard(turnusage.GuardConfig{Client: c, KeyID: keyID, Budget: 900 * turnusage.GB})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("before the first poll:", g.Status(), g.OverBudget())
	// A server runs g.Run(ctx) in a goroutine; here one poll is enough.
	if err := g.Poll(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	st := g.Stats()
	fmt.Println("after it:", st.Status, g.OverBudget(), turnusage.FormatBytes(st.EgressBytes), "of", turnusage.FormatBytes(st.Budget))
	// Output:
	// before the first poll: unknown false
	// after it: over-budget true 950 GB of 900 GB
}
