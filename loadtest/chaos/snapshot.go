package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	encbin "encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

// Score is what the suite compares of one vehicle-day's DailyScore.
type Score struct {
	Score      float64
	Points     int64
	DistanceKm float64
	Events     int64
	EventsHash string
	Flags      string
}

// Account is one settlement account's balance.
type Account struct {
	Balance, Reserved int64
	Held              int
}

// Entry is one ledger leaf as the comparison sees it.
type Entry struct {
	Kind, ID string
	Delta    int64
}

// Table is one ClickHouse table's row counts.
type Table struct {
	Count, Unique uint64 // count(), uniqExact(its identity)
}

// Snapshot is everything a run produced, read back over public
// interfaces once the run is over.
type Snapshot struct {
	// Summary lines of `minecart run --once` that must not depend on
	// restarts (events sent and the block height are left out).
	Summary []string
	// Scores by vehicle-day ("VIN/date"), and how many committed records
	// each has in the scores topic (exactly one expected).
	Scores      map[string]Score
	ScoreCopies map[string]int
	// Balances by account id (settlement's changelog, last value per key).
	Balances map[string]Account
	// The book: `minecart ledger verify` and the entries of its export.
	TreeSize    uint64
	Root        string
	Blocks      int
	Entries     []Entry
	LedgerError string
	// Committed records per topic.
	Topics map[string]int64
	// Aborted data records per transactional output topic: work that was
	// done and thrown away, then done again (not compared).
	Aborted map[string]int64
	// ClickHouse tables, and the telemetry rows per vehicle-day.
	Tables       map[string]Table
	TelemetryDay map[string]Table
}

// tableIdentity is the column set that identifies one row of each sink
// table: count() must equal uniqExact of it (no row doubled).
var tableIdentity = map[string]string{
	"telemetry":      "event_id",
	"daily_scores":   "vehicle_id, date",
	"ledger_entries": "leaf_index",
	"redemptions":    "redemption_id, status",
}

// countedTopics are read to count their committed records.
var countedTopics = []string{
	pipelines.TopicTelemetryClean, pipelines.TopicDeadLetter, pipelines.TopicLateEvents,
	pipelines.TopicLedgerEntries, pipelines.TopicRewardCredits,
}

// abortedTopics are the transactional outputs whose aborted records
// measure the work redone after faults: one per stage.
var abortedTopics = []string{
	pipelines.TopicTelemetryClean,   // ingest
	pipelines.TopicScoringChangelog, // scoring
	pipelines.TopicLedgerEntries,    // ledger
	pipelines.TopicSettlementLog,    // settlement
}

// Reprocessed formats the aborted records by topic.
func (s *Snapshot) Reprocessed() string {
	var parts []string
	for _, t := range abortedTopics {
		parts = append(parts, fmt.Sprintf("%s %d", t, s.Aborted[t]))
	}
	return strings.Join(parts, ", ")
}

