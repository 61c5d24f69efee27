#!/usr/bin/env bash
# The mixed example (Python scripts and C++ steps, examples/mixed.cpp) as a
# user runs it, on a copy of its scripts:
#   1. the first run computes its 5 steps, the second finds all 5 cached;
#   2. a comment added to featurize.py reruns featurize only: its output is
#      the same bytes, so train, save_model and report stay cached (early cutoff);
#   3. fewer digits in featurize.py's output rerun it and everything after it,
#      and `explain` says why before the run; generate stays cached;
#   4. an edit of the shared module (a declared source, lib/*.py) reruns the
#      steps that declare it, not generate.
# mixed_example.sh MIXED SCRIPTS_DIR; prints PASS at the end.
source "$(dirname "${BASH_SOURCE[0]}")/shell_test.sh"
mixed=$1
scripts=$2
export PENSTOCK_HOME=$work/cache
export PENSTOCK_MIXED_SCRIPTS=$work/scripts
cp -r "$scripts" "$PENSTOCK_MIXED_SCRIPTS"
cd "$work"
# run ARGS...: stdout to $work/out, the summary (stderr) to $work/err.
run() { "$mixed" run --param rows=2000 "$@" >"$work/out" 2>"$work/err" || fail "mixed $* exited $?: $(cat "$work/err")"; }
explain() { "$mixed" explain --param rows=2000 >"$work/explain" 2>&1 || fail "explain exited $?: $(cat "$work/explain")"; }
expect_explain() { grep -Eq "$1" "$work/explain" || fail "explain does not say '$1': $(cat "$work/explain")"; }

run
grep -q '5 succeeded in' "$work/err" || fail "first run: $(cat "$work/err")"
report=$(sed -n 's/^report = //p' "$work/out")
grep -q '^Accuracy: 0\.[0-9]*$' "$report" || fail "no accuracy in the report $report: $(cat "$report")"
accuracy=$(grep '^Accuracy' "$report")
run
grep -q '5 succeeded (5 from cache)' "$work/err" || fail "second run not all cached: $(cat "$work/err")"

# 2. A comment: featurize reruns to the same bytes.
echo "# a comment" >>"$PENSTOCK_MIXED_SCRIPTS/featurize.py"
explain
expect_explain "featurize +MISS  source $PENSTOCK_MIXED_SCRIPTS/featurize.py changed"
expect_explain "generate +HIT"
run
grep -q '5 succeeded (4 from cache)' "$work/err" || fail "after a comment, expected only featurize to run: $(cat "$work/err")"

# 3. Fewer digits: featurize, train, save_model and report rerun.
sed -i 's/^DIGITS = 6/DIGITS = 4/' "$PENSTOCK_MIXED_SCRIPTS/featurize.py"
grep -q '^DIGITS = 4' "$PENSTOCK_MIXED_SCRIPTS/featurize.py" || fail "the edit of featurize.py did not apply"
run
grep -q '5 succeeded (1 from cache)' "$work/err" || fail "after new digits, expected 4 steps to run: $(cat "$work/err")"
grep -q '^Accuracy: 0\.[0-9]*$' "$(sed -n 's/^report = //p' "$work/out")" || fail "no accuracy after the edit"
run
grep -q '5 succeeded (5 from cache)' "$work/err" || fail "rerun after the edit not all cached: $(cat "$work/err")"

# 4. The shared module: featurize and report declare lib/*.py.
echo "# shared" >>"$PENSTOCK_MIXED_SCRIPTS/lib/tables.py"
explain
expect_explain "featurize +MISS  source $PENSTOCK_MIXED_SCRIPTS/lib changed"
expect_explain "generate +HIT"
run
grep -q '5 succeeded (3 from cache)' "$work/err" || fail "after the module edit, expected featurize and report to run: $(cat "$work/err")"
echo "accuracy before the edits: ${accuracy#Accuracy: }"
echo PASS
