package gateway

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/internal/benchfig"
	"github.com/minecart/minecart/internal/cputime"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

var (
	benchClients = flag.Int("gateway.clients", 32, "concurrent HTTP clients in BenchmarkGateway")
	benchBare    = flag.Bool("gateway.bare", true, "BenchmarkGateway: measure the bare-produce baseline (false: the gateway alone, for its profile; no RATIO line)")
	benchRounds  = flag.Int("gateway.rounds", 5, "BenchmarkGateway: rounds, each timing the gateway and the bare produce back to back in alternating order; the RATIO is the median of the rounds' ratios")
)

// BenchmarkGateway posts signed batches of 100 events over real HTTP on
// loopback to a gateway producing to an embedded broker (client, server and
// broker share the machine's cores) and reports events/s and the p50/p99
// time to the 202 (Kafka acknowledged). Each b.N iteration is one batch.
// It also reports the CPU time of the whole process (clients, gateway,
// broker) per event, for the gateway and for the bare baseline: on a
// machine shared with other work the rates move by 2x between runs, the
// CPU per event much less. Each of -gateway.rounds rounds posts b.N
// batches and runs the bare produce of the same events, in alternating
// order (even rounds the gateway first); the RATIO is the median of the
// rounds' ratios, the latencies those of every round's batches.
// -gateway.bare=false runs the gateway alone (for its profile, no RATIO
// line).
//
//	go test -run '^$' -bench Gateway -benchtime 2000x ./services/gateway/
//	go test -run '^$' -bench Gateway/avro -benchtime 20000x -cpuprofile cpu.out ./services/gateway/ -args -gateway.bare=false
func BenchmarkGateway(b *testing.B) {
	for _, format := range []string{"json", "avro"} {
		b.Run(format, func(b *testing.B) { benchGateway(b, format) })
	}
}

