#!/usr/bin/env bash
# `make fuzz`: builds Frond's fuzz targets (tests/fuzz, a cargo workspace of its own) and
# runs each for a set time with libFuzzer, one after the other, at the lowest priority.
#
#   FUZZ_SECS=N        seconds per target (default 60)
#   FUZZ_TARGETS=a,b   which targets (default: elf,bootfmt,fwd,net,fs,rv6)
#   FUZZ_RUNS=N        also stop a target after N executions (default: no limit)
#   FUZZ_ARGS="..."    more libFuzzer options, passed to every target
#   FUZZ_JOBS=N        run N targets at a time (default 1); each is one process
#
# Engine: libFuzzer, linked by the libfuzzer-sys crate (which compiles its C++ sources
# with the system's C++ compiler). Stable rustc cannot use -Zsanitizer=..., which is how
# cargo-fuzz asks for coverage; the same SanitizerCoverage instrumentation is requested
# here with stable codegen options: the LLVM pass by name (-Cpasses=sancov-module) and its
# settings (-Cllvm-args). No sanitizer: Rust's bounds and overflow checks (release with
# debug assertions) and the allocation guard in tests/fuzz/src/lib.rs find the bugs.
# docs/fuzzing.md says more.
#
# Output, all under target/fuzz/: cargo's build (cargo/), each target's corpus
# (corpus/NAME: the seeds of tests/fuzz/seeds/NAME, those the target writes itself, and
# what the fuzzer adds; kept between runs), crashes and hangs (artifacts/NAME/), the
# fuzzer's log (logs/NAME.log), and results.json: per target the executions, seconds,
# executions per second, coverage (edges and features as libFuzzer counts them), corpus
# size and findings. Exits 1 if any target found a crash, a hang or an out-of-memory.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
ALL=(elf bootfmt fwd net fs rv6)
SECS=${FUZZ_SECS:-60}
RUNS=${FUZZ_RUNS:-}
JOBS=${FUZZ_JOBS:-1}
IFS=, read -r -a TARGETS <<< "${FUZZ_TARGETS:-$(IFS=,; echo "${ALL[*]}")}"
OUT=$ROOT/target/fuzz
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN=$OUT/cargo/$HOST/release

die() { echo "fuzz: error: $*" >&2; exit 2; }
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || die "unknown target '$t' (targets: ${ALL[*]})"
done
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || die "FUZZ_SECS must be a positive number of seconds"
[[ $JOBS =~ ^[0-9]+$ && $JOBS -gt 0 ]] || die "FUZZ_JOBS must be a positive number"
command -v c++ >/dev/null || die "no C++ compiler (libFuzzer is C++): run scripts/setup.sh as root, or install g++"

# Longest input per target: a file-system image of 48 blocks; a domain image; frames.
max_len() {
  case $1 in
    fs) echo 49152 ;;
    elf) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# SanitizerCoverage through stable options: 8-bit edge counters (coverage), the PC table
# (libFuzzer's feature accounting) and comparison tracing (guides mutations towards the
# values a comparison wants). --cfg fuzzing as cargo-fuzz sets it. The flags apply to the
# --target build only: build scripts and proc-macros are built without them.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_TARGET_DIR=$OUT/cargo
echo "fuzz: building ${TARGETS[*]} (release, debug assertions, coverage instrumentation)" >&2
bins=()
for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
(cd tests/fuzz && nice -n 19 cargo build -q --release --locked --target "$HOST" "${bins[@]}")

# Large allocations come and go with every input: keep them in the heap instead of
# mapping and unmapping them each time (twice the executions per second on `fs`).
export MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=67108864

mkdir -p "$OUT/logs" "$OUT/rows"
rm -f "$OUT"/rows/*

# One target: runs libFuzzer, then leaves its table row in rows/NAME.row, its
# results.json record in rows/NAME.json and, if it found something, rows/NAME.failed.
fuzz_one() {
  local t=$1
  local corpus=$OUT/corpus/$t arts=$OUT/artifacts/$t log=$OUT/logs/$t.log
  mkdir -p "$corpus" "$arts"
  if [ -d "tests/fuzz/seeds/$t" ]; then
    cp -n tests/fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  fi
  local before start rc
  before=$(find "$arts" -type f | wc -l)
  start=$(date +%s)
  set +e
  FROND_FUZZ_SEEDS=$corpus nice -n 19 "$BIN/$t" "$corpus" \
    -max_total_time="$SECS" ${RUNS:+-runs=$RUNS} -max_len="$(max_len "$t")" \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$arts/" -print_final_stats=1 \
    ${FUZZ_ARGS:-} > "$log" 2>&1
  rc=$?
  set -e
  local secs execs rate last edges feats corp files found status
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  edges=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  feats=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  # libFuzzer's corpus (the inputs it keeps in memory; the directory also holds inputs
  # it has since replaced with smaller ones).
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$last")
  files=$(find "$corpus" -type f | wc -l)
  found=$(( $(find "$arts" -type f | wc -l) - before ))
  status=ok
  if [ "$found" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 72 ]; }; then
    status=finding
    touch "$OUT/rows/$t.failed"
  elif [ "$rc" -eq 72 ]; then
    status=interrupted # libFuzzer's exit code when stopped by a signal
  fi
  printf '%-8s %12s %8s %9s %8s %8s %9s  %s\n' "$t" "${execs:-0}" "$secs" "${rate:-0}" "${edges:-0}" \
    "${feats:-0}" "${corp:-0}" "$(case $status in ok) echo none ;; interrupted) echo "none (interrupted)" ;; *) echo "see $arts and $log" ;; esac)" \
    | tee "$OUT/rows/$t.row"
  printf '    "%s": {"executions": %s, "seconds": %s, "exec_per_sec": %s, "edges": %s, "features": %s, "corpus": %s, "corpus_files": %s, "new_findings": %s, "status": "%s"}' \
    "$t" "${execs:-0}" "$secs" "${rate:-0}" "${edges:-0}" "${feats:-0}" "${corp:-0}" "$files" "$found" "$status" \
    > "$OUT/rows/$t.json"
}

printf '%-8s %12s %8s %9s %8s %8s %9s  %s\n' target execs secs exec/s edges features corpus findings
running=0
for t in "${TARGETS[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait

results=()
failed=0
for t in "${TARGETS[@]}"; do
  results+=("$(cat "$OUT/rows/$t.json")")
  [ -e "$OUT/rows/$t.failed" ] && failed=1
done
if [ "$JOBS" -gt 1 ]; then
  echo "fuzz: all targets, in the order given:" >&2
  for t in "${TARGETS[@]}"; do cat "$OUT/rows/$t.row" >&2; done
fi

{
  echo "{"
  echo "  \"engine\": \"libFuzzer (libfuzzer-sys), SanitizerCoverage via stable -Cpasses/-Cllvm-args\","
  echo "  \"secs_per_target\": $SECS,"
  echo "  \"jobs\": $JOBS,"
  echo "  \"targets\": {"
  for i in "${!results[@]}"; do
    sep=,; [ "$i" -eq $(( ${#results[@]} - 1 )) ] && sep=
    echo "${results[$i]}$sep"
  done
  echo "  }"
  echo "}"
} > "$OUT/results.json"
echo "fuzz: results in target/fuzz/results.json, logs in target/fuzz/logs/" >&2
exit $failed
