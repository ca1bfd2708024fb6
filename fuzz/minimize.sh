#!/usr/bin/env bash
# Fold what a run found into the committed seed corpus, minimised (libFuzzer's merge keeps
# the smallest set of inputs with the same coverage), so the next session starts there.
#   bash fuzz/minimize.sh TARGET
set -euo pipefail
cd "$(dirname "$0")"
# AddressSanitizer holds freed memory in a 256 MiB quarantine by default, which counts in the
# process RSS: replaying the 1 833 message seeds alone reached 503 MiB and a run stopped on the
# 512 MiB limit with no input to blame; with 32 MiB the same replay peaks at 131 MiB, so the
# limit measures trackless again.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=32"
target=$1
min=$(mktemp -d)
trap 'rm -rf "$min"' EXIT
mkdir -p "corpus/$target"
cargo +nightly fuzz run -O "$target" "$min" "seeds/$target" "corpus/$target" -- \
  -merge=1 -timeout=1 -rss_limit_mb=512 -max_len=262144 >/dev/null 2>&1
rm -rf "seeds/$target"
mkdir -p "seeds/$target"
cp "$min"/* "seeds/$target/"
echo "$target: $(ls "seeds/$target" | wc -l) inputs, $(du -sh "seeds/$target" | cut -f1)"
