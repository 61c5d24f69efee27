#!/usr/bin/env bash
# Ctrl-C during `run`: the running step sees the stop, no new step starts, the
# summary says so, and the exit code is 130. No sleeps: the step tells us
# when it is running by printing "ready".
set -euo pipefail
target=$1
# A cache of its own, so an earlier run's cached step cannot change the summary.
PENSTOCK_HOME=$(mktemp -d)
export PENSTOCK_HOME
trap 'rm -rf "$PENSTOCK_HOME"' EXIT
coproc RUN { exec "$target" run 2>&1; }
pid=$RUN_PID
read -r first <&"${RUN[0]}"
while [[ $first != ready ]]; do read -r first <&"${RUN[0]}"; done
kill -INT "$pid"
rest=$(cat <&"${RUN[0]}")
status=0
wait "$pid" || status=$?
echo "$rest"
[[ $status -eq 130 ]] || { echo "FAIL: exit code $status, expected 130"; exit 1; }
grep -q "interrupted: pipeline 'interrupt': 1 succeeded, 1 cancelled, 1 not run" <<<"$rest" || { echo "FAIL: summary"; exit 1; }
grep -q "saw the stop" <<<"$rest" || { echo "FAIL: the step did not see the stop"; exit 1; }
echo "PASS"
