#!/usr/bin/env bash
# A command step's process group when its pipeline is stopped while it runs:
#   command_interrupt.sh TARGET interrupt  Ctrl-C: the group gets SIGTERM, then
#                                          SIGKILL after its grace period, so
#                                          even a child that ignores SIGTERM is
#                                          gone; the dependent step never
#                                          starts; exit code 130
#   command_interrupt.sh TARGET kill9      kill -9 of the pipeline, which can
#                                          end nothing then: the helper that
#                                          outlives it for this kills the group
#                                          (not left running under init)
# No sleeps but gone_within's polls: the command says "ready" (a line of the
# step's log) once its child runs.
source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
target=$1
what=$2
export PENSTOCK_HOME=$work/cache
export PID_FILE=$work/child.pid
start_until "[long] ready" "$target" run
child=$(cat "$PID_FILE")
kill -0 "$child" || fail "the command's child $child is not running"
case $what in
  interrupt)
    interrupt
    echo "$rest"
    [[ $status -eq 130 ]] || fail "exit code $status, expected 130"
    grep -q "interrupted: pipeline 'command_interrupt': 0 succeeded, 1 cancelled, 1 not run" <<<"$rest" ||
      fail "summary"
    # The child is gone: killed, not left to init.
    gone_within 10 "$child" || fail "the command's child $child survived the interrupt"
    ;;
  kill9)
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    gone_within 10 "$child" || fail "the command's child $child survived its pipeline's kill -9"
    echo "pipeline $pid killed with kill -9; its command's child $child is gone"
    ;;
  *) fail "unknown case $what" ;;
esac
echo "PASS"
