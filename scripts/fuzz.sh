#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into ./build-fuzz and runs each for a bounded time,
# starting from a copy of its checked-in seed corpus (tests/fuzz/corpus/<target>/; the checkout is never
# written). Fails on any crash, leak, hang, out-of-memory or UB report and prints the input's path.
#
#   scripts/fuzz.sh                 # every target, 45 s each (CI)
#   scripts/fuzz.sh 300             # 5 minutes each
#   scripts/fuzz.sh 600 jinja       # some targets only (names as in tests/fuzz/<name>_fuzz.cpp)
#
# Targets run FUZZ_JOBS at a time (default: one per core). docs/fuzzing.md has the CI budget.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-45}
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/*_fuzz.cpp; do t=$(basename "$f" _fuzz.cpp); targets+=("$t"); done
fi
jobs=${FUZZ_JOBS:-$(nproc)}
t_start=$(date +%s)

# clang and its libFuzzer / sanitizer runtimes (Debian 12: clang-14 + libclang-rt-14-dev).
fuzzer_rt() { [ -f "$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ]; }
if ! command -v clang++ >/dev/null 2>&1 || ! fuzzer_rt; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang
  major=$(clang++ -dumpversion | cut -d. -f1)
  fuzzer_rt || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "libclang-rt-$major-dev"
fi

# Only the fuzz targets and the library code they link (CMakeLists.txt, OPTIQ_FUZZ).
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DOPTIQ_FUZZ=ON -DOPTIQ_BUILD_TESTS=OFF -DOPTIQ_BUILD_BENCH=OFF >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("${t}_fuzz"); done
cmake --build build-fuzz -j"$(nproc)" --target "${build_targets[@]}"
t_built=$(date +%s)

# Per-target limits: the largest useful input (seeds are well below) and a dictionary.
max_len() { case $1 in tokenizer_json) echo 65536 ;; jinja | model_config | request_body) echo 16384 ;; *) echo 8192 ;; esac; }
dict() { case $1 in jinja) echo tests/fuzz/jinja.dict ;; safetensors) echo tests/fuzz/safetensors.dict ;;
                    tokenizer_json | model_config | request_body) echo tests/fuzz/json.dict ;; esac; }

run_one() {
  local t=$1 dir=build-fuzz/run/$1
  rm -rf "$dir" && mkdir -p "$dir/corpus"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  local d; d=$(dict "$t")
  # -timeout: one input may not take 15 s (ASan is ~3x slower than a release build); -rss_limit_mb
  # also caps single allocations, so a hostile size field that asks for gigabytes is a failure.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "./build-fuzz/${t}_fuzz" "$dir/corpus" ${d:+-dict="$d"} -max_total_time="$secs" -timeout=15 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -artifact_prefix="$dir/" -print_final_stats=1 >"$dir/log" 2>&1
}
export -f run_one max_len dict
export secs

printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {} || true'

# A run failed if libFuzzer left an input behind or never reached its final stats (it died another way).
artifacts() { find "$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort; }
failed() { [ -n "$(artifacts "$1")" ] || ! grep -q '^stat::number_of_executed_units' "$1/log"; }
final_stat() { grep -oE "^stat::$2: *[0-9]+" "$1/log" | grep -oE '[0-9]+$' || echo -; }
# cov / ft / corp from libFuzzer's last status line.
last_field() { grep -E '^#[0-9]+\s' "$1/log" | tail -1 | grep -oE "$2: [0-9]+" | grep -oE '[0-9]+$' || echo -; }

status=0
printf '\n%-16s %12s %8s %7s %7s %7s  %s\n' target execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  dir=build-fuzz/run/$t
  result=ok
  if failed "$dir"; then result=FAIL; status=1; fi
  printf '%-16s %12s %8s %7s %7s %7s  %s\n' "$t" "$(final_stat "$dir" number_of_executed_units)" \
    "$(final_stat "$dir" average_exec_per_sec)" "$(last_field "$dir" cov)" "$(last_field "$dir" ft)" \
    "$(last_field "$dir" corp)" "$result"
done
for t in "${targets[@]}"; do
  dir=build-fuzz/run/$t
  failed "$dir" || continue
  echo
  echo "=== $t FAILED (log: $dir/log)"
  grep -E 'ERROR:|runtime error:|SUMMARY|deadly signal|out-of-memory|Test unit written' "$dir/log" | head -20 || true
  for a in $(artifacts "$dir"); do
    echo "input: $a ($(stat -c %s "$a") bytes); reproduce: ./build-fuzz/${t}_fuzz $a"
    if [ "$(stat -c %s "$a")" -le 4096 ]; then echo "base64: $(base64 -w0 "$a")"; fi
  done
done
t_end=$(date +%s)
echo
echo "fuzz: build $((t_built - t_start)) s, runs $((t_end - t_built)) s (${#targets[@]} targets x ${secs} s, $jobs at a time), total $((t_end - t_start)) s"
exit $status
