package campaign_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/campaign"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// The three worked campaigns of docs/campaigns.md.
var (
	weekendShanghai = campaign.Definition{
		Partner: "acme-fuel", Name: "weekend-shanghai", Title: "Double points on weekends in Shanghai",
		Rule:  `weekday >= 6 && score >= 80.0 && region in ["N30E121", "N31E121"] ? points : 0`,
		Start: "2027-01-01", End: "2027-03-31", Budget: 1_000_000, Cap: 500,
	}
	welcome = campaign.Definition{
		Partner: "acme-fuel", Name: "welcome", Title: "50 points a day for a new driver's first week",
		Rule:  `tenure_days < 7 && size(flags) == 0 ? 50 : 0`,
		Start: "2027-01-01", End: "2027-12-31", Budget: 20_000, Cap: 50,
	}
	safeKm = campaign.Definition{
		Partner: "insure-co", Name: "safe-km", Title: "A point per 10 km driven without harsh braking or speeding",
		Rule:  `harsh_brake == 0 && speeding_s == 0 ? int(distance_km) / 10 : 0`,
		Start: "2027-01-01", End: "2027-01-31", Budget: 9, Cap: 9,
	}
)

// days are the vehicle-days of the worked examples.
var days = []struct {
	vehicle string
	in      campaign.Inputs
}{
	{"v1", campaign.Inputs{Points: 120, Score: 86.5, DistanceKm: 42.7, Date: "2027-01-02", TZ: "Asia/Shanghai", Region: "N31E121", TenureDays: 30}},
	{"v2", campaign.Inputs{Points: 90, Score: 79.9, DistanceKm: 55.0, Date: "2027-01-02", TZ: "Asia/Shanghai", Region: "N31E121", TenureDays: 3, HarshBrake: 2}},
	{"v3", campaign.Inputs{Points: 150, Score: 91.0, DistanceKm: 88.1, Date: "2027-01-02", TZ: "Asia/Shanghai", Region: "N39E116", TenureDays: 0}},
	{"v4", campaign.Inputs{Points: 60, Score: 95.0, DistanceKm: 23.9, Date: "2027-01-04", TZ: "Asia/Shanghai", Region: "N30E121", TenureDays: 5, Flags: []string{"too_regular"}}},
	{"v5", campaign.Inputs{Points: 200, Score: 88.0, DistanceKm: 130.0, Date: "2027-01-03", TZ: "Asia/Shanghai", Region: "N30E121", TenureDays: 6, SpeedingS: 40}},
}

func init() {
	for i := range days {
		d, _ := campaign.ParseDate(days[i].in.Date)
		days[i].in.Weekday = campaign.Weekday(d)
	}
}

// TestWorkedCampaigns checks the numbers of docs/campaigns.md: what each
// rule asks for on each day, and what the budget lets each campaign pay.
func TestWorkedCampaigns(t *testing.T) {
	b, err := os.ReadFile("../../docs/campaigns.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	want := map[string]struct {
		requested []int64 // per day, in the order of days
		paid      int64
	}{
		"acme-fuel/weekend-shanghai": {[]int64{120, 0, 0, 0, 200}, 320},
		"acme-fuel/welcome":          {[]int64{0, 50, 50, 0, 50}, 150},
		"insure-co/safe-km":          {[]int64{4, 0, 8, 2, 0}, 9},
	}
	for _, d := range []campaign.Definition{weekendShanghai, welcome, safeKm} {
		r, err := campaign.Compile(d)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, day := range days {
			n, err := r.Bonus(&day.in)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
		}
		w := want[d.ID()]
		if fmt.Sprint(got) != fmt.Sprint(w.requested) {
			t.Errorf("%s: requested %v, want %v", d.ID(), got, w.requested)
		}
		paid := int64(0)
		out := pay(t, r)
		for _, b := range out {
			paid += b.Amount
		}
		if paid != w.paid {
			t.Errorf("%s: paid %d, want %d", d.ID(), paid, w.paid)
		}
		t.Logf("%s: requested %v, paid %d in order %v; static cost %d..%d", d.ID(), got, paid, vehicles(out), r.Estimate.Min, r.Estimate.Max)
		// docs/campaigns.md quotes these numbers.
		row := fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d |", d.ID(), got[0], got[1], got[2], got[3], got[4], paid)
		if !strings.Contains(doc, row) || !strings.Contains(doc, d.Rule) {
			t.Errorf("docs/campaigns.md lacks the row %q or the rule %q", row, d.Rule)
		}
	}
	// safe-km's budget of 9 runs out on 2027-01-02: in the fixed order
	// (SHA-256 of campaign and vehicle) v3 gets 8, then v1 the remaining 1
	// of its 4; on 2027-01-04 v4 gets nothing.
	r, _ := campaign.Compile(safeKm)
	if s := amounts(pay(t, r)); s != "v3:8/8 v1:1/4" {
		t.Errorf("safe-km allocation %s, want v3:8/8 v1:1/4", s)
	}
}

