#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh machine (Debian 12 with Go, gcc, Node/npm).
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# Debian's chromium: the web faces' browser tests drive it headless (chromedp, services/web).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The embedded ClickHouse engine (pinned libchdb.so from npm).
bash infra/chdb/install.sh

# The web faces' vendored front-end files (leaflet, uPlot, China's outlines; axe-core for
# the tests): committed, pinned from npm and checked against services/web/vendor.lock.
bash services/web/vendor.sh

# Go modules.
go mod download

# A stock Avro implementation (avsc, pinned) that the schemas tests use to prove
# a stock library decodes what minecart writes. Kept outside the tree.
AVSC_DIR=${MINECART_TOOLS_DIR:-$HOME/.cache/minecart}/avsc
if [ ! -f "$AVSC_DIR/node_modules/avsc/package.json" ]; then
  echo "setup: npm install avsc@5.7.9 into $AVSC_DIR"
  mkdir -p "$AVSC_DIR"
  npm install --prefix "$AVSC_DIR" --no-audit --no-fund --silent avsc@5.7.9 >/dev/null
fi

# ClickHouse's official Node.js client (pinned), for infra/chserver's TestNodeClient.
CHCLIENT_DIR=${MINECART_TOOLS_DIR:-$HOME/.cache/minecart}/chclient
if [ ! -f "$CHCLIENT_DIR/node_modules/@clickhouse/client/package.json" ]; then
  echo "setup: npm install @clickhouse/client@1.23.1 into $CHCLIENT_DIR"
  mkdir -p "$CHCLIENT_DIR"
  npm install --prefix "$CHCLIENT_DIR" --no-audit --no-fund --silent @clickhouse/client@1.23.1 >/dev/null
fi

# kubeconform (pinned), for infra/k8s's TestKubeconform: validates the Kubernetes manifests against
# the schemas vendored in infra/k8s/schemas (offline). go install puts it in $(go env GOPATH)/bin.
KUBECONFORM=$(go env GOPATH)/bin/kubeconform
if ! go version -m "$KUBECONFORM" 2>/dev/null | grep -Eq 'mod[[:space:]]+github.com/yannh/kubeconform[[:space:]]+v0.7.0'; then
  echo "setup: go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0"
  go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
fi
