#!/bin/sh
# Print the path of a promtool binary (Prometheus's rule checker and unit-test runner).
#
# Order: $PROMTOOL if set; `promtool` on PATH; a cached copy under
# ${XDG_CACHE_HOME:-~/.cache}/feedline/prometheus/<version>/; else Debian's `prometheus`
# package, downloaded with `apt-get download` (never installed: nothing system-wide changes)
# and unpacked with `dpkg-deb -x` into that cache, with the `prometheus` binary beside it.
# Nothing is fetched from outside the machine's configured apt sources.
#
# Usage: promtool="$(scripts/promtool.sh)" && "$promtool" test rules deploy/monitoring/tests/*.yaml
# Progress goes to stderr; stdout is only the path. Exit 1 with the reason when none is found.
set -eu

fail() {
    echo "promtool.sh: $*" >&2
    exit 1
}

if [ -n "${PROMTOOL:-}" ]; then
    [ -x "$PROMTOOL" ] || fail "PROMTOOL=$PROMTOOL is not an executable file"
    echo "$PROMTOOL"
    exit 0
fi
if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/feedline/prometheus"
cached="$(ls -d "$cache"/*/promtool 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -n "$cached" ] && [ -x "$cached" ]; then
    echo "$cached"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 ||
    fail "no promtool on PATH and no apt-get/dpkg-deb to fetch Debian's prometheus package;
install Prometheus (it ships promtool) or set PROMTOOL=/path/to/promtool"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

download() {
    (cd "$work" && apt-get download prometheus) >&2
}
echo "promtool.sh: fetching Debian's prometheus package into $cache" >&2
if ! download; then
    [ "$(id -u)" = 0 ] ||
        fail "apt-get download prometheus failed; run 'sudo apt-get update' (package lists may
be missing), or install promtool, or set PROMTOOL=/path/to/promtool"
    echo "promtool.sh: apt-get download failed; refreshing the package lists (root)" >&2
    apt-get update >&2 || fail "apt-get update failed"
    download || fail "apt-get download prometheus failed even after apt-get update"
fi

deb="$(ls "$work"/prometheus_*.deb)"
version="$(dpkg-deb -f "$deb" Version | tr ':/' '__')"
dpkg-deb -x "$deb" "$work/root"
[ -x "$work/root/usr/bin/promtool" ] || fail "$deb has no usr/bin/promtool"

# Copy into a private directory, then rename it into place: concurrent runs never see half a file.
mkdir -p "$cache"
staging="$(mktemp -d "$cache/.staging.XXXXXX")"
cp "$work/root/usr/bin/promtool" "$work/root/usr/bin/prometheus" "$staging/"
chmod 755 "$staging" "$staging/promtool" "$staging/prometheus"
mv -T "$staging" "$cache/$version" 2>/dev/null || rm -rf "$staging"
"$cache/$version/promtool" --version >/dev/null 2>&1 ||
    fail "$cache/$version/promtool does not run on this machine"
echo "$cache/$version/promtool"
