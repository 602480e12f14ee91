#!/usr/bin/env bash
# install.sh places a pinned libchdb.so (the chDB engine, ClickHouse as a
# library) where github.com/chdb-io/chdb-go's purego loader looks for it.
#
# The library comes from the npm package @chdb/lib-linux-x64-gnu: `npm pack`
# downloads the tarball (npm checks it against the registry's sha512), the
# script checks the pinned integrity again, extracts libchdb.so and installs
# it atomically. A marker file next to the library records version, sha256 and
# size; when it matches, the script exits at once (idempotent, fast).
#
# Usage: infra/chdb/install.sh            (as root, or with CHDB_LIB_DIR set)
# Environment:
#   CHDB_VERSION    npm package version (default: the pinned one below)
#   CHDB_INTEGRITY  expected npm sha512 integrity of that version
#   CHDB_LIB_DIR    destination directory (default /usr/local/lib; elsewhere,
#                   point CHDB_LIB_PATH at the library when running minecart)
#   CHDB_FORCE=1    reinstall even if the marker matches
set -euo pipefail

version="${CHDB_VERSION:-26.5.3}"
integrity="${CHDB_INTEGRITY:-sha512-fPrLmRt5Moor9yGz4mazbrNje4t7X9KB2mTGkXFWRxRBs2iKy8yh6jx11xsa0Qr3iDFMU/yHqd+bVdYJXu3QaQ==}"
libdir="${CHDB_LIB_DIR:-/usr/local/lib}"
pkg="@chdb/lib-linux-x64-gnu"
lib="$libdir/libchdb.so"
marker="$libdir/libchdb.so.minecart"

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*) echo "install.sh: $pkg is for Linux x86_64 only (this is $(uname -s)-$(uname -m))" >&2; exit 1 ;;
esac

if [[ "${CHDB_FORCE:-0}" != 1 && -f "$lib" && -f "$marker" ]]; then
	read -r have_version _ have_size <"$marker" || true
	if [[ "$have_version" == "$version" && "$(stat -c %s "$lib")" == "$have_size" ]]; then
		echo "libchdb.so $version already installed at $lib"
		exit 0
	fi
fi

command -v npm >/dev/null || { echo "install.sh: npm is required (apt-get install npm)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetching $pkg@$version ..."
tgz="$(cd "$tmp" && npm pack --silent "$pkg@$version")"
got="sha512-$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tmp/$tgz")"
if [[ "$got" != "$integrity" ]]; then
	echo "install.sh: $tgz integrity $got, want $integrity" >&2
	exit 1
fi

tar -xzf "$tmp/$tgz" -C "$tmp" package/libchdb.so 2>/dev/null ||
	tar -xzf "$tmp/$tgz" -C "$tmp"
src="$(find "$tmp/package" -name libchdb.so -type f | head -n1)"
[[ -n "$src" ]] || { echo "install.sh: no libchdb.so in $tgz" >&2; exit 1; }

mkdir -p "$libdir"
install -m 0755 "$src" "$lib.tmp.$$"
mv -f "$lib.tmp.$$" "$lib"
sum="$(sha256sum "$lib" | cut -d' ' -f1)"
echo "$version $sum $(stat -c %s "$lib")" >"$marker.tmp.$$"
mv -f "$marker.tmp.$$" "$marker"
command -v ldconfig >/dev/null && ldconfig 2>/dev/null || true
echo "installed libchdb.so $version ($sum) at $lib"
if [[ "$lib" != /usr/local/lib/libchdb.so ]]; then
	echo "set CHDB_LIB_PATH=$lib for minecart to find it"
fi
