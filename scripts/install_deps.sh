#!/usr/bin/env bash
# Installs everything penstock needs to build, test and benchmark on Debian 12:
# Debian's packages with apt-get (as root, or through sudo), and MLflow from
# PyPI into a virtual environment under build/ (Debian's Python refuses
# system-wide pip installs), for the test that sends runs to a real
# `mlflow server`. Idempotent: what is present is skipped. Nothing is
# downloaded at build time.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libtbb-dev libboost-dev libcereal-dev libxxhash-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev
  libthrust-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  graphviz clang-format
  xxhash
  python3 python3-venv python3-pip
  chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages already installed"
else
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  echo "install_deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# MLflow, for tests/mlflow_roundtrip.sh (CMake's PENSTOCK_MLFLOW_VENV).
mlflow_version=3.17.2
venv=build/mlflow-venv
if [[ -x $venv/bin/mlflow ]] && [[ $("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)' 2>/dev/null) == "$mlflow_version" ]]; then
  echo "install_deps: mlflow $mlflow_version already in $venv"
else
  echo "install_deps: installing mlflow $mlflow_version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow==$mlflow_version"
fi
