# Sourced by the shell tests (tests/*.sh, examples/churn_run_page.sh): strict
# mode, a scratch directory $work removed on exit (read-only files in it
# too), and the helpers they share.
#   source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
set -euo pipefail
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# fail MESSAGE: says why on stderr and ends the test.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# start_until READY COMMAND...: starts COMMAND (stdout and stderr together)
# and returns once it prints the line READY; its pid is left in $pid. No
# sleeps: READY is the command's own signal.
start_until() {
  local ready=$1 line=""
  shift
  coproc RUN { exec "$@" 2>&1; }
  pid=$RUN_PID
  while [[ $line != "$ready" ]]; do
    read -r line <&"${RUN[0]}" || fail "$1 ended before it printed '$ready'"
  done
}

# interrupt: sends what start_until started SIGINT, as Ctrl-C does, and waits
# for it to end: what it printed after READY is left in $rest, its exit code
# in $status.
interrupt() {
  kill -INT "$pid"
  rest=$(cat <&"${RUN[0]}")
  status=0
  wait "$pid" || status=$?
}

# gone_within SECONDS PID: whether process PID ends (or is a zombie no one
# has reaped yet) within SECONDS.
gone_within() {
  local give_up=$((SECONDS + $1)) state
  while ((SECONDS <= give_up)); do
    state=$(awk '{print $3}' "/proc/$2/stat" 2>/dev/null || echo gone)
    [[ $state == gone || $state == Z ]] && return 0
    sleep 0.05
  done
  return 1
}
