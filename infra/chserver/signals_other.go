//go:build !(linux && (amd64 || arm64))

package chserver

// withSignalsRestored runs f. Saving and restoring signal handlers is only
// implemented for Linux on amd64 and arm64, the platforms libchdb ships for;
// elsewhere run the server in its own process (as `minecart clickhouse`
// does), where a fault hangs or kills only the engine.
func withSignalsRestored(f func()) { f() }
