package soak

import (
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
)

// The harness's own process is in /proc with a resident set and its
// parent.
func TestReadProcsSelf(t *testing.T) {
	pt, err := readProcs()
	if err != nil {
		t.Fatal(err)
	}
	u := pt.tree(os.Getpid(), true)
	if u.RSS < 1<<20 {
		t.Fatalf("own RSS %d B", u.RSS)
	}
	if pt.parent[os.Getpid()] != os.Getppid() {
		t.Fatalf("parent %d, want %d", pt.parent[os.Getpid()], os.Getppid())
	}
	if all := pt.tree(os.Getppid(), false); all.RSS < u.RSS {
		t.Fatalf("parent's tree %d B < own %d B", all.RSS, u.RSS)
	}
}

func TestDayStats(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 11, 1, 16, 0, 0, 0, time.UTC).UnixMilli() // a window end
	grace := 2 * time.Hour
	marks := []mark{
		{end, t0},
		{end + grace.Milliseconds() - 1, t0.Add(time.Second)},
		{end + grace.Milliseconds() + 5, t0.Add(2 * time.Second)}, // the first past end+grace
		{end + grace.Milliseconds() + 9, t0.Add(3 * time.Second)},
	}
	var cs []credit
	for i := range 100 {
		cs = append(cs, credit{date: "2026-11-01", windowEnd: end, at: t0.Add(2*time.Second + time.Duration(i+1)*time.Millisecond)})
	}
	cs = append(cs, credit{date: "2026-11-02", windowEnd: end + 86400000, at: t0}) // no mark past it: 0
	ds := dayStats(cs, marks, grace)
	if len(ds) != 2 {
		t.Fatalf("%+v", ds)
	}
	d := ds[0]
	if d.Date != "2026-11-01" || d.Credits != 100 || d.P50 != 50*time.Millisecond || d.P99 != 99*time.Millisecond || d.Max != 100*time.Millisecond {
		t.Fatalf("%+v", d)
	}
	if ds[1].Credits != 1 || ds[1].Max != 0 {
		t.Fatalf("%+v", ds[1])
	}
}

// TestIsCheckpoint: the credits reader passes over the ledger's
// checkpoint records among the entries by their header, before decoding.
func TestIsCheckpoint(t *testing.T) {
	var hs []kgo.RecordHeader
	for _, h := range pipelines.PartnerCheckpointHeaders(9) {
		hs = append(hs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if !isCheckpoint(&kgo.Record{Key: pipelines.PartnerCheckpointKey(9), Headers: hs}) {
		t.Error("checkpoint record not recognised")
	}
	if isCheckpoint(&kgo.Record{Key: []byte("v-1/2026-11-01"), Value: []byte{0xC3, 0x01}}) {
		t.Error("an entry taken for a checkpoint")
	}
}
