package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/ids"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/pseudonym/follow"
	"github.com/minecart/minecart/services/settlement"
	settleapi "github.com/minecart/minecart/services/settlement/api"
	"github.com/minecart/minecart/services/sink"
)

// `minecart accounts erase`: the right to erasure (PIPL art. 47, GDPR
// art. 17) for one owner (docs/ledger.md, "Erasure"):
//
//  1. for the owner's account and each vehicle bound to it that has a
//     pseudonym key, an erasure request goes to the ledger, which appends
//     a kind 8 entry naming the pseudonym (never the id) and, in the same
//     transaction, tombstones the key on the pseudonyms topic and drops
//     its own copy; the command waits until the topic shows every key
//     gone. The leaves stay, signed and verifiable, but link to no one;
//  2. the vehicles are unbound and the owner's credential removed;
//  3. every ClickHouse table loses the rows that name a vehicle or the
//     account (ALTER TABLE ... DELETE, waited for).

// eraseConfig is what an erasure needs besides the Kafka admin.
type eraseConfig struct {
	Owner, Reason string
	Seal          *pseudonym.SealKey
	ClickHouseDSN string // empty: ClickHouse is left alone
	Timeout       time.Duration
	Out           io.Writer
	Report        string // a file for the JSON ErasureReport; empty: printed only
}

// erase runs an erasure; it is idempotent (a second run finds no keys and
// records one more erasure of the account). It ends with the erasure's
// record (ErasureReport): what it cleared, and which topics it could not
// reach and when their retention deletes what they hold.
func erase(ctx context.Context, a *admin, c eraseConfig) error {
	rep, err := eraseOwner(ctx, a, c)
	if err != nil {
		return err
	}
	if rep.NotReached, err = topicExpiries(ctx, a.cfg, rep.ErasedAt); err != nil {
		return err
	}
	rep.print(c.Out)
	if c.Report != "" {
		if err := rep.write(c.Report); err != nil {
			return fmt.Errorf("erasure report: %w", err)
		}
		fmt.Fprintf(c.Out, "erasure report written to %s\n", c.Report)
	}
	return nil
}

