#!/usr/bin/env bash
# Installs the Debian dependencies, configures and builds optiq into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential cmake ninja-build pkg-config libhwy-dev nlohmann-json3-dev libcpp-httplib-dev libssl-dev
      libpcre2-dev libutf8proc-dev libstb-dev libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
# Test-only npm packages for the differential tokenizer test (needs node/npm; ctest also installs them).
if command -v npm >/dev/null 2>&1; then
  bash scripts/setup_npm.sh build/npm || echo "warning: npm install failed; ctest retries it (tokenizer_diff_npm_install)"
fi
# Test-only npm packages for the optiq serve integration tests (official OpenAI and Anthropic SDKs).
if command -v npm >/dev/null 2>&1; then
  bash scripts/setup_serve_npm.sh build/serve-npm || echo "warning: npm install failed; ctest retries it (serve_npm_install)"
fi
