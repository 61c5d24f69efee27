#!/usr/bin/env bash
# Ctrl-C while a command step runs: its process group gets SIGTERM, then
# SIGKILL after its grace period, so even a child that ignores SIGTERM is
# gone; the dependent step never starts; exit code 130. No sleeps: the
# command says "ready" (a line of the step's log) once its child runs.
source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
target=$1
export PENSTOCK_HOME=$work/cache
export PID_FILE=$work/child.pid
start_until "[long] ready" "$target" run
child=$(cat "$PID_FILE")
kill -0 "$child" || fail "the command's child $child is not running"
interrupt
echo "$rest"
[[ $status -eq 130 ]] || fail "exit code $status, expected 130"
grep -q "interrupted: pipeline 'command_interrupt': 0 succeeded, 1 cancelled, 1 not run" <<<"$rest" || fail "summary"
# The child is gone: killed, not left to init.
gone_within 10 "$child" || fail "the command's child $child survived the interrupt"
echo "PASS"
