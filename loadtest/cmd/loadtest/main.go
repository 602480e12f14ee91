// Command loadtest floods a local minecart with a simulated fleet and
// prints what it achieved: through the gateway over HTTP (signed JSON or
// Avro batches, as boxes send them) or straight into the raw telemetry
// topic with segmentio/kafka-go. It only targets loopback addresses.
//
//	loadtest -mode gateway -url http://127.0.0.1:8080 -brokers 127.0.0.1:9092 -provision -vehicles 1000
//	loadtest -mode kafka -brokers 127.0.0.1:9092 -vehicles 1000 -max-events 5000000
//
// Every flag can also be set as MINECART_LOADTEST_<FLAG>.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v4"
	"github.com/peterbourgon/ff/v4/ffhelp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/minecart/minecart/internal/envflag"

	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "gateway", "gateway (HTTP) or kafka (kafka-go into the raw topic)")
	url := fs.String("url", "http://127.0.0.1:8080", "gateway base URL (mode gateway)")
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated (mode kafka, and -provision)")
	topic := fs.String("topic", pipelines.TopicTelemetryRaw, "topic (mode kafka)")
	provision := fs.Bool("provision", false, "register the fleet's devices in the registry topic first (mode gateway); a batch refused as unknown_device in the first 30 s is retried, since the gateway's table follows the topic asynchronously")
	deviceKey := fs.String("device-key", "", "the gateway's device-registry key file that -provision seals the secrets with (minecart run: <data-dir>/devices.key)")
	kafkaUser := fs.String("kafka-user", "", "SASL/SCRAM-SHA-512 user for -brokers (minecart run: the superuser of <data-dir>/kafka/credentials.json)")
	kafkaPass := fs.String("kafka-password", "", "SASL/SCRAM-SHA-512 password of -kafka-user")
	devicesOut := fs.String("devices-out", "", "write the provisioning list (device,vehicle,secret hex) as CSV to this file")
	seed := fs.Uint64("seed", 1, "simulation seed")
	vehicles := fs.Int("vehicles", 100, "fleet size")
	days := fs.Int("days", 1, "simulated days")
	start := fs.String("start", "", "first simulated local date, YYYY-MM-DD (default: days before today)")
	tz := fs.String("tz", "Asia/Shanghai", "the vehicles' time zone")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "simulation goroutines")
	maxEvents := fs.Int64("max-events", 0, "stop after this many events (0: the whole simulation)")
	duration := fs.Duration("duration", 0, "stop feeding after this long (0: no limit)")
	format := fs.String("format", loadtest.FormatJSON, "gateway body format: json or avro")
	gzip := fs.Bool("gzip", false, "gzip gateway bodies")
	batch := fs.Int("batch", 100, "events per gateway request")
	concurrency := fs.Int("concurrency", 16, "gateway requests in flight")
	resend := fs.Int("resend-every", 0, "send about one gateway batch in N twice, as boxes re-upload (0: never)")
	offlineEvery := fs.Int("offline-every", 0, "about one device in N uploads late (0: none)")
	offlineDelay := fs.Duration("offline-delay", 3*time.Hour, "how late, in simulated time, the -offline-every devices upload")
	speedup := fs.Float64("speedup", 0, "pace the simulation: simulated time runs this many times faster than the wall clock (0: as fast as possible)")
	ffs := ff.NewFlagSetFrom(fs.Name(), fs)
	if err := envflag.Parse(ffs, args, "MINECART_LOADTEST"); err != nil {
		if errors.Is(err, ff.ErrHelp) {
			fmt.Fprint(stderr, ffhelp.Flags(ffs, "loadtest [FLAGS]"))
		}
		return err
	}
	brokerList := strings.Split(*brokers, ",")
	day := time.Now().AddDate(0, 0, -*days)
	if *start != "" {
		d, err := time.Parse(time.DateOnly, *start)
		if err != nil {
			return fmt.Errorf("-start: %w", err)
		}
		day = d
	}
	sim, err := fleet.New(fleet.Config{Seed: *seed, Vehicles: *vehicles, Days: *days, Start: day, TZ: *tz, Workers: *workers})
	if err != nil {
		return err
	}
	if *devicesOut != "" {
		if err := writeDevices(*devicesOut, sim.Devices()); err != nil {
			return err
		}
	}
	progress := func(r loadtest.Report) {
		fmt.Fprintf(stderr, "%8.1fs %12d events %10.0f events/s  p50 %-10v p99 %-10v retries %d rejected %d\n",
			r.Elapsed.Seconds(), r.Events, r.EventsPerSec, r.P50, r.P99, r.Retries, r.Rejected)
	}
	chunks := sim.Chunks()
	if *offlineEvery > 0 {
		chunks = loadtest.Delayed(chunks, loadtest.EveryNth(*offlineEvery), *offlineDelay)
	}
	chunks = bounded(chunks, *maxEvents, *duration)
	if *speedup > 0 {
		chunks = loadtest.Paced(ctx, chunks, *speedup, nil, nil)
	}
	var rep loadtest.Report
	switch *mode {
	case "gateway":
		if err := loadtest.CheckLoopback(*url); err != nil {
			return err
		}
		if *provision {
			if err := provisionDevices(ctx, brokerList, *kafkaUser, *kafkaPass, *deviceKey, sim.Devices(), *tz); err != nil {
				return err
			}
		}
		sc := loadtest.SenderConfig{URL: *url, Devices: sim.Devices(), BatchSize: *batch,
			Format: *format, Gzip: *gzip, Concurrency: *concurrency, ResendEvery: *resend, Progress: progress}
		if *provision {
			sc.UnknownGrace = 30 * time.Second // the gateway's table picks the new devices up asynchronously
		}
		s, err := loadtest.NewSender(sc)
		if err != nil {
			return err
		}
		rep, err = s.SendChunks(ctx, chunks)
		if err != nil {
			return fmt.Errorf("%w (%v)", err, rep)
		}
	case "kafka":
		if err := loadtest.CheckLoopback(brokerList...); err != nil {
			return err
		}
		p, err := loadtest.NewKafkaProducer(loadtest.KafkaConfig{Brokers: brokerList, User: *kafkaUser, Password: *kafkaPass, Topic: *topic, Progress: progress})
		if err != nil {
			return err
		}
		rep, err = p.SendChunks(ctx, chunks)
		if err != nil {
			return fmt.Errorf("%w (%v)", err, rep)
		}
	default:
		return fmt.Errorf("-mode %q: want gateway or kafka", *mode)
	}
	fmt.Fprintf(stdout, "mode %s, %d vehicles x %d days from %s, seed %d\n", *mode, *vehicles, *days, sim.Start().Format(time.DateOnly), *seed)
	fmt.Fprintln(stdout, rep)
	return nil
}