func benchGateway(b *testing.B, format string) {
	const devices, perBatch = 64, 100
	clients := *benchClients
	brokers := kafkatest.Broker(b)
	ctx := context.Background()
	pcfg := kafkatest.Config(brokers)
	p, err := kafka.NewProducer(pcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	tbl, err := kafka.NewTable(ctx, pcfg, pipelines.TopicDevices)
	if err != nil {
		b.Fatal(err)
	}
	defer tbl.Close()
	regKey, _ := GenerateRegistryKey()
	admin := NewDevices(p, tbl, regKey, nil, nil)
	codec, _ := wire.NewCodec(schemas.SingleObject())
	keys := make([]Key, devices)
	bodies := make([][]byte, devices)
	for i := range devices {
		d, err := admin.Add(ctx, NewDevice{ID: fmt.Sprintf("d%03d", i), VehicleID: fmt.Sprintf("v%03d", i), VehicleTZ: "Europe/Berlin", Auth: AuthHMAC})
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = HMACKey(d.Key)
		evs := make([]telemetry.Event, perBatch)
		for j := range evs {
			evs[j] = telemetry.Event{EventID: fmt.Sprintf("e%d", j), Seq: uint64(j), TimeMs: time.Now().UnixMilli() + int64(j),
				Lat: 52.5, Lon: 13.4, SpeedKmh: 60, HeadingDeg: 90, OdometerKm: 5000, FuelPct: 40, BatteryV: 14, CoolantC: 90}
		}
		if format == "json" {
			bodies[i], _ = telemetry.EncodeJSON(evs)
		} else {
			bodies[i] = codec.AppendBatch(nil, evs)
		}
	}
	srv, err := New(ctx, Config{Pipelines: pcfg, DeviceKey: regKey, DeviceRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	ctype := map[string]string{"json": "application/json", "avro": "avro/binary"}[format]

	// Baseline, same run, same broker, same events: a bare franz-go client
	// producing the records the gateway produces (one per event, the same
	// key, value bytes and device header) to the raw topic, as fast as it
	// can (asynchronous produce, then Flush). It runs before and after the
	// gateway and the faster of the two counts (the machine is shared).
	recs := make([][]*kgo.Record, devices)
	for d := range devices {
		evs, err := decodeBody(format, bodies[d], codec)
		if err != nil {
			b.Fatal(err)
		}
		for j := range evs {
			// As the gateway stamps them: the device's vehicle and id.
			evs[j].VehicleID, evs[j].DeviceID = fmt.Sprintf("v%03d", d), fmt.Sprintf("d%03d", d)
			recs[d] = append(recs[d], &kgo.Record{Topic: pipelines.TopicTelemetryRaw, Key: []byte(evs[j].VehicleID),
				Value: codec.AppendEvent(nil, &evs[j]), Headers: []kgo.RecordHeader{{Key: "device", Value: []byte(fmt.Sprintf("d%03d", d))}}})
		}
	}
	bare, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	// Warm: metadata and the producer id, as the gateway's producer already has them.
	if err := bare.ProduceSync(ctx, recs[0][0]).FirstErr(); err != nil {
		b.Fatal(err)
	}
	bareRun := func() (rate float64, cpu time.Duration) {
		var perr atomic.Value
		c0 := cputime.Self()
		t0 := time.Now()
		for i := range b.N {
			for _, r := range recs[i%devices] {
				c := *r
				bare.Produce(ctx, &c, func(_ *kgo.Record, err error) {
					if err != nil {
						perr.Store(err)
					}
				})
			}
		}
		if err := bare.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err, _ := perr.Load().(error); err != nil {
			b.Fatal(err)
		}
		el := time.Since(t0)
		return float64(b.N*perBatch) / el.Seconds(), cputime.Self() - c0
	}

	var all []time.Duration // every round's ack latencies
	gatewayRun := func() (rate float64, cpu time.Duration, cores float64) {
		var next atomic.Int64
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		var failed atomic.Int64
		cpu0 := cputime.Self()
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					d := int(i) % devices
					req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/telemetry", bytes.NewReader(bodies[d]))
					req.Header.Set("Content-Type", ctype)
					SignHeaders(req.Header, fmt.Sprintf("d%03d", d), bodies[d], keys[d], time.Now(), NewNonce())
					t0 := time.Now()
					res, err := client.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusAccepted {
						failed.Add(1)
						continue
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		cpu = cputime.Self() - cpu0
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d of %d batches failed", f, b.N)
		}
		all = append(all, slices.Concat(lat...)...)
		return float64(b.N*perBatch) / el.Seconds(), cpu, cpu.Seconds() / el.Seconds()
	}

	// Rounds: the gateway and the bare produce back to back, in
	// alternating order.
	var rates, bareRates, ratios, gwCPUs, bareCPUs, busy []float64
	perEv := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(b.N*perBatch) }
	b.ResetTimer()
	for r := range max(1, *benchRounds) {
		var rate, bareRate, cores float64
		var cpu, bareCPU time.Duration
		switch {
		case !*benchBare:
			rate, cpu, cores = gatewayRun()
		case r%2 == 0:
			rate, cpu, cores = gatewayRun()
			bareRate, bareCPU = bareRun()
		default:
			bareRate, bareCPU = bareRun()
			rate, cpu, cores = gatewayRun()
		}
		rates, gwCPUs, busy = append(rates, rate), append(gwCPUs, perEv(cpu)), append(busy, cores)
		if *benchBare {
			bareRates, bareCPUs = append(bareRates, bareRate), append(bareCPUs, perEv(bareCPU))
			ratios = append(ratios, rate/bareRate)
		}
	}
	b.StopTimer()
	slices.Sort(all)
	rate := benchfig.Median(rates)
	p50, p99 := all[len(all)/2], all[len(all)*99/100]
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(benchfig.Median(busy), "cores")
	fmt.Printf("gateway %s: %d rounds of %d batches x %d events, %d clients: median %.0f events/s, ack p50 %v p99 %v, %.2f cores busy\n",
		format, len(rates), b.N, perBatch, clients, rate, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), benchfig.Median(busy))

	// CPU time per event (the whole process: clients, gateway, broker),
	// less sensitive than rates to other work on the machine.
	b.ReportMetric(benchfig.Median(gwCPUs), "cpu_us/event")
	if !*benchBare {
		return
	}
	ratio := benchfig.Median(ratios)
	b.ReportMetric(benchfig.Median(bareRates), "bare_events/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(benchfig.Median(bareCPUs), "bare_cpu_us/event")
	fmt.Printf("gateway %s: bare franz-go produce of the same %d events, median %.0f events/s; ratios %s; CPU per event (medians): gateway %.2f us, bare %.2f us\n",
		format, b.N*perBatch, benchfig.Median(bareRates), benchfig.Rounds(ratios), benchfig.Median(gwCPUs), benchfig.Median(bareCPUs))
	goal := map[string]float64{"json": 0.25, "avro": 0.40}[format]
	fmt.Printf("RATIO gateway_%s %.3f goal %.2f\n", format, ratio, goal)
}

// decodeBody decodes a benchmark body back into its events.
func decodeBody(format string, body []byte, codec *wire.Codec) ([]telemetry.Event, error) {
	if format == "json" {
		return telemetry.DecodeJSON(body, telemetry.Limits{})
	}
	return codec.DecodeBatch(body, telemetry.Limits{})
}

// BenchmarkGzipBombs sends waves of 16 concurrent gzip bombs (256 MiB of
// zeros, 255 KiB compressed, each refused 413 or 429) from one valid
// device, 3 waves per iteration, and reports the process's RSS and the Go
// heap before and after (after a GC), the heap's peak while the bombs run,
// and the ratios to the device's bound of bytes (MaxDeviceBytes, 64 MiB;
// the in-flight budget is 256 MiB).
//
//	go test -run '^$' -bench GzipBombs -benchtime 1x ./services/gateway/
func BenchmarkGzipBombs(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.MaxBodyBytes = 8 << 20 })
	body := bomb(256 << 20)
	runtime.GC()
	rssBefore := rss(b)
	var base, peak, after uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bs, p, a := bombWaves(b, f, body, 3, 16)
		if i == 0 {
			base = bs
		}
		peak, after = max(peak, p), a
	}
	b.StopTimer()
	runtime.GC()
	rssAfter := rss(b)
	bound := float64(f.srv.cfg.MaxDeviceBytes)
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(mib(rssAfter), "rss_after_MiB")
	b.ReportMetric(float64(peak-base)/bound, "heap_peak_over_bound")
	fmt.Printf("gzip bombs: %d x 3 waves of 16 (%d KiB each, 256 MiB inflated): RSS %.0f -> %.0f MiB (ratio %.2f); heap %.0f MiB, peak %.0f MiB (+%.0f MiB = %.2f x the device bound of %.0f MiB), after %.0f MiB (ratio %.2f)\n",
		b.N, len(body)>>10, mib(rssBefore), mib(rssAfter), float64(rssAfter)/float64(rssBefore),
		mib(base), mib(peak), mib(peak-base), float64(peak-base)/bound, bound/(1<<20), mib(after), float64(after)/float64(base))
}

// rss is the process's resident set (VmRSS of /proc/self/status).
func rss(b testing.TB) uint64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
