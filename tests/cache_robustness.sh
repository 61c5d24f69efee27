#!/usr/bin/env bash
# Step-cache robustness across processes and on a real full disk
# (cache_robustness_target.cpp says what each pipeline does):
#
#   cache_robustness.sh TARGET lease_renewal   a 1 s lease, a step of 5 s, a second process: computed once
#   cache_robustness.sh TARGET element_leases  4 processes, overlapping map inputs: each element computed once
#   cache_robustness.sh TARGET disk_full       the cache on a 4 MiB tmpfs, 40 MB outputs: right output,
#                                              a warning naming the step, exit 0 (exits 77, skipped,
#                                              where no tmpfs can be mounted)
#   cache_robustness.sh TARGET disk_full_files the cache on a 4 MiB tmpfs, a command writing an 8 MiB
#                                              file: the step runs (its files in $TMPDIR), right output,
#                                              a warning saying where, exit 0 (77 as above)
#
# Prints PASS at the end.
set -euo pipefail

target=$1
what=$2
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}atexit_sleep_ms=0"

work=$(mktemp -d)
mounted=""
cleanup() {
  local job
  for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $mounted ]]; then umount "$mounted" 2>/dev/null || true; fi
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL ($what): $*" >&2
  for f in "$work"/*.err; do [[ -f $f ]] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}

# wait_for COMMAND...: polls a condition for up to 60 s.
wait_for() {
  local tries=0
  until "$@"; do
    ((++tries < 6000)) || fail "timed out waiting for: $*"
    sleep 0.01
  done
}

case $what in
  lease_renewal)
    # A holds the lease and computes for 5 s, five times its lease's TTL;
    # B asks for the same key meanwhile. B must wait for A's result, not
    # take the lease over (A is alive and renews it) and compute it again.
    "$target" slow "$work/cache" "$work/log" "$work/gate" >"$work/a.out" 2>"$work/a.err" &
    a=$!
    wait_for grep -qs '^slow' "$work/log"
    "$target" slow "$work/cache" "$work/log" "$work/gate" >"$work/b.out" 2>"$work/b.err" &
    b=$!
    sleep 5  # the subject of the test: longer than the 1 s TTL
    touch "$work/gate"
    wait "$a" || fail "A exited $?"
    wait "$b" || fail "B exited $?"
    [[ $(grep -c '^slow' "$work/log") == 1 ]] || fail "computed $(grep -c '^slow' "$work/log") times: $(cat "$work/log")"
    grep -qx 'slow = 42' "$work/a.out" || fail "A printed $(cat "$work/a.out")"
    grep -qx 'slow = 42' "$work/b.out" || fail "B printed $(cat "$work/b.out")"
    grep -q '1 from cache' "$work/b.err" || fail "B did not take it from the cache: $(cat "$work/b.err")"
    ;;
  element_leases)
    # Four processes over overlapping ranges (0-59, 20-79, 40-99, 60-119):
    # 120 distinct elements, each computed exactly once among them all.
    pids=()
    for k in 0 1 2 3; do
      "$target" elements "$work/cache" "$work/log" $((k * 20)) 60 >"$work/$k.out" 2>"$work/$k.err" &
      pids+=($!)
    done
    for k in 0 1 2 3; do wait "${pids[$k]}" || fail "process $k exited $?"; done
    for k in 0 1 2 3; do
      expected=0
      for ((x = k * 20; x < k * 20 + 60; ++x)); do expected=$((expected + x * x)); done
      grep -qx "total = $expected" "$work/$k.out" || fail "process $k printed $(cat "$work/$k.out"), not $expected"
    done
    computed=$(wc -l <"$work/log")
    distinct=$(awk '{print $2}' "$work/log" | sort -u | wc -l)
    [[ $distinct == 120 ]] || fail "$distinct distinct elements computed, not 120"
    [[ $computed == 120 ]] || fail "$computed element computations for 120 elements: $(awk '{print $2}' "$work/log" | sort | uniq -d | tr '\n' ' ')"
    ;;
  disk_full | disk_full_files)
    mkdir "$work/small"
    if ! mount -t tmpfs -o size=4m tmpfs "$work/small" 2>/dev/null; then
      echo "SKIP ($what): cannot mount a tmpfs here (needs root)"
      exit 77
    fi
    mounted="$work/small"
    ;;&
  disk_full)
    PENSTOCK_HOME="$work/none" "$target" cli run --quiet --no-cache >"$work/ref.out" 2>"$work/ref.err" ||
      fail "the reference run exited $?"
    for i in 1 2 3; do
      status=0
      PENSTOCK_HOME="$work/small/cache" "$target" cli run --quiet >"$work/run.out" 2>"$work/run.err" || status=$?
      [[ $status == 0 ]] || fail "run $i exited $status"
      cmp -s "$work/run.out" "$work/ref.out" || fail "run $i printed $(cat "$work/run.out"), not $(cat "$work/ref.out")"
      grep -q "warning: step 'big': its output was not stored in the cache" "$work/run.err" ||
        fail "run $i gave no warning naming the step: $(cat "$work/run.err")"
    done
    ;;
  disk_full_files)
    export TMPDIR=$work/tmp
    mkdir "$TMPDIR"
    PENSTOCK_HOME="$work/none" "$target" files run --quiet --no-cache >"$work/ref.out" 2>"$work/ref.err" ||
      fail "the reference run exited $?: $(cat "$work/ref.err")"
    grep -q '^lines = 932067$' "$work/ref.out" || fail "the reference run printed $(cat "$work/ref.out")"
    for i in 1 2 3; do
      status=0
      PENSTOCK_HOME="$work/small/cache" "$target" files run --quiet >"$work/run.out" 2>"$work/run.err" || status=$?
      [[ $status == 0 ]] || fail "run $i exited $status: $(cat "$work/run.err")"
      cmp -s "$work/run.out" "$work/ref.out" || fail "run $i printed $(cat "$work/run.out"), not $(cat "$work/ref.out")"
      grep -q "MiB free: this run's step files are written in $TMPDIR/penstock-work-$(id -u)/" "$work/run.err" ||
        fail "run $i did not say where its step files went: $(cat "$work/run.err")"
    done
    ;;
  *)
    fail "unknown test"
    ;;
esac
echo PASS
