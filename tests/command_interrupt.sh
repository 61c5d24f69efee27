#!/usr/bin/env bash
# Ctrl-C while a command step runs: its process group gets SIGTERM, then
# SIGKILL after its grace period, so even a child that ignores SIGTERM is
# gone; the dependent step never starts; exit code 130. No sleeps: the
# command says "ready" (a line of the step's log) once its child runs.
set -euo pipefail
target=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PENSTOCK_HOME=$work/cache
export PID_FILE=$work/child.pid
coproc RUN { exec "$target" run 2>&1; }
pid=$RUN_PID
read -r first <&"${RUN[0]}"
while [[ $first != "[long] ready" ]]; do read -r first <&"${RUN[0]}"; done
child=$(cat "$PID_FILE")
kill -0 "$child" || { echo "FAIL: the command's child $child is not running"; exit 1; }
kill -INT "$pid"
rest=$(cat <&"${RUN[0]}")
status=0
wait "$pid" || status=$?
echo "$rest"
[[ $status -eq 130 ]] || { echo "FAIL: exit code $status, expected 130"; exit 1; }
grep -q "interrupted: pipeline 'command_interrupt': 0 succeeded, 1 cancelled, 1 not run" <<<"$rest" || { echo "FAIL: summary"; exit 1; }
# The child is gone: killed, not left to init (a zombie not yet reaped counts as gone).
for _ in $(seq 1 200); do
  state=$(awk '{print $3}' "/proc/$child/stat" 2>/dev/null || echo gone)
  [[ $state == gone || $state == Z ]] && { echo "PASS"; exit 0; }
  sleep 0.05
done
echo "FAIL: the command's child $child survived the interrupt"
exit 1
