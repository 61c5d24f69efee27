#!/usr/bin/env bash
# The churn example's run record as pictures, checked in a real browser:
#   churn_run_page.sh CHURN CSV OUT_DIR
# Three recorded runs (two learning rates, then every step cached), then:
#   show latest --html     the page, loaded in headless Chromium: its DOM has
#                          the graph node and the table row of every step, with
#                          its status; a screenshot of it is OUT_DIR/churn_run_page.png
#                          (the README's picture)
#   show --plot, compare --plot
#                          SVG files that parse as XML, one line per run
# Prints PASS at the end.
source "$(dirname "${BASH_SOURCE[0]}")/../tests/shell_test.sh"
churn=$1
csv=$2
out=$3
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n $browser ]] || fail "no chromium on PATH: scripts/install_deps.sh installs it"
export PENSTOCK_HOME="$work/home"
cd "$work"
"$churn" run --quiet -p data="$csv" -p lr=0.5 -p epochs=120 >/dev/null || fail "the first run exited $?"
"$churn" run --quiet -p data="$csv" -p lr=0.1 -p epochs=120 >/dev/null || fail "the second run exited $?"
first=$("$churn" runs --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[1]["id"])')
second=$("$churn" runs --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')

"$churn" show "$second" --html "$work/page.html" >/dev/null || fail "show --html exited $?"
# Chromium as root needs --no-sandbox; a machine without a GPU, --disable-gpu.
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$work/profile")
"$browser" "${flags[@]}" --dump-dom "file://$work/page.html" >"$work/dom.html" 2>"$work/chromium.err" ||
  fail "chromium could not load the page: $(tail -5 "$work/chromium.err")"
for step in load split standardize train evaluate; do
  case $step in train | evaluate) status=ran ;; *) status=cached ;; esac
  grep -q "<g class=\"step\" data-step=\"$step\" data-status=\"$status\"" "$work/dom.html" ||
    fail "the page's graph has no $status node for step '$step'"
  grep -q "<tr data-step=\"$step\" data-status=\"$status\"" "$work/dom.html" ||
    fail "the page's table has no $status row for step '$step'"
done
grep -q 'data-metric="loss"' "$work/dom.html" || fail "the page has no plot of the loss"
grep -q 'class="bar" data-step="train"' "$work/dom.html" || fail "the page's timeline has no bar for train"
mkdir -p "$out"
"$browser" "${flags[@]}" --window-size=1100,1500 --screenshot="$out/churn_run_page.png" "file://$work/page.html" \
  >/dev/null 2>>"$work/chromium.err" || fail "chromium could not take a screenshot"
python3 - "$out/churn_run_page.png" <<'PY' || fail "the screenshot is not a 1100x1500 PNG"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height = struct.unpack(">II", data[16:24])
assert (width, height) == (1100, 1500), (width, height)
assert len(data) > 20000, len(data)
PY

"$churn" show "$second" --plot loss --out "$work/loss.svg" >/dev/null || fail "show --plot exited $?"
"$churn" compare "$first" "$second" --plot loss --out "$work/both.svg" >/dev/null || fail "compare --plot exited $?"
python3 - "$work/loss.svg" "$work/both.svg" "$first" "$second" <<'PY' || fail "the plots are not what they should be"
import sys, xml.dom.minidom
one = xml.dom.minidom.parse(sys.argv[1])
both = xml.dom.minidom.parse(sys.argv[2])
lines = lambda d: [e for e in d.getElementsByTagName("polyline") if e.getAttribute("class") == "series"]
assert len(lines(one)) == 1, "show --plot: %d lines" % len(lines(one))
labels = sorted(e.getAttribute("data-label") for e in lines(both))
assert labels == sorted(sys.argv[3:5]), labels
assert len(lines(both)[0].getAttribute("points").split()) == 120, "not 120 points"
ticks = [t for t in both.getElementsByTagName("text") if t.getAttribute("class") == "x-tick"]
assert len(ticks) >= 3, "no x axis ticks"
PY
status=0
"$churn" show "$second" --plot nosuchmetric --out "$work/x.svg" 2>"$work/err" >/dev/null || status=$?
[[ $status == 1 ]] || fail "a missing metric exited $status"
grep -q "the metrics are accuracy, loss" "$work/err" || fail "a missing metric: $(cat "$work/err")"
echo PASS
