#!/usr/bin/env bash
# Run tracking across processes, through a pipeline binary's command line and
# the standalone tool:
#   tracking_processes.sh TARGET TOOL concurrent  4 processes record into one workspace at once:
#                                                 4 runs, each with its steps and metrics; none lost
#   tracking_processes.sh TARGET TOOL kill9       a run killed with kill -9 shows as crashed, not running
#   tracking_processes.sh TARGET TOOL exit_codes  each run's exit code (0, 1, 130 on Ctrl-C) is recorded
#   tracking_processes.sh TARGET TOOL disk_full   a workspace on a full file system: a warning, the right
#                                                 output, exit 0 (exits 77, skipped, where no tmpfs mounts)
#   tracking_processes.sh TARGET TOOL read_only   a workspace on a read-only file system: the same
# Prints PASS at the end.
set -euo pipefail

target=$1
tool=$2
what=$3
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}atexit_sleep_ms=0"

work=$(mktemp -d)
mounted=""
cleanup() {
  local job
  for job in $(jobs -p); do kill -9 "$job" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $mounted ]]; then umount "$mounted" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL ($what): $*" >&2
  for f in "$work"/*.err; do [[ -f $f ]] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}

wait_for() {
  local tries=0
  until "$@"; do
    ((++tries < 6000)) || fail "timed out waiting for: $*"
    sleep 0.01
  done
}

# json FILTER FILE: one value from a JSON file, with python3's json module.
json() { python3 -c "import json, sys; d = json.load(open(sys.argv[2])); print($1)" "$1" "$2"; }

export PENSTOCK_HOME="$work/home"

case $what in
  concurrent)
    pids=()
    for k in 1 2 3 4; do
      "$target" run --quiet --param value=$k --param sleep_ms=200 --experiment together >"$work/$k.out" 2>"$work/$k.err" &
      pids+=($!)
    done
    for k in 1 2 3 4; do wait "${pids[$((k - 1))]}" || fail "process $k exited $?"; done
    for k in 1 2 3 4; do grep -qx "result = $((k * k + 1))" "$work/$k.out" || fail "process $k printed $(cat "$work/$k.out")"; done
    "$tool" runs --experiment together --json >"$work/runs.json" 2>"$work/runs.err" || fail "runs exited $?"
    [[ $(json 'len(d)' "$work/runs.json") == 4 ]] || fail "$(json 'len(d)' "$work/runs.json") runs recorded, not 4"
    [[ $(json '" ".join(sorted(r["status"] for r in d))' "$work/runs.json") == "succeeded succeeded succeeded succeeded" ]] ||
      fail "statuses: $(json '[r["status"] for r in d]' "$work/runs.json")"
    for id in $(json '" ".join(r["id"] for r in d)' "$work/runs.json"); do
      "$tool" show "$id" --json >"$work/show.json" || fail "show $id exited $?"
      [[ $(json 'len(d["step_runs"])' "$work/show.json") == 3 ]] || fail "run $id has $(json 'len(d["step_runs"])' "$work/show.json") step runs"
      [[ $(json 'len([m for m in d["metrics"] if m["name"] == "progress"])' "$work/show.json") == 2 ]] ||
        fail "run $id: $(json 'd["metrics"]' "$work/show.json")"
      [[ $(json 'd["exit_code"]' "$work/show.json") == 0 ]] || fail "run $id: exit code $(json 'd["exit_code"]' "$work/show.json")"
    done
    # Each process's value is in exactly one run.
    for k in 1 2 3 4; do
      "$tool" runs --param value=$k --json >"$work/p.json"
      [[ $(json 'len(d)' "$work/p.json") == 1 ]] || fail "value=$k is in $(json 'len(d)' "$work/p.json") runs"
    done
    ;;
  kill9)
    "$target" run --quiet --no-cache --param sleep_ms=60000 >"$work/a.out" 2>"$work/a.err" &
    pid=$!
    running() { "$tool" runs --status running --json >"$work/r.json" 2>/dev/null && [[ $(json 'len(d)' "$work/r.json") == 1 ]]; }
    wait_for running
    # It logged while it ran: the heartbeat wrote its lines (every 5 s).
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    "$tool" runs --json >"$work/after.json"
    [[ $(json 'd[0]["status"]' "$work/after.json") == crashed ]] || fail "the killed run shows as $(json 'd[0]["status"]' "$work/after.json")"
    "$tool" runs --status running --json >"$work/r.json"
    [[ $(json 'len(d)' "$work/r.json") == 0 ]] || fail "a killed run still shows as running"
    # The next run is recorded as usual.
    "$target" run --quiet --param sleep_ms=0 >"$work/b.out" 2>"$work/b.err" || fail "the next run exited $?"
    "$tool" show latest --json >"$work/show.json"
    [[ $(json 'd["status"]' "$work/show.json") == succeeded ]] || fail "the next run: $(json 'd["status"]' "$work/show.json")"
    ;;
  exit_codes)
    "$target" run --quiet >"$work/ok.out" 2>"$work/ok.err" || fail "a good run exited $?"
    "$tool" show latest --json >"$work/ok.json"
    [[ $(json 'd["exit_code"]' "$work/ok.json") == 0 ]] || fail "recorded exit code $(json 'd["exit_code"]' "$work/ok.json")"
    status=0
    "$target" run --quiet --param fail=1 >"$work/bad.out" 2>"$work/bad.err" || status=$?
    [[ $status == 1 ]] || fail "a failing run exited $status"
    "$tool" show latest --json >"$work/bad.json"
    [[ $(json 'd["exit_code"]' "$work/bad.json") == 1 ]] || fail "recorded exit code $(json 'd["exit_code"]' "$work/bad.json")"
    [[ $(json 'd["status"]' "$work/bad.json") == failed ]] || fail "recorded status $(json 'd["status"]' "$work/bad.json")"
    [[ $(json '[s["error"] for s in d["step_runs"] if s["step"] == "slow"][0]' "$work/bad.json") == "asked to fail" ]] ||
      fail "recorded error $(json 'd["step_runs"]' "$work/bad.json")"
    # Ctrl-C (SIGINT to the process) while slow runs: interrupted, 130.
    "$target" run --quiet --no-cache --param sleep_ms=60000 >"$work/int.out" 2>"$work/int.err" &
    pid=$!
    running() { "$tool" runs --status running --json >"$work/r.json" 2>/dev/null && [[ $(json 'len(d)' "$work/r.json") == 1 ]]; }
    wait_for running
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [[ $status == 130 ]] || fail "an interrupted run exited $status"
    "$tool" show latest --json >"$work/int.json"
    [[ $(json 'd["status"]' "$work/int.json") == interrupted ]] || fail "recorded status $(json 'd["status"]' "$work/int.json")"
    [[ $(json 'd["exit_code"]' "$work/int.json") == 130 ]] || fail "recorded exit code $(json 'd["exit_code"]' "$work/int.json")"
    ;;
  disk_full | read_only)
    mkdir "$work/small"
    if ! mount -t tmpfs -o size=1m tmpfs "$work/small" 2>/dev/null; then
      echo "SKIP ($what): cannot mount a tmpfs here (needs root)"
      exit 77
    fi
    mounted="$work/small"
    export PENSTOCK_HOME="$work/small/home"
    if [[ $what == disk_full ]]; then
      mkdir -p "$PENSTOCK_HOME"
      dd if=/dev/zero of="$work/small/filler" bs=4k 2>/dev/null || true  # fills it: dd stops at ENOSPC
    else
      "$target" run --quiet --no-cache >"$work/first.out" 2>"$work/first.err" || fail "the first run exited $?"
      mount -o remount,ro "$work/small" || fail "cannot remount the tmpfs read-only"
    fi
    status=0
    "$target" run --quiet --no-cache --param value=5 >"$work/run.out" 2>"$work/run.err" || status=$?
    [[ $status == 0 ]] || fail "the run exited $status"
    grep -qx "result = 26" "$work/run.out" || fail "the run printed $(cat "$work/run.out")"
    grep -q "penstock: run .* is not recorded" "$work/run.err" || fail "no warning that the run is not recorded: $(cat "$work/run.err")"
    ;;
  *)
    echo "unknown case $what" >&2
    exit 2
    ;;
esac
echo PASS
