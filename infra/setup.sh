#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh machine (Debian 12 with Go, gcc, Node/npm).
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The embedded ClickHouse engine (pinned libchdb.so from npm).
bash infra/chdb/install.sh

# Go modules.
go mod download

# npm packages used by tests (a stock Avro implementation to cross-check our framing).
if [ -f schemas/testdata/package.json ] && [ ! -d schemas/testdata/node_modules ]; then
  (cd schemas/testdata && npm ci --no-audit --no-fund --silent)
fi
