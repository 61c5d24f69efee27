#!/usr/bin/env bash
# Installs everything penstock needs to build, test and benchmark on Debian 12.
# Idempotent: packages already present are skipped by apt-get. Run as root
# (or with sudo available). Nothing is downloaded at build time.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libtbb-dev libboost-dev libcereal-dev libxxhash-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev
  libthrust-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  graphviz clang-format
  xxhash
  python3-venv python3-pip
  chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
echo "install_deps: installing ${missing[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
