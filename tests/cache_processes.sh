#!/usr/bin/env bash
# The step cache shared by several processes of one pipeline binary
# (cache_processes_target.cpp), through its command line:
#
#   cache_processes.sh TARGET stable_keys        a second process takes every step from the cache
#   cache_processes.sh TARGET one_param_changed  explain names the parameter; exactly the expected steps rerun
#   cache_processes.sh TARGET concurrent_runs    4 runs at once on an empty cache: each key computed once
#   cache_processes.sh TARGET kill9              50 runs killed at a random moment; the next run is right
#   cache_processes.sh TARGET gc_while_reading   `cache gc --max-size 0` in a loop beside cached runs
#   cache_processes.sh TARGET damaged_blob       flipped / truncated blobs: a warning, the right output
#
# Which steps ran is read from the log the target appends to
# ($PENSTOCK_TEST_LOG: one line "<step> <pid>" per step body started, and
# "square:<x> <pid>" per map element computed). Every expected output is that
# of a `run --no-cache` in a cache directory of its own. Prints PASS at the end.
# No assertion depends on how long anything takes; the only timing is where
# kill9 sends its signal, which only changes which state the kill leaves.
set -euo pipefail

target=$1
what=$2

# Under ThreadSanitizer (the tsan preset), a process whose threads still run
# at exit sleeps a second (atexit_sleep_ms) before it ends; these tests start
# a few hundred runs, so they do without that pause.
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}atexit_sleep_ms=0"

work=$(mktemp -d)
cleanup() {
  local job
  for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done  # runs this script started, after a failure
  wait 2>/dev/null || true
  chmod -R u+w "$work" 2>/dev/null || true  # blobs are read-only
  rm -rf "$work"
}
trap cleanup EXIT

# On stderr, so that a failure inside $(...) is seen too.
fail() {
  echo "FAIL ($what): $*" >&2
  exit 1
}

