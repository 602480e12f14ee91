// Package scoring turns a vehicle's clean telemetry into one score per local
// calendar day: distance, driving time, harsh events, speeding, night and
// fatigue, a 0-100 behaviour score, reward points and anti-fraud flags.
//
// The score itself (Rules, Day, Result) is pure code over telemetry.Event
// values. Windows holds a scoring task's open vehicle-days, closes them in
// event time (stream time past the day's end plus a grace period, or the
// wall clock on an idle task) and says what to persist. Neither does I/O:
// package stage (services/scoring/stage) wires both into the pipelines
// runtime. docs/scoring.md explains every rule and its source.
package scoring
