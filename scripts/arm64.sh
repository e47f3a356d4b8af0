#!/usr/bin/env bash
# ARM64 check (meant to run in CI after the x86 tests; docs/ci.md): installs Debian's aarch64 cross toolchain,
# qemu-user and the :arm64 -dev packages, cross-builds the kernel, model-golden and tokenizer tests into
# build-arm64/ and runs them under qemu: the kernels on SVE CPU models of 128, 256, 512 and 2048-bit
# vectors and a NEON-only one, the model goldens on 128-bit SVE2, the tokenizer on the NEON model.
# Prints each step's wall time. Usage: bash scripts/arm64.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-arm64

step() {  # step NAME COMMAND...: runs COMMAND, then prints its wall time
  local name=$1 t0=$SECONDS
  shift
  echo "== arm64: $name"
  "$@"
  echo "== arm64: $name took $((SECONDS - t0)) s"
}

install() {
  # The arm64 libraries the tests link come as :arm64 packages. Header-only dependencies need no arm64
  # copy: nlohmann-json3-dev is Architecture: all, and stb is compiled in (STB_IMAGE_IMPLEMENTATION) from
  # the same /usr/include/stb headers the amd64 libstb-dev installs. Only the cross compiler is needed,
  # not crossbuild-essential-arm64 (which adds dpkg-cross and its Perl modules).
  local pkgs=(cmake ninja-build pkg-config nlohmann-json3-dev libstb-dev g++-aarch64-linux-gnu qemu-user-static
              libc6:arm64 libhwy-dev:arm64 libpcre2-dev:arm64 libutf8proc-dev:arm64 libgtest-dev:arm64)
  local sudo="" missing=() p
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && { echo "all installed"; return; }
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

configure() {
  local launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DOPTIQ_CROSS_TESTS_ONLY=ON "${launcher[@]}"
}

run_test() {  # run_test NAME: one ctest test; its output is kept in $BUILD/NAME.log
  local log="$BUILD/$1.log"
  ctest --test-dir "$BUILD" -R "^$1\$" --output-on-failure --timeout 900 -V >"$log" 2>&1 || { cat "$log"; return 1; }
  grep -E "Highway dispatched target|tests? from .* test suites? ran|PASSED|SKIPPED|FAILED" "$log" | sed 's/^[0-9]*: /  /'
  # A kernel run checks its CPU model's target (cmake/cross_tests.cmake) from this line: it must be there.
  case $1 in kernels_*) grep -q "Highway dispatched target" "$log" || { echo "$1: no dispatched target"; return 1; } ;; esac
}

[ "${1:-}" = "--no-install" ] || step install install
step configure configure
step build cmake --build "$BUILD" -j"$(nproc)"
for t in kernels_sve128 kernels_sve256 kernels_sve512 kernels_sve2048 kernels_neon model_goldens tokenizer; do
  step "$t (qemu)" run_test "$t"
done
