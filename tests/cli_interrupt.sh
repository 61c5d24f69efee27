#!/usr/bin/env bash
# Ctrl-C during `run`: the running step sees the stop, no new step starts, the
# summary says so, and the exit code is 130. No sleeps: the step tells us
# when it is running by printing "ready".
source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
target=$1
# A cache of its own, so an earlier run's cached step cannot change the summary.
export PENSTOCK_HOME=$work/cache
start_until ready "$target" run
interrupt
echo "$rest"
[[ $status -eq 130 ]] || fail "exit code $status, expected 130"
grep -q "interrupted: pipeline 'interrupt': 1 succeeded, 1 cancelled, 1 not run" <<<"$rest" || fail "summary"
grep -q "saw the stop" <<<"$rest" || fail "the step did not see the stop"
echo "PASS"
