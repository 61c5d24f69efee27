#!/usr/bin/env bash
# The churn example after its data changes (issue: a cached `load` keyed on
# the path string kept printing the old accuracy):
#   1. flip half the labels: the next `run` prints what `run --no-cache` prints;
#   2. put the file back: every step is a cache hit again;
#   3. touch it without changing a byte: nothing reruns.
# churn_data_edit.sh CHURN CSV; prints PASS at the end.
source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
churn=$1
csv=$2
export PENSTOCK_HOME=$work/cache
data=$work/churn.csv
cp "$csv" "$data"
# run ARGS...: stdout to $work/out, the summary (stderr) to $work/err.
run() { "$churn" run --param "data=$data" "$@" >"$work/out" 2>"$work/err" || fail "churn $* exited $?: $(cat "$work/err")"; }

run
original=$(cat "$work/out")
run
grep -q '5 succeeded (5 from cache)' "$work/err" || fail "second run not all cached: $(cat "$work/err")"

# 1. Half the labels flipped (every other data row).
awk -F, 'BEGIN { OFS = "," } NR > 1 && NR % 2 == 0 { $NF = 1 - $NF } { print }' "$csv" >"$data.new"
mv "$data.new" "$data"
run --no-cache
uncached=$(cat "$work/out")
[[ $uncached != "$original" ]] || fail "flipping labels did not change the result ($original)"
run
[[ $(cat "$work/out") == "$uncached" ]] || fail "after the edit, run printed $(cat "$work/out"), --no-cache $uncached"
grep -q "5 succeeded in" "$work/err" || fail "after the edit, expected every step to run: $(cat "$work/err")"

# 2. Back to the original bytes: all hits, the original result.
cp "$csv" "$data"
run
[[ $(cat "$work/out") == "$original" ]] || fail "after restoring, run printed $(cat "$work/out"), not $original"
grep -q '5 succeeded (5 from cache)' "$work/err" || fail "restored file not all cached: $(cat "$work/err")"

# 3. A new modification time, the same bytes.
touch -d '+1 minute' "$data"
run
[[ $(cat "$work/out") == "$original" ]] || fail "after touch, run printed $(cat "$work/out")"
grep -q '5 succeeded (5 from cache)' "$work/err" || fail "touch reran steps: $(cat "$work/err")"

# A missing file stops the run before any step, naming the parameter and the path.
status=0
"$churn" run --param "data=$work/missing.csv" >"$work/out" 2>"$work/err" || status=$?
[[ $status == 2 ]] || fail "a missing file exited $status, not 2"
grep -q "parameter 'data'.*$work/missing.csv" "$work/err" || fail "the error does not name the parameter and path: $(cat "$work/err")"
echo PASS
