#!/usr/bin/env bash
# Builds and tests the Conan 2 package (conan/) offline: oneTBB, fmt, CLI11,
# cereal, xxHash and SQLite come from the system through conan/profiles/system's
# [platform_requires]. Conan itself is installed from PyPI into a virtual
# environment under build/ (Debian's Python refuses system-wide pip installs),
# and CONAN_HOME lives under build/ too, so nothing outside the checkout is
# touched and no remote is contacted.
#   bash scripts/conan_create.sh [extra conan create arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

conan_version=2.34.0
venv=build/conan-venv
export CONAN_HOME="$PWD/build/conan-home"

if [[ ! -x $venv/bin/conan ]] || [[ $("$venv/bin/conan" --version) != "Conan version $conan_version" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "conan==$conan_version"
fi
conan=("$venv/bin/conan")
"${conan[@]}" --version

# A default profile must exist, although --profile:all replaces it here.
"${conan[@]}" profile path default >/dev/null 2>&1 || "${conan[@]}" profile detect
start=$SECONDS
# --no-remote: resolve in the local cache and the profile only; never a remote.
# The test_package's build goes under build/ as well, and no
# CMakeUserPresets.json is written into conan/test_package/.
"${conan[@]}" create conan --profile:all conan/profiles/system --build=missing --no-remote \
  -c tools.cmake.cmake_layout:test_folder="$PWD/build/conan-test-package" \
  -c tools.cmake.cmaketoolchain:user_presets= "$@"
echo "conan_create: passed in $((SECONDS - start)) s"
