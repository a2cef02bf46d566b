#!/usr/bin/env bash
# Builds the libFuzzer targets (debug, -sanitize=fuzzer,address) and runs each for N seconds
# from its committed seed corpus. Exits non-zero on the first crash, invariant failure, leak of
# the time or memory limits, printing the reproducer; re-run one with
#   .build-fuzz/debug/TARGET path/to/crash-file
#
# Usage: Fuzz/run.sh [--seconds N] [--no-build] [--write-seeds] [TARGET...]
#   --seconds N    fuzzing time per target (default 30, what CI runs)
#   --no-build     use the binaries already built
#   --write-seeds  regenerate Fuzz/Corpus/TARGET from real encodings instead of fuzzing
# Environment: SCF_FUZZ_SCRATCH (build folder, default ROOT/.build-fuzz),
#   SCF_FUZZ_WORK (where new corpus inputs and crashes go, default SCRATCH/fuzz-work),
#   SCF_FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=2").
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ_DIR")
SCRATCH=${SCF_FUZZ_SCRATCH:-$ROOT/.build-fuzz}
WORK=${SCF_FUZZ_WORK:-$SCRATCH/fuzz-work}
ALL_TARGETS=(FuzzFrame FuzzNodeMessage FuzzTransaction FuzzAPIRequest)

seconds=30
build=1
write_seeds=0
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --write-seeds) write_seeds=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] || { echo "unknown target $target; targets: ${ALL_TARGETS[*]}" >&2; exit 2; }
done

if [[ $build -eq 1 ]]; then
  start=$(date +%s)
  mkdir -p "$SCRATCH"
  set +e
  swift build --package-path "$FUZZ_DIR" --scratch-path "$SCRATCH" --sanitize=fuzzer --sanitize=address >"$SCRATCH/fuzz-build.log" 2>&1
  code=$?
  set -e
  if [[ $code -ne 0 ]]; then grep -E 'error' "$SCRATCH/fuzz-build.log" | head -20; echo "fuzz build failed, log $SCRATCH/fuzz-build.log" >&2; exit 2; fi
  echo "fuzz build: $(( $(date +%s) - start )) s"
fi
BIN=$(swift build --package-path "$FUZZ_DIR" --scratch-path "$SCRATCH" --sanitize=fuzzer --sanitize=address --show-bin-path)

# Swift's runtime keeps metadata caches for the life of the process: not leaks.
# Swift's own crash backtracer is slow under ASan; libFuzzer prints the stack.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0}

status=0
for target in "${targets[@]}"; do
  binary="$BIN/$target"
  [[ -x $binary ]] || { echo "$binary is missing: build first (without --no-build)" >&2; exit 2; }
  seeds="$FUZZ_DIR/Corpus/$target"
  if [[ $write_seeds -eq 1 ]]; then
    rm -rf "$seeds"
    SCF_FUZZ_WRITE_SEEDS="$seeds" "$binary"
    continue
  fi
  corpus="$WORK/corpus/$target"
  artifacts="$WORK/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$WORK/$target.log"
  echo "== $target: ${seconds}s (corpus $corpus + $seeds; log $log)"
  # -malloc_limit_mb: any single allocation above 64 MiB is a finding (inputs are at most
  # 64 KiB, so only a length field trusted before it is checked could ask for that much).
  set +e
  # shellcheck disable=SC2086
  "$binary" -max_total_time="$seconds" -max_len=65536 -timeout=30 -rss_limit_mb=3072 -malloc_limit_mb=64 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" ${SCF_FUZZ_ARGS:-} "$corpus" "$seeds" >"$log" 2>&1
  code=$?
  set -e
  # libFuzzer separates the counter from the event with a tab; a summary line that is missing
  # (a run cut short) must not fail the script, whose verdict is libFuzzer's exit code.
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" | tr '\n' ' ' || true
  grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 | sed 's/^/\n  last: /' || true
  echo
  if [[ $code -ne 0 ]]; then
    status=1
    echo "!! $target failed (exit $code):"
    grep -E 'ERROR: libFuzzer|ERROR: AddressSanitizer|Fatal error|fuzz invariant|==ERROR|SUMMARY' "$log" | head -5 || true
    reproducer=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')
    echo "   reproducer: ${reproducer:-see $log}"
    echo "   replay:     $binary ${reproducer:-<crash-file>}"
  fi
done
exit $status
