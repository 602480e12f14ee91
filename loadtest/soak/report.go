package soak

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report writes a run's summary tables.
func Report(w io.Writer, r *Result) {
	c := r.Config
	fmt.Fprintf(w, "=== soak: %d vehicles x %d days (seed %d), %d replica(s) per stage, %d telemetry partitions ===\n",
		c.Vehicles, c.Days, c.Seed, c.Replicas, r.Partitions)
	fmt.Fprintf(w, "events sent      %d in %v (%.0f events/s through the gateway), %d refused\n",
		r.Sent.Events, r.SentIn.Round(time.Millisecond), rate(float64(r.Sent.Events), r.SentIn), r.Sent.Rejected+r.Sent.Failed)
	fmt.Fprintf(w, "drained          %v after the first delivery (%.0f events/s box to settled credit)\n",
		r.Drained.Round(time.Millisecond), rate(float64(r.Sent.Events), r.Drained))
	fmt.Fprintf(w, "samples          %d, every %v: %s\n", r.Samples, c.Interval, r.CSV)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\trecords in\tactive s\trecords/s\tbest interval/s\tpeak lag\t")
	for _, s := range r.Stages {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.0f\t%.0f\t%d\t\n", s.Stage, s.In, s.Active.Seconds(), s.Rate(), s.PeakRate, s.PeakLag)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tpeak RSS MiB\tCPU s\tcores (avg)\t")
	var cpu float64
	for _, p := range r.Procs {
		cpu += p.CPU
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.2f\t\n", p.Name, float64(p.PeakRSS)/(1<<20), p.CPU, p.Cores())
	}
	fmt.Fprintf(tw, "all\t\t%.1f\t%.2f\t\n", cpu, rate(cpu, r.Drained))
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "day (end + %v grace) to credit published\tcredits\tp50\tp99\tmax\t\n", c.Grace)
	for _, d := range r.Days {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t%v\t\n", d.Date, d.Credits, d.P50.Round(time.Millisecond), d.P99.Round(time.Millisecond), d.Max.Round(time.Millisecond))
	}
	tw.Flush()
	var bad []string
	for _, e := range r.Exits {
		if e.Err != "" || e.Early {
			bad = append(bad, fmt.Sprintf("%s: %s (early %v)", e.Name, e.Err, e.Early))
		}
	}
	if len(bad) == 0 {
		fmt.Fprintf(w, "exits            all %d processes exited with status 0 on SIGTERM\n", len(r.Exits))
	} else {
		fmt.Fprintf(w, "exits            NOT CLEAN: %s\n", strings.Join(bad, "; "))
	}
	fmt.Fprintf(w, "credits          %d distinct, %d read twice\n", len(r.Credits), r.CreditCopies)
	if r.MaxSampleError != "" {
		fmt.Fprintf(w, "sampling error   %s\n", r.MaxSampleError)
	}
}

// ScaleReport compares runs of the same fleet with different replica
// counts: throughput (events over the time to drain) against the first
// run, and CPU per stage summed over its replicas.
func ScaleReport(w io.Writer, rs []*Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "=== soak-scale: %d vehicles x %d days, %d telemetry partitions ===\n", rs[0].Config.Vehicles, rs[0].Config.Days, rs[0].Partitions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "replicas\tprocesses\tdrained s\tevents/s\tvs first\tingest/s\tscoring/s\tsink/s\tCPU s\tcores used\t"
	for _, s := range rs[0].Stages {
		head += s.Stage + " cores\t"
	}
	fmt.Fprintln(tw, head+"clean\t")
	base := rate(float64(rs[0].Sent.Events), rs[0].Drained)
	for _, r := range rs {
		ev := rate(float64(r.Sent.Events), r.Drained)
		byStage := map[string]float64{}
		var cpu float64
		for _, p := range r.Procs {
			cpu += p.CPU
			if st, _, ok := strings.Cut(p.Name, " "); ok {
				byStage[st] += p.CPU
			}
		}
		rates := map[string]float64{}
		for _, s := range r.Stages {
			rates[s.Stage] = s.Rate()
		}
		line := fmt.Sprintf("%d\t%d\t%.1f\t%.0f\t%.2fx\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t", r.Config.Replicas, len(r.Procs), r.Drained.Seconds(), ev, ev/base,
			rates["ingest"], rates["scoring"], rates["sink"], cpu, rate(cpu, r.Drained))
		for _, s := range r.Stages {
			line += fmt.Sprintf("%.2f\t", rate(byStage[s.Stage], r.Drained))
		}
		fmt.Fprintln(tw, line+fmt.Sprintf("%v\t", r.Clean()))
	}
	tw.Flush()
}

func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}