// bounded stops the simulation after maxEvents events or once d has
// passed (0: no bound); the last chunk is cut to the count.
func bounded(chunks iter.Seq[fleet.Chunk], maxEvents int64, d time.Duration) iter.Seq[fleet.Chunk] {
	return func(yield func(fleet.Chunk) bool) {
		deadline := time.Now().Add(d)
		var n int64
		for c := range chunks {
			if maxEvents > 0 && n+int64(len(c.Events)) > maxEvents {
				c.Events = c.Events[:maxEvents-n]
			}
			n += int64(len(c.Events))
			if !yield(c) || (maxEvents > 0 && n >= maxEvents) || (d > 0 && time.Now().After(deadline)) {
				return
			}
		}
	}
}

func provisionDevices(ctx context.Context, brokers []string, user, pass, keyFile string, devs []fleet.Device, tz string) error {
	if err := loadtest.CheckLoopback(brokers...); err != nil {
		return err
	}
	if keyFile == "" {
		return errors.New("-provision needs -device-key: the secrets are sealed under the gateway's device-registry key")
	}
	key, err := gateway.LoadRegistryKey(keyFile)
	if err != nil {
		return err
	}
	cfg := kafka.Config{Brokers: brokers}
	if user != "" {
		cfg.ClientOptions = []kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())}
	}
	p, err := kafka.NewProducer(cfg)
	if err != nil {
		return err
	}
	err = loadtest.Provision(ctx, p, nil, key, devs, tz, time.Now())
	return errors.Join(err, p.Close())
}

func writeDevices(path string, devs []fleet.Device) error {
	// The file holds the boxes' secrets: owner only.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"device_id", "vehicle_id", "secret_hex"})
	for _, d := range devs {
		_ = w.Write([]string{d.DeviceID, d.VehicleID, d.SecretHex()})
	}
	w.Flush()
	return errors.Join(w.Error(), f.Close())
}
