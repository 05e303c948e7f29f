#!/usr/bin/env bash
# Runs the decoder fuzz target with libFuzzer on the stable toolchain (no cargo-fuzz needed):
# SanitizerCoverage comes from stable -C flags; no AddressSanitizer (that needs nightly), so
# the target relies on Rust's own bounds checks plus debug assertions.
#   fuzz/run.sh [SECONDS]      default 60
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
target=$(rustc -vV | sed -n "s/^host: //p")
# --target keeps RUSTFLAGS off build scripts, which must not be instrumented.
cargo build --release --target "$target" --bin decode_message
mkdir -p corpus/decode_message artifacts
# Seed corpus: the captured fixtures, each prefixed with a context selector byte.
for f in ../crates/bgp/tests/fixtures/*.bin; do
  [ -e "$f" ] || continue
  for sel in 1 5; do
    { printf "\\x0$sel"; cat "$f"; } > "corpus/decode_message/$(basename "$f" .bin)_$sel"
  done
done
# Inputs that once failed stay in the corpus.
cp regressions/* corpus/decode_message/ 2>/dev/null || true
"./target/$target/release/decode_message" corpus/decode_message -max_total_time="$secs" -max_len=8192 \
  -artifact_prefix=artifacts/ -print_final_stats=1
