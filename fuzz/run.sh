#!/usr/bin/env bash
# Run one fuzz target (needs nightly and cargo-fuzz: `cargo install cargo-fuzz`).
#   bash fuzz/run.sh TARGET [SECONDS] [more libFuzzer flags]
# New inputs go to fuzz/corpus/TARGET (not committed), crashes to fuzz/artifacts/TARGET/.
# Bounds from issue 14: a hang is an input taking over 1 s, a blow-up over 512 MiB RSS,
# for inputs up to 256 KiB.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
secs=${2:-900}
shift $(($# < 2 ? $# : 2))
mkdir -p "corpus/$target" "artifacts/$target"
dict=()
case $target in
  message | html_body | text_body | link | milter | smtp_session) dict=(-dict=dict/mail.dict) ;;
esac
exec cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -timeout=1 -rss_limit_mb=512 -max_len=262144 \
  -print_final_stats=1 -artifact_prefix="artifacts/$target/" "${dict[@]}" "$@"
