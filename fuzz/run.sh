#!/usr/bin/env bash
# Run one fuzz target (needs nightly and cargo-fuzz: `cargo install cargo-fuzz`).
#   bash fuzz/run.sh TARGET [SECONDS] [more libFuzzer flags]
# New inputs go to fuzz/corpus/TARGET (not committed), crashes to fuzz/artifacts/TARGET/.
# Bounds from issue 14: a hang is an input taking over 1 s, a blow-up over 512 MiB RSS,
# for inputs up to 256 KiB.
set -euo pipefail
cd "$(dirname "$0")"
# AddressSanitizer holds freed memory in a 256 MiB quarantine by default, which counts in the
# process RSS: replaying the 1 833 message seeds alone reached 503 MiB and a run stopped on the
# 512 MiB limit with no input to blame; with 32 MiB the same replay peaks at 131 MiB, so the
# limit measures trackless again.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=32"
target=$1
secs=${2:-900}
shift $(($# < 2 ? $# : 2))
mkdir -p "corpus/$target" "artifacts/$target"
dict=()
case $target in
  message | html_body | text_body | link | milter | milter_wire | smtp_session) dict=(-dict=dict/mail.dict) ;;
esac
exec cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -timeout=1 -rss_limit_mb=512 -max_len=262144 \
  -print_final_stats=1 -artifact_prefix="artifacts/$target/" "${dict[@]}" "$@"
