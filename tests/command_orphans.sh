#!/usr/bin/env bash
# kill -9 of a pipeline while a command step runs: the process can end
# nothing then, and its command's process group (the command and the child
# it started) is killed by the helper that outlives it for this (its
# socket's end of file), not left running under init. No sleeps but the
# polls of gone_within: the command says "ready" once its child runs.
source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
target=$1
export PENSTOCK_HOME=$work/cache
export PID_FILE=$work/child.pid
start_until "[long] ready" "$target" run
child=$(cat "$PID_FILE")
kill -0 "$child" || fail "the command's child $child is not running"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
gone_within 10 "$child" || fail "the command's child $child survived its pipeline's kill -9"
echo "pipeline $pid killed with kill -9; its command's child $child is gone"
echo "PASS"
