package loadtest

import (
	"fmt"
	"net"
	"net/url"
)

// CheckLoopback returns an error unless every address (a URL or a
// host:port) names this machine: the load generator floods what it
// targets, so it refuses anything else.
func CheckLoopback(addrs ...string) error {
	for _, a := range addrs {
		host := a
		if u, err := url.Parse(a); err == nil && u.Host != "" {
			host = u.Host
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "localhost" {
			continue
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%q is not a loopback address (127.0.0.0/8, ::1, localhost)", a)
		}
	}
	return nil
}
