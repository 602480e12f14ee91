package telemetry

import (
	"sync"
	"testing"
)

// TestValidTZ: zone names are told apart from other strings, the first
// time and from the cache, also from many goroutines at once (the cache is
// replaced whole when a zone is added).
func TestValidTZ(t *testing.T) {
	cases := map[string]bool{
		"Asia/Shanghai": true, "Europe/Paris": true, "UTC": true, "America/Argentina/Buenos_Aires": true,
		"": false, "Local": false, "Asia/Atlantis": false, "../../etc/passwd": false,
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				for tz, want := range cases {
					if got := ValidTZ(tz); got != want {
						t.Errorf("ValidTZ(%q) = %v, want %v", tz, got, want)
					}
				}
			}
		}()
	}
	wg.Wait()
	if m := validZones.Load(); m == nil || len(*m) < 4 {
		t.Fatalf("cache %v, want the 4 valid zones", m)
	}
	for tz, want := range cases {
		if _, cached := (*validZones.Load())[tz]; cached != want {
			t.Errorf("%q cached %v, want %v", tz, cached, want)
		}
	}
}
