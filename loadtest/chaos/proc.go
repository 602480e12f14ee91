package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Build compiles ./cmd/minecart of the module that holds this package into
// dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "minecart")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/minecart")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/minecart: %w\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the minecart module")
	}
	return filepath.Dir(mod), nil
}

// Ports are picked in PortLow..PortHigh (the range this suite may use on a
// shared machine), at random, checked free by listening on them.
var PortLow, PortHigh = 20000, 20999

var portMu sync.Mutex
var portsTaken = map[int]bool{}

// FreeAddr returns a free 127.0.0.1 address in the suite's port range.
func FreeAddr() (string, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 200 {
		p := PortLow + rand.IntN(PortHigh-PortLow+1)
		if portsTaken[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		portsTaken[p] = true
		return l.Addr().String(), nil
	}
	return "", fmt.Errorf("no free port in %d-%d", PortLow, PortHigh)
}

// Proc is a child process in its own process group (so a kill reaches
// the children it started, such as `minecart run`'s ClickHouse).
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	Started time.Time
	Log     string // stdout and stderr
	done    chan struct{}
	err     error

	mu    sync.Mutex
	lines []string        // stdout lines kept for Lines (bounded)
	at    []time.Duration // when each line came, since Started
	waits []lineWait
}

type lineWait struct {
	prefix string
	ch     chan string
}

// Start starts bin with args and extra environment, logging to logPath.
func Start(name, bin, logPath string, env []string, args ...string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "\n=== %s %s: %s %s\n", time.Now().Format(time.TimeOnly), name, bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	// Its own group; killed with the suite if the suite dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.Started = time.Now()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			p.mu.Lock()
			if len(p.lines) < 10000 {
				p.lines = append(p.lines, line)
				p.at = append(p.at, time.Since(p.Started))
			}
			kept := p.waits[:0]
			for _, w := range p.waits {
				if strings.HasPrefix(line, w.prefix) {
					w.ch <- line
				} else {
					kept = append(kept, w)
				}
			}
			p.waits = kept
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// WaitLine waits until the process prints a stdout line starting with
// prefix and returns it.
func (p *Proc) WaitLine(ctx context.Context, prefix string) (string, error) {
	ch := make(chan string, 1)
	p.mu.Lock()
	for _, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			p.mu.Unlock()
			return l, nil
		}
	}
	p.waits = append(p.waits, lineWait{prefix, ch})
	p.mu.Unlock()
	select {
	case l := <-ch:
		return l, nil
	case <-p.done:
		select {
		case l := <-ch:
			return l, nil
		default:
		}
		return "", fmt.Errorf("%s exited (%v) before printing %q (log %s)", p.Name, p.err, prefix, p.Log)
	case <-ctx.Done():
		return "", fmt.Errorf("%s: waiting for %q: %w (log %s)", p.Name, prefix, ctx.Err(), p.Log)
	}
}

// LineAt is when (since Started) the first stdout line starting with
// prefix was printed.
func (p *Proc) LineAt(prefix string) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, l := range p.lines {
		if strings.HasPrefix(l, prefix) {
			return p.at[i], true
		}
	}
	return 0, false
}

// Lines are the stdout lines printed so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Done is closed once the process exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (after Done).
func (p *Proc) Err() error { return p.err }

// Signal sends sig to the process's whole group.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Kill sends SIGKILL to the process group and waits for the process and
// for every other process of its group (a child, such as `minecart run`'s
// ClickHouse, may take a moment to die and free its port).
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
	for range 200 {
		if err := syscall.Kill(-p.Cmd.Process.Pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		_ = p.Signal(syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits up to grace before SIGKILL.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Wait waits until the process exits or ctx is done.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Metrics is one scrape of a /metrics page: series name{labels} -> value,
// labels sorted by name, as `name{k=v,k=v}`.
type Metrics map[string]float64

// Scrape reads the Prometheus text page at http://addr/metrics.
func Scrape(ctx context.Context, addr string) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	m := Metrics{}
	for name, mf := range mfs {
		for _, s := range mf.GetMetric() {
			var b strings.Builder
			b.WriteString(name)
			if s.GetHistogram() != nil {
				b.WriteString("_count") // a histogram's observations
			}
			if len(s.GetLabel()) > 0 {
				b.WriteByte('{')
				for i, l := range s.GetLabel() {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(l.GetName() + "=" + l.GetValue())
				}
				b.WriteByte('}')
			}
			v := s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue() + float64(s.GetHistogram().GetSampleCount())
			m[b.String()] = v
		}
	}
	return m, nil
}

// Sum adds the series of name whose labels contain every label of match
// ("k=v").
func (m Metrics) Sum(name string, match ...string) float64 {
	var sum float64
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, want := range match {
			if !strings.Contains(","+strings.TrimSuffix(labels, "}")+",", ","+want+",") {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// By sums the series of name by the value of label.
func (m Metrics) By(name, label string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			if lk, lv, ok := strings.Cut(l, "="); ok && lk == label {
				out[lv] += v
			}
		}
	}
	return out
}