// ReadSnapshot reads a finished run's results from its Kafka and
// ClickHouse (both serving at e) and its data directory (the ledger's
// public key); summary is the run's --once output.
func ReadSnapshot(ctx context.Context, bin, dataDir string, e Endpoints, summary []string) (*Snapshot, error) {
	s := &Snapshot{
		Summary: summaryLines(summary), Scores: map[string]Score{}, ScoreCopies: map[string]int{},
		Balances: map[string]Account{}, Topics: map[string]int64{}, Aborted: map[string]int64{}, Tables: map[string]Table{}, TelemetryDay: map[string]Table{},
	}
	opts, err := e.KafkaOpts()
	if err != nil {
		return nil, err
	}
	serde := schemas.SingleObject()
	sealed, err := newOpener(ctx, opts, dataDir, serde)
	if err != nil {
		return nil, err
	}
	err = ReadTopic(ctx, opts, pipelines.TopicScores, func(r *kgo.Record) error {
		if strings.HasPrefix(string(r.Key), "wm/") {
			return nil
		}
		v, err := sealed.clear(r)
		if err != nil {
			return err
		}
		var ds avro.DailyScore
		if err := serde.Unmarshal(v, &ds); err != nil {
			return fmt.Errorf("scores offset %d: %w", r.Offset, err)
		}
		k := ds.VehicleID + "/" + ds.Date
		s.ScoreCopies[k]++
		s.Scores[k] = Score{Score: ds.Score, Points: ds.Points, DistanceKm: ds.DistanceKm, Events: ds.Events,
			EventsHash: hex.EncodeToString(ds.EventsHash), Flags: strings.Join(ds.Flags, ",")}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Topics[pipelines.TopicScores] = int64(len(s.ScoreCopies))
	accounts := map[string][]byte{}
	err = ReadTopic(ctx, opts, pipelines.TopicSettlementLog, func(r *kgo.Record) error {
		if k := string(r.Key); strings.HasPrefix(k, settlement.AccountKey("")) {
			accounts[k] = r.Value
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, v := range accounts {
		if v == nil {
			continue // deleted
		}
		a, err := settlement.DecodeAccount(v)
		if err != nil {
			return nil, fmt.Errorf("settlement changelog %s: %w", k, err)
		}
		s.Balances[a.ID] = Account{Balance: a.Balance, Reserved: a.Reserved, Held: len(a.Held)}
	}
	for _, t := range countedTopics {
		var n int64
		// A box re-sends a batch it got no answer for (a killed run's
		// fleet resumes at its last acknowledged chunk): its events are
		// dropped by ingest as duplicates, but an event ingest rejected is
		// rejected again, one dead letter per upload. So dead letters are
		// counted once per distinct rejected record (stage, reason, key,
		// value), which an uninterrupted run and a killed one must agree on.
		distinct := map[[sha256.Size]byte]bool{}
		err := ReadTopic(ctx, opts, t, func(r *kgo.Record) error {
			switch {
			case isMark(r):
			case t == pipelines.TopicDeadLetter:
				var dl avro.DeadLetter
				if err := serde.Unmarshal(r.Value, &dl); err != nil {
					return fmt.Errorf("dead letter offset %d: %w", r.Offset, err)
				}
				h := sha256.New()
				for _, f := range [][]byte{[]byte(dl.Stage), []byte(dl.ReasonCode), dl.Key, dl.Value} {
					encbin.Write(h, encbin.BigEndian, uint32(len(f)))
					h.Write(f)
				}
				if k := [sha256.Size]byte(h.Sum(nil)); !distinct[k] {
					distinct[k] = true
					n++
				}
			default:
				n++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.Topics[t] = n
	}
	for _, t := range abortedTopics {
		n, err := CountAborted(ctx, opts, t)
		if err != nil {
			return nil, err
		}
		s.Aborted[t] = n
	}
	if err := s.readLedger(ctx, bin, dataDir, e); err != nil {
		return nil, err
	}
	if err := s.readClickHouse(ctx, e); err != nil {
		return nil, err
	}
	return s, nil
}

// summaryLines keeps the summary's lines from "=== minecart summary ==="
// on, without those that legitimately differ between an interrupted and
// an uninterrupted run: the events the last process sent, the number of
// blocks the credits were cut into, and the how-to lines that name the
// run's paths and addresses.
func summaryLines(out []string) []string {
	var keep []string
	in, cosigned := false, false
	height := regexp.MustCompile(`height \d+, `)
	for _, l := range out {
		if strings.HasPrefix(l, "=== minecart summary ===") {
			in = true
			continue
		}
		// The cosigned checkpoint and its indented note: witness
		// timestamps and signers differ from run to run.
		if strings.HasPrefix(l, "cosigned ") {
			cosigned = true
			continue
		}
		if cosigned && (strings.TrimSpace(l) == "" || strings.HasPrefix(l, " ")) {
			continue
		}
		cosigned = false
		if !in || strings.TrimSpace(l) == "" || strings.HasPrefix(l, "events in") ||
			// Dead letters per upload: compared per distinct record (Topics).
			strings.HasPrefix(l, "rejected") || strings.HasPrefix(l, "analysts:") || strings.HasPrefix(l, "serving until") ||
			// How to log in and query: paths and addresses of this run.
			strings.HasPrefix(l, "owner login") || strings.HasPrefix(strings.TrimSpace(l), "(read-only;") || strings.HasPrefix(l, "operator:") || strings.HasPrefix(l, "web:") || strings.Contains(l, "curl ") {
			continue
		}
		keep = append(keep, height.ReplaceAllString(l, ""))
	}
	return keep
}

var verifyHead = regexp.MustCompile(`head: tree size (\d+), root ([0-9a-f]+)`)

// readLedger runs `minecart ledger verify` and `export` against the
// blocks topic, as anyone holding the public key would.
func (s *Snapshot) readLedger(ctx context.Context, bin, dataDir string, e Endpoints) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), e.ServiceEnv()...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("ledger", "verify", "--pubkey", filepath.Join(dataDir, "ledger.key.pub"))
	if err != nil {
		s.LedgerError = strings.TrimSpace(out)
	} else if m := verifyHead.FindStringSubmatch(out); m != nil {
		s.TreeSize, _ = strconv.ParseUint(m[1], 10, 64)
		s.Root = m[2]
	} else if strings.Contains(out, "0 blocks") {
		s.Root = "(empty book)"
	} else {
		s.LedgerError = "unexpected verify output: " + out
	}
	exp := filepath.Join(dataDir, "ledger.export")
	if out, err := run("ledger", "export", exp); err != nil {
		return fmt.Errorf("minecart ledger export: %w: %s", err, out)
	}
	f, err := os.Open(exp)
	if err != nil {
		return err
	}
	defer f.Close()
	return ledger.ReadExport(bufio.NewReader(f)).Blocks(ctx, func(r ledger.Record) error {
		if r.Block == nil {
			return fmt.Errorf("export record %d: %w", r.Offset, r.Err)
		}
		b := r.Block
		s.Blocks++
		for _, raw := range b.Entries {
			en, err := ledger.DecodeEntry(raw)
			if err != nil {
				return fmt.Errorf("block %d: %w", b.Header.Height, err)
			}
			s.Entries = append(s.Entries, Entry{Kind: en.Kind.String(), ID: en.ID, Delta: en.Delta()})
		}
		return nil
	})
}

func (s *Snapshot) readClickHouse(ctx context.Context, e Endpoints) error {
	for t, id := range tableIdentity {
		out, err := Query(ctx, e, fmt.Sprintf("SELECT count(), uniqExact(%s) FROM %s FORMAT TSV", id, t))
		if err != nil {
			return err
		}
		var tb Table
		if _, err := fmt.Sscan(out, &tb.Count, &tb.Unique); err != nil {
			return fmt.Errorf("%s counts %q: %w", t, out, err)
		}
		s.Tables[t] = tb
	}
	out, err := Query(ctx, e, "SELECT vehicle_id, toDate(time), count(), uniqExact(event_id) FROM telemetry GROUP BY 1, 2 FORMAT TSV")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			continue
		}
		var tb Table
		tb.Count, _ = strconv.ParseUint(f[2], 10, 64)
		tb.Unique, _ = strconv.ParseUint(f[3], 10, 64)
		s.TelemetryDay[f[0]+"/"+f[1]] = tb
	}
	return nil
}

// Query runs one query over ClickHouse's HTTP interface.
func Query(ctx context.Context, e Endpoints, q string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.ClickHouse+"/?"+url.Values{"database": {"default"}}.Encode(), strings.NewReader(q))
	if err != nil {
		return "", err
	}
	e.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("clickhouse %s: %w", e.ClickHouse, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse: %s: %s (query %q)", resp.Status, bytes.TrimSpace(b), q)
	}
	return string(b), nil
}

// ReadTopic calls fn for every committed record of topic, read from the
// start with read_committed up to the high watermarks it had when the
// read began. A partition is done once a record or marker at or past its
// end - 1 was seen, or, when its tail is not readable (a transaction left
// open without a marker), once nothing arrived for a quiet period: the
// runs are over when the suite reads, so nothing else can come.
func ReadTopic(ctx context.Context, opts []kgo.Opt, topic string, fn func(*kgo.Record) error) error {
	return readTopic(ctx, opts, topic, kgo.ReadCommitted(), fn)
}

// CountAborted counts the data records of topic that no read_committed
// reader sees: the output of transactions that were aborted (a process
// killed with its transaction open, a batch retried), that is work done
// again.
func CountAborted(ctx context.Context, opts []kgo.Opt, topic string) (int64, error) {
	var all, committed int64
	if err := readTopic(ctx, opts, topic, kgo.ReadUncommitted(), func(*kgo.Record) error { all++; return nil }); err != nil {
		return 0, err
	}
	if err := ReadTopic(ctx, opts, topic, func(*kgo.Record) error { committed++; return nil }); err != nil {
		return 0, err
	}
	return all - committed, nil
}

func readTopic(ctx context.Context, opts []kgo.Opt, topic string, iso kgo.IsolationLevel, fn func(*kgo.Record) error) error {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	if len(pending) == 0 {
		return nil
	}
	// Control records (commit and abort markers) are kept so that a
	// partition ending with one is seen to end; fn never gets them.
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.KeepControlRecords(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Quiet: 3 s once records came, 30 s for the first ones (a loaded
	// broker may take a while to answer the first fetch).
	seen := false
	for len(pending) > 0 {
		quiet := 30 * time.Second
		if seen {
			quiet = 3 * time.Second
		}
		pctx, cancel := context.WithTimeout(ctx, quiet)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s: %w", topic, ctx.Err())
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			return nil // nothing more is readable
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen = true
			end, ok := pending[r.Partition]
			if !ok || ferr != nil {
				return
			}
			if r.Offset < end && !r.Attrs.IsControl() {
				ferr = fn(r)
			}
			if r.Offset >= end-1 {
				delete(pending, r.Partition)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// isMark tells a gateway's time mark on the telemetry topics (not an
// event: how many there are depends on the wall clock) and the ledger's
// checkpoint records in the entries topic (not an entry), which the
// counts leave out.
func isMark(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == pipelines.HeaderRecord && string(h.Value) == pipelines.RecordLedgerCheckpoint {
			// The publisher's cosigned checkpoint among the entries: how
			// many there are depends on how the run was cut into
			// publications, which a killed run and an uninterrupted one
			// need not share.
			return true
		}
		if h.Key == pipelines.HeaderKind && string(h.Value) == pipelines.KindMark {
			return true
		}
	}
	return strings.HasPrefix(string(r.Key), pipelines.MarkKeyPrefix)
}

// keys returns m's keys sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
