package chserver_test

import (
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chClientVersion is the official Node.js client the test drives.
const chClientVersion = "1.23.1"

// nodeClientPath is a node_modules holding @clickhouse/client:
// $MINECART_CH_CLIENT_PATH, else $MINECART_TOOLS_DIR/chclient/node_modules
// (default ~/.cache/minecart), where
//
//	npm install --prefix ~/.cache/minecart/chclient @clickhouse/client@1.23.1
//
// puts it.
func nodeClientPath(t *testing.T) string {
	t.Helper()
	if _, err := osexec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	p := os.Getenv("MINECART_CH_CLIENT_PATH")
	if p == "" {
		dir := os.Getenv("MINECART_TOOLS_DIR")
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, ".cache", "minecart")
		}
		p = filepath.Join(dir, "chclient", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(p, "@clickhouse", "client", "package.json")); err != nil {
		t.Skipf("@clickhouse/client is not installed in %s (npm install --prefix DIR @clickhouse/client@%s; MINECART_CH_CLIENT_PATH=DIR/node_modules)", p, chClientVersion)
	}
	return p
}

// TestNodeClient: ClickHouse's official Node.js client works against the
// embedded server with the credentials (query with parameters as the
// analyst, insert as the writer) and is refused without them.
func TestNodeClient(t *testing.T) {
	path := nodeClientPath(t)
	s := server(t)
	exec(t, connect(t), "CREATE TABLE IF NOT EXISTS node_rows (v String, n UInt32) ENGINE = MergeTree ORDER BY v")
	exec(t, connect(t), "TRUNCATE TABLE node_rows")
	script := `
const { createClient } = require('@clickhouse/client');
const url = process.env.CH_URL;
async function main() {
  const w = createClient({ url, username: process.env.W_USER, password: process.env.W_PASS });
  await w.insert({ table: 'node_rows', values: [{ v: '007', n: 1 }, { v: '7', n: 2 }], format: 'JSONEachRow' });
  await w.close();
  const a = createClient({ url, username: process.env.A_USER, password: process.env.A_PASS });
  const ping = await a.ping();
  const rs = await a.query({ query: 'SELECT v, n FROM node_rows WHERE v = {v:String}', query_params: { v: '007' }, format: 'JSONEachRow' });
  console.log('rows ' + JSON.stringify(await rs.json()));
  try { await a.command({ query: 'DROP TABLE node_rows' }); console.log('drop ok'); } catch (e) { console.log('drop refused ' + e.code); }
  await a.close();
  const n = createClient({ url, username: process.env.A_USER, password: 'wrong-password' });
  try { await n.query({ query: 'SELECT 1', format: 'JSONEachRow' }); console.log('wrong ok'); } catch (e) { console.log('wrong refused ' + e.code); }
  await n.close();
  console.log('ping ' + ping.success);
}
main().catch(e => { console.log('error ' + e); process.exit(1); });
`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "node", "-e", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+path, "CH_URL="+s.BaseURL(),
		"W_USER="+s.Writer.Name, "W_PASS="+s.Writer.Password, "A_USER="+s.Analyst.Name, "A_PASS="+s.Analyst.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	for _, want := range []string{`rows [{"v":"007","n":1}]`, "drop refused 164", "wrong refused 516", "ping true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("node client: want %q in\n%s", want, out)
		}
	}
}