// pay is what the ledger does with the worked days: each credit's
// candidate, then window end (date) by window end, the budget in the
// fixed order.
func pay(t *testing.T, r *campaign.Rule) []ledger.Entry {
	byEnd := map[int64][]ledger.Entry{}
	for i, day := range days {
		end, _ := campaign.ParseDate(day.in.Date)
		credit := ledger.Entry{Kind: ledger.KindCredit, VehicleID: day.vehicle, Date: day.in.Date, WindowEndMs: (end + 1) * 86_400_000}
		c, ok, err := r.Candidate(&credit, uint64(i), []byte{byte(i)}, &day.in)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			byEnd[credit.WindowEndMs] = append(byEnd[credit.WindowEndMs], c)
		}
	}
	var out []ledger.Entry
	spent := int64(0)
	for _, end := range slices.Sorted(maps.Keys(byEnd)) {
		for _, b := range campaign.Allocate(byEnd[end], func(string) int64 { return r.Def.Budget - spent }) {
			spent += b.Amount
			out = append(out, b)
		}
	}
	return out
}

func vehicles(es []ledger.Entry) []string {
	var v []string
	for _, e := range es {
		v = append(v, e.VehicleID)
	}
	return v
}

func amounts(es []ledger.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("%s:%d/%d", e.VehicleID, e.Amount, e.Requested))
	}
	return strings.Join(s, " ")
}

