#!/usr/bin/env bash
# tools/demo_screenshot.sh MODEL_DIR [OUT.png] [PORT]: a screenshot of the `onestepsr demo` page in headless Chromium.
#
# Starts `onestepsr demo --model MODEL_DIR` on 127.0.0.1:PORT (default 7861), waits until the page answers, takes a
# 1280 x 900 screenshot (default OUT: results/demo/screenshot.png) with a fresh, throw-away browser profile and no
# background networking, then stops the demo. A model for a try: `python -c "from onestepsr.testing import
# tiny_models; tiny_models('/tmp/m', ('student',), T=4)"` gives /tmp/m/student (untrained: its outputs are no result).
# Needs Chromium (Debian: `apt-get install chromium`; or set CHROMIUM=/path/to/chrome). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/demo_screenshot.sh MODEL_DIR [OUT.png] [PORT]}
out=${2:-results/demo/screenshot.png}
port=${3:-7861}
py=${PYTHON:-.venv/bin/python}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$browser" ]; then
  echo "demo_screenshot: no chromium found (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi
tmp=$(mktemp -d)
PYTHONPATH="$PWD" OMP_NUM_THREADS=1 "$py" -c 'import sys; from onestepsr.cli import main; sys.exit(main())' \
  demo --model "$model" --port "$port" --device cpu > "$tmp/demo.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
  kill -0 "$pid" 2>/dev/null || { echo "demo_screenshot: the demo stopped:" >&2; cat "$tmp/demo.log" >&2; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "demo_screenshot: no answer on port $port" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$tmp/profile" --window-size=1280,900 \
  --hide-scrollbars --virtual-time-budget=10000 --screenshot="$out" "http://127.0.0.1:$port/" 2> "$tmp/chromium.log" \
  || { cat "$tmp/chromium.log" >&2; exit 1; }
[ -s "$out" ] || { echo "demo_screenshot: no screenshot written" >&2; exit 1; }
echo "demo_screenshot: $out"
