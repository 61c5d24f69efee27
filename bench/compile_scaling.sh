#!/usr/bin/env bash
# Compile time and peak memory of one translation unit per random DAG of N
# steps (bench/random_dag.py), written three ways: penstock, the same DAG as
# oneTBB flow graph continue_nodes (the in-tree peer), and plain calls.
# `g++ -O2 -c`, one compile at a time, with the include paths and defines the
# quickstart example is built with in BUILD (default build/bench). Prints a
# Markdown table: seconds and MB for each, and penstock / flow graph.
#
#   bench/compile_scaling.sh [BUILD] [N...]     (default N: 25 100 250 500 1000)
#   FLOW_GRAPH_UP_TO=500 bench/compile_scaling.sh ...   (skip the flow graph above 500 steps)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build/bench}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(25 100 250 500 1000)
commands="$build/compile_commands.json"
[ -f "$commands" ] || { echo "compile_scaling.sh: no $commands (configure $build first)" >&2; exit 2; }
cxx=${CXX:-g++}

# -I, -isystem, -D and -std of the quickstart's own compile command.
mapfile -t flags < <(python3 - "$commands" <<'PY'
import json, shlex, sys
for entry in json.load(open(sys.argv[1])):
    if entry['file'].endswith('examples/quickstart/quickstart.cpp') or entry['file'].endswith('quickstart.cpp'):
        words = shlex.split(entry.get('command') or ' '.join(entry['arguments']))
        keep, i = [], 0
        while i < len(words):
            w = words[i]
            if w in ('-isystem', '-I', '-D'):
                keep += [w, words[i + 1]]; i += 2; continue
            if w.startswith(('-I', '-D', '-std=')):
                keep.append(w)
            i += 1
        print('\n'.join(keep))
        break
else:
    sys.exit('compile_scaling.sh: no quickstart.cpp in ' + sys.argv[1])
PY
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "seconds MB" of one compile; "failed" if it did not compile.
measure() {
  local source=$1
  if /usr/bin/time -f '%e %M' -o "$work/time" "$cxx" -O2 -c "${flags[@]}" "$source" -o "$work/out.o" \
      2>"$work/errors"; then
    read -r seconds kb <"$work/time"
    echo "$seconds $((kb / 1024))"
  else
    echo "failed"
    head -n 5 "$work/errors" >&2
  fi
}

echo "| steps | penstock | flow graph | plain calls | penstock / flow graph (time) |"
echo "|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  row=()
  for flavor in penstock flowgraph plain; do
    if [ "$flavor" = flowgraph ] && [ -n "${FLOW_GRAPH_UP_TO:-}" ] && [ "$n" -gt "$FLOW_GRAPH_UP_TO" ]; then
      row+=("skipped")
      continue
    fi
    python3 "$here/random_dag.py" --steps "$n" --flavor "$flavor" -o "$work/$flavor.cpp"
    row+=("$(measure "$work/$flavor.cpp")")
  done
  cell() { case $1 in failed | skipped) echo "$1" ;; *) awk '{printf "%.2f s, %d MB", $1, $2}' <<<"$1" ;; esac; }
  ratio=$(awk -v a="${row[0]}" -v b="${row[1]}" 'BEGIN { split(a, x, " "); split(b, y, " ");
    if (x[2] == "" || y[2] == "" || y[1] == 0) print "-"; else printf "%.2f", x[1] / y[1] }')
  echo "| $n | $(cell "${row[0]}") | $(cell "${row[1]}") | $(cell "${row[2]}") | $ratio |"
done
