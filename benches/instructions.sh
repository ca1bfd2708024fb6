#!/usr/bin/env bash
# Instructions per rewritten newsletter, counted by callgrind: the measure of the core's cost
# that this machine's noise does not move (wall and CPU times of one build drift by ±30 %
# within an hour, more than most changes gain). `trackless inspect` over N generated 51 KB
# newsletters (65 links each, every one rewritten), less the same run over the first of them
# (start-up, rules, one message), divided by N - 1.
#
#   bash benches/instructions.sh                 # N = 40, the release build
#   bash benches/instructions.sh 40 BIN [BIN…]   # other builds, side by side (A/B)
#
# Needs valgrind (apt-get install valgrind). Takes ~1 minute per build with N = 40.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40}
shift || true
if ! command -v valgrind > /dev/null; then
  echo "valgrind is needed: apt-get install valgrind" >&2
  exit 1
fi
if (($# == 0)); then
  cargo build --release --quiet
  set -- target/release/trackless
fi
if ((n < 2)); then
  echo "N must be at least 2" >&2
  exit 1
fi
cargo build --release --quiet --example newsletter
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/newsletter "$work/msgs" "$n" 51 > /dev/null
mkdir -p "$work/home"
count() { # BIN FILE… -> instructions of `BIN inspect FILE…`
  local bin=$1
  shift
  HOME="$work/home" TRACKLESS_CONFIG=/dev/null valgrind --tool=callgrind \
    --callgrind-out-file="$work/out" "$bin" --no-log inspect "$@" 2>&1 > /dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
files=("$work"/msgs/*.eml)
printf '%-50s %14s %14s %12s\n' build "one message" "$n messages" "per message"
for bin in "$@"; do
  one=$(count "$bin" "${files[0]}")
  all=$(count "$bin" "${files[@]}")
  per=$(((all - one) / (n - 1)))
  printf '%-50s %14d %14d %12d\n' "$bin" "$one" "$all" "$per"
done
