#!/usr/bin/env bash
# The MLflow round trip: starts a real `mlflow server` on 127.0.0.1 (SQLite
# store, from the virtual environment VENV that scripts/install_deps.sh
# makes), sends it runs of TARGET (tests/mlflow_target.cpp) with
# `run --mlflow` and the standalone TOOL's `export-mlflow`, and reads them
# back with MLflow's own Python client (mlflow_roundtrip_check.py):
#   - parameters, every metric point (2,500 of `train/loss`: three log-batch
#     calls at MLflow's 1,000-metric limit), tags (mlflow.user,
#     mlflow.source.git.commit, the pipeline), the step runs nested
#     (mlflow.parentRunId) with their status, metrics and errors;
#   - a failed run (FAILED, the step's error, the skipped step KILLED) and a
#     cached rerun (its steps cached);
#   - an unreachable server: a warning and exit 0; export-mlflow later sends
#     the run, a second time says it is there, --replace sends it anew;
#   - a parameter value that is not UTF-8, a parameter name with ':';
#   - an https:// URI refused as a bad argument (exit 2).
#   mlflow_roundtrip.sh TARGET TOOL VENV
# Prints PASS at the end; exits 77 (skipped) when VENV has no mlflow.
set -euo pipefail

target=$1
tool=$2
venv=$3
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}atexit_sleep_ms=0"

if [[ ! -x $venv/bin/mlflow ]]; then
  echo "SKIP (no mlflow in $venv: scripts/install_deps.sh makes it)"
  exit 77
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then kill -TERM -- "-$server" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.err "$work"/server.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
  exit 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

port=$(free_port)
uri="http://127.0.0.1:$port"
# Its own process group, so that the cleanup ends the server's workers too.
setsid "$venv/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
  --backend-store-uri "sqlite:///$work/mlflow.db" --default-artifact-root "$work/artifacts" \
  >"$work/server.log" 2>&1 &
server=$!
for ((tries = 0; ; ++tries)); do
  python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$uri" \
    2>/dev/null && break
  kill -0 "$server" 2>/dev/null || fail "mlflow server exited"
  ((tries < 240)) || fail "mlflow server not up after 120 s"
  sleep 0.5
done
echo "mlflow server up at $uri"

# The pipeline runs in a git working tree: its commit is sent as a tag.
repo="$work/repo"
mkdir -p "$repo"
git -C "$repo" init -q
git -C "$repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m first
commit=$(git -C "$repo" rev-parse HEAD)
export PENSTOCK_HOME="$work/home"
cd "$repo"

latest() { "$tool" runs --limit 1 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])'; }

# 1. A run with 2,500 metric points.
"$target" run --mlflow "$uri" --experiment roundtrip -p epochs=2500 -p lr=0.001 >"$work/1.out" 2>"$work/1.err" ||
  fail "run 1 exited $?"
grep -q "in MLflow: $uri/#/experiments/" "$work/1.err" || fail "run 1 did not say where it is in MLflow"
first=$(latest)
"$tool" show "$first" --json >"$work/first.json"

# 2. The same again: every step cached.
"$target" run --mlflow "$uri" --experiment roundtrip -p epochs=2500 -p lr=0.001 >"$work/2.out" 2>"$work/2.err" ||
  fail "run 2 exited $?"
cached=$(latest)

# 3. A failed run.
if "$target" run --quiet --mlflow "$uri" --experiment roundtrip -p fail=1 >"$work/3.out" 2>"$work/3.err"; then
  fail "run 3 (fail=1) exited 0"
fi
failed=$(latest)

# 4. The server unreachable: a warning, the run's result, exit 0.
dead=$(free_port)
"$target" run --mlflow "http://127.0.0.1:$dead" --experiment later -p epochs=3 >"$work/4.out" 2>"$work/4.err" ||
  fail "run 4 (server unreachable) exited $?"
grep -q '^report = ' "$work/4.out" || fail "run 4 printed no output"
grep -q "not sent to MLflow: MLflow at http://127.0.0.1:$dead is unreachable" "$work/4.err" ||
  fail "run 4 gave no warning that MLflow is unreachable"
later=$(latest)
"$tool" export-mlflow "$later" "$uri" >"$work/5.out" 2>"$work/5.err" || fail "export-mlflow exited $?"
grep -q "^run $later sent to MLflow as $uri/#/experiments/" "$work/5.out" || fail "export-mlflow said $(cat "$work/5.out")"
"$tool" export-mlflow "$later" "$uri" >"$work/6.out" 2>"$work/6.err" || fail "export-mlflow again exited $?"
grep -q "^run $later is already in MLflow" "$work/6.out" || fail "export-mlflow again said $(cat "$work/6.out")"
"$tool" export-mlflow "$later" "$uri" --replace --json >"$work/7.json" 2>"$work/7.err" ||
  fail "export-mlflow --replace exited $?"

# 5. A parameter value that is not UTF-8 (and a name MLflow does not take).
"$target" run --quiet --mlflow "$uri" --experiment odd -p $'label:name=caf\xe9' >"$work/8.out" 2>"$work/8.err" ||
  fail "run 8 (not UTF-8) exited $?"
odd=$(latest)

# 6. https: a bad argument, before anything runs.
set +e
"$target" run --mlflow "https://127.0.0.1:$port" >"$work/10.out" 2>"$work/10.err"
code=$?
set -e
[[ $code == 2 ]] || fail "run --mlflow https://... exited $code, not 2"
grep -q "https is not supported" "$work/10.err" || fail "https refused without saying so: $(cat "$work/10.err")"

"$venv/bin/python" "$(dirname "$0")/mlflow_roundtrip_check.py" "$uri" "$work/first.json" "$first" "$cached" \
  "$failed" "$later" "$work/7.json" "$odd" "$commit" "$(id -un)" || fail "MLflow's client disagrees"
echo "PASS"
