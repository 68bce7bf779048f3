// Package turnusage reads Cloudflare Realtime TURN usage from Cloudflare's GraphQL Analytics API
// (dataset callsTurnUsageAdaptiveGroups) and guards a monthly egress budget with it.
//
// It is a sibling of package turn rather than a part of it: the generated GraphQL client
// (gen/analytics, made by genqlient) links genqlient's runtime and gqlparser's error types, and a
// program that only mints ICE credentials should not carry them.
//
// # Authentication and configuration
//
// A Client sends its queries through a turn.Client (NewClient(c)), with turn.Client.Do: the API
// token, the account (c.AccountID()), the base URL, the HTTP client, the logger, retries, backoff,
// the Retry-After cap, the per-attempt timeout and the size cap are that client's, set with turn's
// options, and the environment (CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID) is read by
// turn.NewClient only. The API token needs the "Account Analytics Read" permission on the account
// (Calls Read/Write do not grant it).
//
// # What the numbers mean
//
// Egress is what Cloudflare's TURN servers sent to clients, ingress what they received; Cloudflare
// bills egress ($0.05 per GB after 1,000 GB a month, shared with the SFU at the time of writing).
// The dataset is adaptively sampled, so sums are estimates; Cloudflare advises billing an end user
// with one query per customer and period that returns one sum, which is what Client.Total does.
// Data has whole-minute resolution: ranges are rounded out to whole minutes.
//
// # Errors and retries
//
// Failures of a query the API answered are *Error values that match package turn's classes with
// errors.Is (turn.ErrForbidden, turn.ErrRateLimited, turn.ErrServer, ...), including GraphQL errors
// that Cloudflare answers with HTTP 200, partial data or not. Error.Hint names the permission to
// check. Queries are reads and are retried as turn retries its reads: on 429, 5xx, rate-limit and
// overload GraphQL errors and transport failures, with full-jitter backoff and a Retry-After
// header honoured up to a cap, as the turn.Client is configured.
//
// Some failures are turn's, worded by package turn ("turn: UsageTotal: ..."): a missing API token
// (turn.ErrNoAPIToken), a transport failure or a cancelled context, and a body over the size cap
// (a *turn.APIError matching turn.ErrUnexpectedResponse). Those found by this package before
// anything is sent (ErrNoAccount, a malformed Query) start with "turnusage: " and match
// turn.ErrInvalidArgument.
//
// # Limits
//
// A query may cover at most the dataset's maxDuration and return at most maxPageSize rows; the
// client reads both from the settings node once and splits longer ranges and fuller pages into
// several queries, merging the rows. Cloudflare allows about 300 queries per 5 minutes.
//
// # Testing
//
// pkg/turn/turntest answers the same queries from the bytes its TURN relay really carried.
package turnusage