func TestCompileRefuses(t *testing.T) {
	base := welcome
	long := strings.Repeat("points + ", 500) + "points"
	for name, tc := range map[string]struct {
		mod  func(d *campaign.Definition)
		want error
	}{
		"syntax":        {func(d *campaign.Definition) { d.Rule = "points +" }, campaign.ErrRule},
		"unknown var":   {func(d *campaign.Definition) { d.Rule = "account_balance * 2" }, campaign.ErrRule},
		"double result": {func(d *campaign.Definition) { d.Rule = "score * 2.0" }, campaign.ErrRule},
		"bool result":   {func(d *campaign.Definition) { d.Rule = "score > 80.0" }, campaign.ErrRule},
		"clock":         {func(d *campaign.Definition) { d.Rule = `timestamp("2027-01-01T00:00:00Z").getDayOfWeek() > 0 ? 1 : 0` }, campaign.ErrRule},
		"duration":      {func(d *campaign.Definition) { d.Rule = `int(duration("1h").getSeconds())` }, campaign.ErrRule},
		"dyn":           {func(d *campaign.Definition) { d.Rule = `int(dyn(points))` }, campaign.ErrRule},
		"cost": {func(d *campaign.Definition) {
			d.Rule = `flags.all(f, flags.all(g, flags.all(h, f + g + h != "x"))) ? 1 : 0`
		}, campaign.ErrRule},
		"too long":     {func(d *campaign.Definition) { d.Rule = long }, campaign.ErrDefinition},
		"no cap":       {func(d *campaign.Definition) { d.Cap = 0 }, campaign.ErrDefinition},
		"cap > max":    {func(d *campaign.Definition) { d.Cap = campaign.MaxCap + 1 }, campaign.ErrDefinition},
		"cap > budget": {func(d *campaign.Definition) { d.Budget = 10; d.Cap = 11 }, campaign.ErrDefinition},
		"no budget":    {func(d *campaign.Definition) { d.Budget = 0 }, campaign.ErrDefinition},
		"budget > max": {func(d *campaign.Definition) { d.Budget = campaign.MaxBudget + 1 }, campaign.ErrDefinition},
		"end < start":  {func(d *campaign.Definition) { d.End = "2026-12-31" }, campaign.ErrDefinition},
		"over a year":  {func(d *campaign.Definition) { d.End = "2028-01-02" }, campaign.ErrDefinition},
		"bad date":     {func(d *campaign.Definition) { d.Start = "2027-1-1" }, campaign.ErrDefinition},
		"bad name":     {func(d *campaign.Definition) { d.Name = "We/lcome" }, campaign.ErrDefinition},
		"bad partner":  {func(d *campaign.Definition) { d.Partner = "a/b" }, campaign.ErrDefinition},
	} {
		d := base
		tc.mod(&d)
		if _, err := campaign.Compile(d); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Clamping: a rule asking for more than the cap, or less than 0, gets
	// the cap, or 0; an overflow is an error (no bonus).
	d := base
	for rule, want := range map[string]int64{"points * 1000": 50, "-points": 0, "9223372036854775807 + points": -1} {
		d.Rule = rule
		r, err := campaign.Compile(d)
		if err != nil {
			t.Fatal(err)
		}
		n, err := r.Bonus(&campaign.Inputs{Points: 7, Weekday: 1, Date: "2027-01-01"})
		if want < 0 && err == nil || want >= 0 && (err != nil || n != want) {
			t.Errorf("%s: %d, %v; want %d", rule, n, err, want)
		}
	}
}

func TestDefinitionCanonical(t *testing.T) {
	b := safeKm.Canonical()
	d, err := campaign.ParseDefinition(b)
	if err != nil || d != safeKm {
		t.Fatalf("%+v, %v", d, err)
	}
	// Golden: the rule hash changes only with a new engine, variables or definition.
	h := safeKm.RuleHash()
	t.Logf("safe-km rule hash %x, %d bytes", h, len(b))
	if got := fmt.Sprintf("%x", h[:8]); got != goldenSafeKmHash {
		t.Errorf("rule hash %s..., want %s...", got, goldenSafeKmHash)
	}
	if sha256.Sum256(b) != h {
		t.Error("rule hash is not SHA-256 of the canonical bytes")
	}
	if !bytes.HasPrefix(b, []byte("\x01\x00\x00\x00\x06cel-go\x00\x00\x00\x07v0.33.3")) {
		t.Errorf("canonical bytes start %q", b[:20])
	}
	for i := range b {
		if _, err := campaign.ParseDefinition(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", i)
		}
	}
}

const goldenSafeKmHash = "129a458845186c4f"

func TestInputsRoundTrip(t *testing.T) {
	for _, d := range days {
		b := d.in.Encode()
		back, err := campaign.DecodeInputs(b)
		if err != nil || !bytes.Equal(back.Encode(), b) {
			t.Fatalf("%s: %v", d.vehicle, err)
		}
	}
	if _, err := campaign.DecodeInputs(append(days[0].in.Encode(), 0)); err == nil {
		t.Error("trailing byte decoded")
	}
}

func FuzzDecodeInputs(f *testing.F) {
	for _, d := range days {
		f.Add(d.in.Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := campaign.DecodeInputs(b)
		if err == nil && !bytes.Equal(in.Encode(), b) {
			t.Fatal("decoded input does not re-encode")
		}
	})
}

func FuzzParseDefinition(f *testing.F) {
	f.Add(safeKm.Canonical())
	f.Add(weekendShanghai.Canonical())
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := campaign.ParseDefinition(b)
		if err == nil && !bytes.Equal(d.Canonical(), b) {
			t.Fatal("parsed definition does not re-encode")
		}
	})
}

func TestRegionWeekdayTenure(t *testing.T) {
	for _, tc := range []struct {
		lat, lon float64
		want     string
	}{{31.23, 121.47, "N31E121"}, {-33.45, -70.66, "S34W071"}, {0, 0, "N00E000"}, {90, 180, "N89E179"}, {91, 0, ""}} {
		if got := campaign.Region(tc.lat, tc.lon); got != tc.want {
			t.Errorf("Region(%v, %v) = %q, want %q", tc.lat, tc.lon, got, tc.want)
		}
	}
	for date, want := range map[string]int64{"1970-01-01": 4, "2027-01-02": 6, "2027-01-03": 7, "2027-01-04": 1} {
		d, _ := campaign.ParseDate(date)
		if got := campaign.Weekday(d); got != want {
			t.Errorf("weekday %s = %d, want %d", date, got, want)
		}
	}
	if n := campaign.TenureDays("2026-12-25", "2027-01-02"); n != 8 {
		t.Errorf("tenure %d", n)
	}
	if n := campaign.TenureDays("", "2027-01-02") + campaign.TenureDays("2027-01-03", "2027-01-02"); n != 0 {
		t.Errorf("tenure of none or later: %d", n)
	}
}