func eraseOwner(ctx context.Context, a *admin, c eraseConfig) (*ErasureReport, error) {
	if err := ids.Owner(c.Owner); err != nil {
		return nil, err
	}
	rep := &ErasureReport{Owner: c.Owner, ErasedAt: time.Now().UTC().Truncate(time.Millisecond), Reason: c.Reason}
	if c.Reason == "" {
		c.Reason = "erasure requested by the owner"
	}
	rep.Reason = c.Reason
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	// An open hold must settle first: its post, void or expiry names the
	// account, and without the key the ledger would make a new one.
	if err := checkNoOpenHolds(ctx, a, c.Owner); err != nil {
		return nil, err
	}
	// The ends of the sink's topics as the erasure begins (see
	// sinkWait.wait).
	var sw *sinkWait
	if c.ClickHouseDSN != "" {
		var err error
		if sw, err = startSinkWait(ctx, a.cfg); err != nil {
			return nil, err
		}
		defer sw.close()
	}
	bindings, err := a.listBindings(ctx, c.Owner)
	if err != nil {
		return nil, err
	}
	vehicles := make([]string, 0, len(bindings))
	for _, b := range bindings {
		vehicles = append(vehicles, b.VehicleID)
	}
	dir, err := follow.Snapshot(ctx, a.cfg, c.Seal, nil)
	if err != nil {
		return nil, err
	}
	type ident struct {
		kind pseudonym.Kind
		id   string
	}
	idents := []ident{{pseudonym.Account, c.Owner}}
	for _, v := range vehicles {
		idents = append(idents, ident{pseudonym.Vehicle, v})
	}
	var erased []string
	now := rep.ErasedAt
	for _, id := range idents {
		o, ok := dir.Lookup(id.kind, id.id)
		if !ok && id.kind == pseudonym.Vehicle {
			continue // no key: no leaf names it
		}
		var nonce [12]byte
		_, _ = rand.Read(nonce[:])
		reqID := "erasure/" + hex.EncodeToString(nonce[:])
		r := avro.DebitRequest{RequestID: reqID, Kind: avro.RequestKindErasure, Reason: c.Reason, RequestedAt: now}
		if id.kind == pseudonym.Account {
			r.Account = id.id
		} else {
			r.VehicleID = id.id
		}
		v, err := a.serde.Marshal(&r)
		if err != nil {
			return nil, err
		}
		if err := a.producer.ProduceSync(ctx, pipelines.TopicLedgerRequests, []byte(reqID), v); err != nil {
			return nil, fmt.Errorf("erasure request: %w", err)
		}
		if ok {
			erased = append(erased, o.Pseudonym)
		}
	}
	// The ledger tombstones the keys in the transaction of the erasure
	// entries: wait until the topic has none of them.
	wctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	for {
		dir, err := follow.Snapshot(wctx, a.cfg, c.Seal, nil)
		if err != nil {
			return nil, fmt.Errorf("waiting for the ledger to erase the keys: %w", err)
		}
		left := slices.DeleteFunc(slices.Clone(erased), func(p string) bool { _, ok := dir.Open(p); return !ok })
		_, acct := dir.Lookup(pseudonym.Account, c.Owner)
		if len(left) == 0 && !acct {
			break
		}
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("the ledger has not erased %d keys yet (is it running?): %w", len(left), wctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	rep.KeysDestroyed = erased
	fmt.Fprintf(c.Out, "owner %s: %d pseudonym keys destroyed (%s)\n", c.Owner, len(erased), strings.Join(erased, " "))
	for _, v := range vehicles {
		if err := settleapi.UnbindVehicle(ctx, a.producer, v); err != nil {
			return nil, err
		}
	}
	if err := auth.Remove(ctx, a.producer, auth.RoleOwner, c.Owner); err != nil {
		return nil, err
	}
	rep.VehiclesUnbound, rep.CredentialRemoved = vehicles, true
	fmt.Fprintf(c.Out, "owner %s: %d vehicles unbound, credential removed\n", c.Owner, len(vehicles))
	if c.ClickHouseDSN == "" {
		fmt.Fprintln(c.Out, "ClickHouse: no --clickhouse-dsn, nothing deleted")
		return rep, nil
	}
	// What was written before the erasure must be in ClickHouse before the
	// delete, or a lagging sink would store it after.
	if err := sw.wait(ctx, c.Timeout); err != nil {
		return nil, err
	}
	conn, err := sink.Open(c.ClickHouseDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	names := append([]string{c.Owner}, vehicles...)
	if rep.ClickHouseRows, err = CountNaming(ctx, conn, names); err != nil {
		return nil, err
	}
	n, err := EraseFromClickHouse(ctx, conn, names)
	if err != nil {
		return nil, err
	}
	var rows uint64
	for _, k := range rep.ClickHouseRows {
		rows += k
	}
	fmt.Fprintf(c.Out, "ClickHouse: %d rows naming the owner or its vehicles deleted (%d tables searched)\n", rows, n)
	return rep, nil
}

// ErrOpenHolds refuses an erasure while the owner has open holds.
var ErrOpenHolds = errors.New("open holds: erase again once they settle")

// checkNoOpenHolds reads settlement's book (its changelog, to the end)
// and refuses the erasure of owner while it has a redemption PENDING or
// CONFIRMED or an open pending transfer (settlement.Book.OpenHolds),
// naming each (docs/ledger.md, "Erasure with an open hold").
func checkNoOpenHolds(ctx context.Context, a *admin, owner string) error {
	t, err := a.table(ctx, pipelines.TopicSettlementLog)
	if err != nil {
		return err
	}
	defer t.Close()
	b, err := settlement.NewBook(settlement.DefaultPolicy())
	if err != nil {
		return err
	}
	var errs []error
	t.Range(func(key string, value []byte) bool {
		if err := b.Restore(key, value); err != nil {
			errs = append(errs, err)
		}
		return true
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reading settlement's book: %w", err)
	}
	b.Restored()
	holds := b.OpenHolds(owner)
	if len(holds) == 0 {
		return nil
	}
	var lines []string
	for _, h := range holds {
		var l string
		if h.Redemption != "" {
			l = fmt.Sprintf("redemption %s for partner %s, %d points, %s", h.Redemption, h.Partner, h.Points, h.Status)
			if h.Transfer != "" {
				l += ", hold " + h.Transfer
			}
		} else {
			l = fmt.Sprintf("pending transfer %s, %d points", h.Transfer, h.Points)
		}
		if h.ExpiresAtMs > 0 {
			l += ", expires " + time.UnixMilli(h.ExpiresAtMs).UTC().Format(time.RFC3339) + " (ledger time)"
		}
		lines = append(lines, l)
	}
	return fmt.Errorf("owner %s has %d open holds that must settle (fulfilled, failed, voided or expired) before the erasure: %s: %w",
		owner, len(holds), strings.Join(lines, "; "), ErrOpenHolds)
}

// idPattern is the regular expression that finds id as a whole token: not
// preceded or followed by an id byte ([A-Za-z0-9._-]).
func idPattern(id string) string {
	return `(^|[^A-Za-z0-9._-])` + regexp.QuoteMeta(id) + `($|[^A-Za-z0-9._-])`
}

// TokenMatch is the ClickHouse condition "some string column of the
// table names one of the ids" over columns cols (parameters p0, p1, ...).
func tokenMatch(cols []string, n int) string {
	var or []string
	for _, c := range cols {
		for i := range n {
			or = append(or, fmt.Sprintf("match(toString(`%s`), {p%d:String})", c, i))
		}
	}
	return strings.Join(or, " OR ")
}

// EraseFromClickHouse deletes, from every MergeTree table of the current
// database, the rows in which a string column names one of the ids as a
// whole token (vehicle_id = id, a score id "<id>/<date>", a dead letter's
// payload, ...), and waits for the mutations. It returns how many tables
// had string columns.
func EraseFromClickHouse(ctx context.Context, conn driver.Conn, idList []string) (int, error) {
	tables, err := stringColumns(ctx, conn)
	if err != nil {
		return 0, err
	}
	params := clickhouse.Parameters{}
	for i, id := range idList {
		params[fmt.Sprintf("p%d", i)] = idPattern(id)
	}
	pctx := clickhouse.Context(ctx, clickhouse.WithParameters(params))
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		q := fmt.Sprintf("ALTER TABLE `%s` DELETE WHERE %s", t, tokenMatch(tables[t], len(idList)))
		if err := conn.Exec(pctx, q); err != nil {
			return 0, fmt.Errorf("delete from %s: %w", t, err)
		}
	}
	// Mutations run in the background: wait for them.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var left uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = currentDatabase() AND NOT is_done`).Scan(&left); err != nil {
			return 0, fmt.Errorf("mutations: %w", err)
		}
		if left == 0 {
			return len(names), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("ClickHouse mutations still running after 5 minutes")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CountNaming counts the rows of every MergeTree table that name one of
// the ids as a whole token (what EraseFromClickHouse deletes).
func CountNaming(ctx context.Context, conn driver.Conn, idList []string) (map[string]uint64, error) {
	tables, err := stringColumns(ctx, conn)
	if err != nil {
		return nil, err
	}
	params := clickhouse.Parameters{}
	for i, id := range idList {
		params[fmt.Sprintf("p%d", i)] = idPattern(id)
	}
	pctx := clickhouse.Context(ctx, clickhouse.WithParameters(params))
	out := map[string]uint64{}
	for t, cols := range tables {
		var n uint64
		if err := conn.QueryRow(pctx, fmt.Sprintf("SELECT count() FROM `%s` WHERE %s", t, tokenMatch(cols, len(idList)))).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		if n > 0 {
			out[t] = n
		}
	}
	return out, nil
}

// stringColumns lists the string columns of every MergeTree table of the
// current database (arrays and maps aside).
func stringColumns(ctx context.Context, conn driver.Conn) (map[string][]string, error) {
	// Tables with data of their own (MergeTree here; views have none).
	// The engine column is not named: the server's guard refuses the word
	// from anyone but an admin.
	rows, err := conn.Query(ctx, "SELECT c.table, c.name FROM system.columns AS c "+
		"INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table "+
		"WHERE c.database = currentDatabase() AND notEmpty(t.data_paths) AND empty(t.as_select) "+
		"AND c.type LIKE '%String%' AND c.type NOT LIKE 'Array%' AND c.type NOT LIKE 'Map%' "+
		"ORDER BY c.table, c.name")
	if err != nil {
		return nil, fmt.Errorf("string columns: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		out[t] = append(out[t], c)
	}
	return out, rows.Err()
}
