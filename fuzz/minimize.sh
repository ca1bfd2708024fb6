#!/usr/bin/env bash
# Fold what a run found into the committed seed corpus, minimised (libFuzzer's merge keeps
# the smallest set of inputs with the same coverage), so the next session starts there.
#   bash fuzz/minimize.sh TARGET
set -euo pipefail
cd "$(dirname "$0")"
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