# Every step of the pipeline, in a fixed order, and the map's elements for n.
steps=(source slow left right join bucket tag shards square total report)
step_bodies=(source slow left right join bucket tag shards total report)  # square logs per element
elements_for() { for ((x = $1; x < $1 + 20; ++x)); do echo "square:$x"; done; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run HOME LOG OUT ERR ARGS...: one run of the target with its own cache
# directory and step log; stdout to OUT, stderr to ERR; returns its status.
run() {
  local home=$1 log=$2 out=$3 err=$4
  shift 4
  PENSTOCK_HOME=$home PENSTOCK_TEST_LOG=$log "$target" "$@" >"$out" 2>"$err"
}

# reference N: the outputs of `run --no-cache --param n=N`, in a clean
# cache directory of its own, cached in $work/ref-N.
reference() {
  local file=$work/ref-$1
  if [[ ! -f $file ]]; then
    run "$work/ref-home" /dev/null "$file" "$work/ref-err" run --no-cache --quiet --param "n=$1" ||
      fail "reference run for n=$1 failed: $(cat "$work/ref-err")"
    [[ -s $file ]] || fail "reference run for n=$1 printed nothing"
  fi
  echo "$file"
}

# same_output FILE N WHAT: FILE holds exactly the reference outputs for n=N.
same_output() {
  local ref
  ref=$(reference "$2")
  cmp -s "$1" "$ref" || fail "$3: outputs differ from the --no-cache reference for n=$2:
$(diff "$ref" "$1" || true)"
}

# Sorted names of the step bodies and map elements that a log records.
ran() { if [[ -f $1 ]]; then cut -d' ' -f1 "$1" | sort; fi; }
# Every line of a step log naming one entry more than once.
duplicates() { if [[ -f $1 ]]; then cut -d' ' -f1 "$1" | sort | uniq -d; fi; }

# 1. A run in process A, then the same run in process B: B takes all 11 steps
# from the cache (its summary says so and its log stays empty), and both
# print the reference outputs.
stable_keys() {
  local home=$work/home
  run "$home" "$work/a.log" "$work/a.out" "$work/a.err" run || fail "run A: $(cat "$work/a.err")"
  run "$home" "$work/b.log" "$work/b.out" "$work/b.err" run || fail "run B: $(cat "$work/b.err")"
  cat "$work/b.err"
  same_output "$work/a.out" 3 "run A"
  same_output "$work/b.out" 3 "run B"
  [[ "$(ran "$work/a.log")" == "$( (printf '%s\n' "${step_bodies[@]}" && elements_for 3) | sort)" ]] ||
    fail "run A did not run every step once: $(ran "$work/a.log" | tr '\n' ' ')"
  [[ ! -s $work/b.log ]] || fail "run B ran steps: $(tr '\n' ' ' <"$work/b.log")"
  grep -q "^pipeline 'processes': 11 succeeded (11 from cache) in " "$work/b.err" ||
    fail "run B's summary does not say 11 from cache"
}

# 2. n: 3 -> 4 in a second process. explain names the parameter for the three
# steps that read it; the run computes source, slow, left, right, join (their
# values change), bucket (0 again: early cutoff, so tag stays cached), shards,
# the one new element square:23 (3..22 are cached), total and report.
one_param_changed() {
  local home=$work/home
  run "$home" "$work/a.log" "$work/a.out" "$work/a.err" run --quiet || fail "first run: $(cat "$work/a.err")"
  run "$home" "$work/explain.log" "$work/explain.out" "$work/explain.err" explain --param n=4 ||
    fail "explain: $(cat "$work/explain.err")"
  cat "$work/explain.out"
  [[ ! -s $work/explain.log ]] || fail "explain ran steps: $(tr '\n' ' ' <"$work/explain.log")"
  local step
  for step in source bucket shards; do
    grep -Eq "^$step +MISS +parameter 'n' changed: 3 -> 4\$" "$work/explain.out" ||
      fail "explain does not say that parameter 'n' changed for $step"
  done
  grep -q "^0 of 11 steps cached\$" "$work/explain.out" || fail "explain's count"

  run "$home" "$work/b.log" "$work/b.out" "$work/b.err" run --param n=4 || fail "second run: $(cat "$work/b.err")"
  cat "$work/b.err"
  same_output "$work/b.out" 4 "second run"
  local expected
  expected=$(printf '%s\n' source slow left right join bucket shards square:23 total report | sort)
  [[ "$(ran "$work/b.log")" == "$expected" ]] ||
    fail "the second run computed {$(ran "$work/b.log" | tr '\n' ' ')}, expected {$(tr '\n' ' ' <<<"$expected")}"
  grep -q "^pipeline 'processes': 11 succeeded (1 from cache) (square: 19 of 20 elements from cache) in " \
    "$work/b.err" || fail "the second run's summary"

  # And back to n=3 in a third process: all of it is still cached.
  run "$home" "$work/c.log" "$work/c.out" "$work/c.err" run || fail "third run: $(cat "$work/c.err")"
  same_output "$work/c.out" 3 "third run"
  [[ ! -s $work/c.log ]] || fail "the run back at n=3 ran steps: $(tr '\n' ' ' <"$work/c.log")"
}

# 3. Four runs started at the same moment (each says it is ready on one FIFO
# and waits to open another until the test opens it) on one empty cache: all
# exit 0 with the reference outputs, and across the four, each step body ran
# exactly once and each of the 20 map elements was computed exactly once (the
# map node is leased as a whole, so one process computes all its elements).
# Three rounds, each on a fresh cache: slow making 0, 0 and 100 passes of work
# (tight races, then lease waits).
concurrent_runs() {
  local round passes n i status
  for round in 1 2 3; do
    passes=$((round == 3 ? 100 : 0))
    n=$((round * 10 + 1))
    local home=$work/home-$round log=$work/log-$round gate=$work/gate-$round ready_fd gate_fd
    mkfifo "$gate" "$gate.ready"
    exec {ready_fd}<>"$gate.ready" # read-write: opening it does not block
    local pids=()
    for i in 1 2 3 4; do
      PENSTOCK_TEST_GATE=$gate run "$home" "$log" "$work/out-$round-$i" "$work/err-$round-$i" \
        run --param "n=$n" --param "work=$passes" &
      pids+=($!)
    done
    # One line per run at the gate; a run that dies first never writes one.
    for i in 1 2 3 4; do
      read -r -t 120 -u "$ready_fd" _ || fail "round $round: only $((i - 1)) of 4 runs reached the gate"
    done
    exec {gate_fd}<>"$gate" # a writer: every run blocked opening the gate goes on
    for i in 1 2 3 4; do
      status=0
      wait "${pids[$((i - 1))]}" || status=$?
      ((status == 0)) || fail "round $round: run $i exited with $status: $(cat "$work/err-$round-$i")"
    done
    exec {gate_fd}>&- {ready_fd}<&-
    for i in 1 2 3 4; do
      same_output "$work/out-$round-$i" "$n" "round $round, run $i"
      grep "^pipeline 'processes'" "$work/err-$round-$i" || true
    done
    local dup
    dup=$(duplicates "$log")
    [[ -z $dup ]] || fail "round $round: computed more than once: $(tr '\n' ' ' <<<"$dup")
$(sort "$log")"
    [[ "$(ran "$log")" == "$( (printf '%s\n' "${step_bodies[@]}" && elements_for "$n") | sort)" ]] ||
      fail "round $round: the four runs together computed {$(ran "$log" | tr '\n' ' ')}"
    # Each step computed by one of the four, so 3 x 11 hits in their summaries.
    local hits=0 h
    while read -r h; do hits=$((hits + h)); done < <(sed -n \
      "s/^pipeline 'processes': 11 succeeded (\([0-9]*\) from cache).*/\1/p" "$work"/err-"$round"-*)
    ((hits == 33)) || fail "round $round: the four summaries count $hits hits, expected 33"
    echo "round $round (work=$passes): steps computed per process id:" \
      "$(cut -d' ' -f2 "$log" | sort | uniq -c | tr -s ' \n' ' ')"
  done
}

# 4. Crash safety: 50 times, a run on a new n (every key new but for the map
# elements it shares with earlier n) is killed with SIGKILL at a random moment
# within one run's duration, with slow making 0 to 30 passes of work so the kill lands
# on different steps; then the same run, not killed, exits 0 with exactly
# the reference outputs and reports no damaged entry (a killed writer must
# never leave a half-written entry behind). One cache directory throughout,
# so the killed runs' leftovers (temporary files, stale leases) accumulate.
kill9() {
  local home=$work/home iterations=50
  # How long an uncached run takes here (the shortest of three), to spread
  # the kills over it: only where the kill lands depends on this.
  local i start took duration=1000000
  for i in 1 2 3; do
    start=$(now_ms)
    run "$work/calibrate-$i" /dev/null "$work/calibrate.out" "$work/calibrate.err" run --quiet --param "n=$((900 + i))" ||
      fail "calibration run: $(cat "$work/calibrate.err")"
    took=$(($(now_ms) - start))
    ((took < duration)) && duration=$took
  done
  echo "an uncached run takes about $duration ms; killing within that"

  local killed=0 finished=0 n passes delay pid status last
  declare -A last_started=()
  for ((i = 1; i <= iterations; ++i)); do
    n=$((100 + i))
    passes=$((RANDOM % 4 * 10))
    delay=$((RANDOM % (duration + passes)))
    rm -f "$work/killed.log"
    PENSTOCK_HOME=$home PENSTOCK_TEST_LOG=$work/killed.log \
      "$target" run --quiet --param "n=$n" --param "work=$passes" >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -9 "$pid" 2>/dev/null || true
    status=0
    wait "$pid" 2>/dev/null || status=$?  # no "Killed" message
    if ((status == 137)); then
      killed=$((killed + 1))
      last=$( (tail -n 1 "$work/killed.log" 2>/dev/null || true) | cut -d' ' -f1 | sed 's/:.*//')
      last=${last:-none}
      last_started[$last]=$((${last_started[$last]:-0} + 1))
    elif ((status == 0)); then
      finished=$((finished + 1))
    else
      fail "iteration $i: the run to be killed exited with $status before the kill"
    fi

    status=0
    run "$home" /dev/null "$work/again.out" "$work/again.err" run --quiet --param "n=$n" --param "work=$passes" ||
      status=$?
    ((status == 0)) || fail "iteration $i (n=$n, work=$passes, killed after ${delay} ms):" \
      "the run after the kill exited with $status: $(cat "$work/again.err")"
    same_output "$work/again.out" "$n" "iteration $i (n=$n, work=$passes, killed after ${delay} ms)"
    ! grep -q "warning:" "$work/again.err" ||
      fail "iteration $i (n=$n, killed after ${delay} ms): the run after the kill found damage: $(cat "$work/again.err")"
  done
  local histogram="" step
  for step in none "${steps[@]}"; do
    [[ -n ${last_started[$step]:-} ]] && histogram+=" $step:${last_started[$step]}"
  done
  echo "$iterations iterations: $killed killed mid-run, $finished finished before the kill"
  echo "last step body started when killed:$histogram"
  echo "temporary files left by killed writers: $(find "$home/blobs" -maxdepth 1 -name '.tmp-*' | wc -l)"
  # Some kills must land inside a run, or this test proved nothing.
  ((killed > 0)) || fail "no run was killed before it finished"
  # And the last state is a sound cache: gc cleans it, stats reads it.
  run "$home" /dev/null "$work/gc.out" "$work/gc.err" cache gc --max-age 1000d || fail "gc: $(cat "$work/gc.err")"
  cat "$work/gc.out"
}

# 5. gc while other processes read: a background loop runs
# `cache gc --max-size 0` 40 times, pausing 0 to 90 ms between two, while
# this process keeps starting runs on the populated cache (at least 20, and
# until the gc loop ends), every other one with --rerun left (which reads
# slow's 800 KB value from the cache). Every run must exit 0 with the
# reference outputs: some find the cache full, some find it emptied, some
# have it emptied under them and recompute; a value may be recomputed, never
# wrong.
gc_while_reading() {
  local home=$work/home
  run "$home" /dev/null "$work/populate.out" "$work/populate.err" run --quiet || fail "populate: $(cat "$work/populate.err")"
  (
    for ((g = 1; g <= 40; ++g)); do
      status=0
      run "$home" /dev/null "$work/gc.out" "$work/gc.err" cache gc --max-size 0 || status=$?
      if ((status != 0)); then
        echo "cache gc exited with $status: $(cat "$work/gc.err")" >>"$work/gc.failures"
        exit 1
      fi
      if grep -Eq '^entries removed +[1-9]' "$work/gc.out"; then echo "$g" >>"$work/gc.removed"; fi
    done
  ) &
  local collector=$! i=0 status args
  local ref
  ref=$(reference 3)
  while ((i < 20)) || kill -0 "$collector" 2>/dev/null; do
    i=$((i + 1))
    args=(run --quiet)
    if ((i % 2 == 0)); then args+=(--rerun left); fi
    status=0
    run "$home" "$work/reader-$i.log" "$work/reader-$i.out" "$work/reader-$i.err" "${args[@]}" || status=$?
    ((status == 0)) || fail "run $i (${args[*]}) beside gc exited with $status: $(cat "$work/reader-$i.err")"
    cmp -s "$work/reader-$i.out" "$ref" || fail "run $i (${args[*]}) beside gc printed wrong outputs:
$(diff "$ref" "$work/reader-$i.out" || true)
$(cat "$work/reader-$i.err")"
  done
  status=0
  wait "$collector" || status=$?
  ((status == 0)) || fail "the gc loop failed: $(cat "$work/gc.failures" 2>/dev/null)"
  # How the runs fared, for the record: a plain run computes nothing when it
  # found the cache full, a --rerun left run computes left, join and report.
  local runs=$i cached=0 partly=0 warned=0 computed
  for ((i = 1; i <= runs; ++i)); do
    computed=$(ran "$work/reader-$i.log" | wc -l)
    if ((computed == (i % 2 == 0 ? 3 : 0))); then cached=$((cached + 1)); else partly=$((partly + 1)); fi
    if grep -q "^warning: " "$work/reader-$i.err"; then warned=$((warned + 1)); fi
  done
  echo "$runs runs beside 40 gc runs ($(wc -l <"$work/gc.removed" 2>/dev/null || echo 0) of which removed entries):" \
    "$cached found every entry they needed, $partly recomputed some, $warned reported an entry removed under them"
  cat "$work"/reader-*.err | sort | uniq -c | sed 's/^/  /'
}

# 6. Damaged blobs through the command line: every blob flipped (then, in a
# second round, truncated) makes the next run exit 0 with the reference
# outputs and a "warning: step '...'" line; the run after that is clean and
# fully cached again.
damaged_blob() {
  local home=$work/home damage blob size byte
  for damage in flip truncate; do
    run "$home" /dev/null "$work/populate.out" "$work/populate.err" run --quiet ||
      fail "populate: $(cat "$work/populate.err")"
    local count=0
    while IFS= read -r -d '' blob; do
      chmod u+w "$blob"
      size=$(stat -c %s "$blob")
      if [[ $damage == flip ]]; then
        byte=$(od -An -tu1 -j $((size / 2)) -N1 "$blob" | tr -d ' ')
        printf '%b' "\\0$(printf '%03o' $((byte ^ 0x5a)))" | dd of="$blob" bs=1 seek=$((size / 2)) conv=notrunc status=none
      else
        truncate -s $((size / 2)) "$blob"
      fi
      count=$((count + 1))
    done < <(find "$home/blobs" -type f ! -name '.*' -print0)
    # Small values live in the index rows themselves: damage those too
    # (python3's sqlite3 module; the sqlite3 shell may not be installed).
    python3 - "$home/index.sqlite" "$damage" <<'PY' || fail "could not damage the index rows"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
if sys.argv[2] == "flip":
    db.execute("UPDATE entries SET inline_value = randomblob(length(inline_value)) WHERE length(inline_value) > 0")
else:
    db.execute("UPDATE entries SET inline_value = substr(inline_value, 1, length(inline_value) / 2) "
               "WHERE length(inline_value) > 0")
db.commit()
PY
    count=$((count + $(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(
        "SELECT count(*) FROM entries WHERE length(inline_value) > 0").fetchone()[0])' "$home/index.sqlite")))
    ((count > 0)) || fail "no value to damage"
    run "$home" "$work/$damage.log" "$work/$damage.out" "$work/$damage.err" run || fail "$damage: $(cat "$work/$damage.err")"
    echo "after $damage of $count blobs:"
    grep "^warning: \|^pipeline" "$work/$damage.err" || true
    same_output "$work/$damage.out" 3 "after $damage"
    grep -q "^warning: step '[a-z]*': " "$work/$damage.err" || fail "$damage: no warning on stderr"
    [[ -s $work/$damage.log ]] || fail "$damage: nothing was recomputed"

    run "$home" "$work/healed.log" "$work/healed.out" "$work/healed.err" run ||
      fail "after $damage, the next run: $(cat "$work/healed.err")"
    same_output "$work/healed.out" 3 "the run after the $damage run"
    ! grep -q "warning:" "$work/healed.err" || fail "after $damage, the next run warns: $(cat "$work/healed.err")"
    grep -q "^pipeline 'processes': 11 succeeded (11 from cache) in " "$work/healed.err" ||
      fail "after $damage, the next run is not fully cached: $(cat "$work/healed.err")"
    [[ ! -s $work/healed.log ]] || fail "after $damage, the next run ran steps"
  done
}

case $what in
  stable_keys | one_param_changed | concurrent_runs | kill9 | gc_while_reading | damaged_blob) "$what" ;;
  *) fail "unknown test '$what'" ;;
esac
echo "PASS"