func TestSignatures(t *testing.T) {
	// Golden signed bytes (docs/campaigns.md).
	got := fmt.Sprintf("%x", campaign.SignedBytes("pause", "p/c", []byte{0xab}, "pause/p/c/n", nil))
	want := fmt.Sprintf("%x", "minecart campaign signature v1\n") + "00000005" + fmt.Sprintf("%x", "pause") + "00000003" + fmt.Sprintf("%x", "p/c") +
		"00000001ab" + "0000000b" + fmt.Sprintf("%x", "pause/p/c/n") + "00000000"
	if got != want {
		t.Errorf("signed bytes %s, want %s", got, want)
	}
	pub, priv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	e := campaign.Submit(welcome, priv, 5)
	if err := campaign.VerifySignature(&e, pub); err != nil {
		t.Fatal(err)
	}
	e.Definition = safeKm.Canonical()
	if err := campaign.VerifySignature(&e, pub); !errors.Is(err, campaign.ErrSignature) {
		t.Errorf("changed definition: %v", err)
	}
	h := welcome.RuleHash()
	p := campaign.Act(ledger.ActionPause, "acme-fuel", welcome.ID(), h[:], "n1", priv, 6)
	if err := campaign.VerifySignature(&p, pub); err != nil {
		t.Fatal(err)
	}
	p.ID = campaign.ActionID(ledger.ActionPause, welcome.ID(), "n2") // replayed under another request id
	if err := campaign.VerifySignature(&p, pub); !errors.Is(err, campaign.ErrSignature) {
		t.Errorf("replayed pause: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{8}, 64)))
	e = campaign.Submit(welcome, priv, 5)
	if err := campaign.VerifySignature(&e, other); !errors.Is(err, campaign.ErrSignature) {
		t.Errorf("other key: %v", err)
	}
}

// BenchmarkBonus is the cost of evaluating a campaign on one score: the
// issue's example rule, inputs from a score, and the clamp.
func BenchmarkBonus(b *testing.B) {
	for _, d := range []campaign.Definition{weekendShanghai, welcome, safeKm} {
		r, err := campaign.Compile(d)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(d.Name, func(b *testing.B) {
			in := days[0].in
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Bonus(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPerScore is the whole cost a campaign adds to one credit in
// the ledger stage: the inputs from the daily score, the rule, and the
// candidate bonus entry (leaf hash, canonical inputs), per campaign.
func BenchmarkPerScore(b *testing.B) {
	r, err := campaign.Compile(weekendShanghai)
	if err != nil {
		b.Fatal(err)
	}
	s := &avro.DailyScore{ID: "v1/2027-01-02", VehicleID: "v1", Date: "2027-01-02", TZ: "Asia/Shanghai", ConfigVersion: "rules-1",
		Points: 120, Score: 86.5, DistanceKm: 42.7, Flags: []string{"capped"}, Region: "N31E121"}
	credit := ledger.Entry{Kind: ledger.KindCredit, ID: s.ID, VehicleID: "v1", Date: s.Date, WindowEndMs: 1, Points: 120}
	raw := bytes.Repeat([]byte{1}, 120)
	b.ReportAllocs()
	for b.Loop() {
		in, err := campaign.FromScore(s, "2026-12-01")
		if err != nil {
			b.Fatal(err)
		}
		if _, ok, err := r.Candidate(&credit, 7, raw, &in); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	perScore := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perScore, "ns/score")
	// The ledger's own cost of a credit in the same run: Book.Append
	// (encode, leaf hash, idempotency sets, blocks of 1,000 signed).
	b.StopTimer()
	signer, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	book := ledger.NewBook()
	const n = 20_000
	rel := ledger.Release{TimestampMs: 1, Clock: ledger.ClockEvent}
	for i := range n {
		rel.Entries = append(rel.Entries, ledgertest.Credit(fmt.Sprintf("veh-%06d", i), 1, 100))
	}
	start := time.Now()
	if _, _, _, err := book.Append(rel, 1000, signer); err != nil {
		b.Fatal(err)
	}
	perCredit := float64(time.Since(start).Nanoseconds()) / n
	b.ReportMetric(perCredit, "ns/credit")
	b.ReportMetric(perScore/perCredit, "campaign/credit")
}
