#!/usr/bin/env bash
# Batch benchmark: a generated Maildir of N corpus-like messages (default 100 000), rewritten
# with --dry-run, --jobs 1 and --jobs 2. Prints messages/s, MB/s and (with GNU time) the
# peak RSS for each.
#   benches/batch_maildir.sh [N] [WORKDIR]     (TRACKLESS_BIN=path: another build, for A/B)
set -euo pipefail
N=${1:-100000}
WORK=${2:-/tmp/trackless-batch-bench}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=${TRACKLESS_BIN:-target/release/trackless}

generate() {
  rm -rf "$WORK/Maildir"
  python3 - "$WORK/Maildir" "$N" corpus <<'PY'
import os, sys, glob
root, n, corpus = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msgs = [open(p, 'rb').read() for p in sorted(glob.glob(os.path.join(corpus, '*.eml')))]
for sub in ('cur', 'new', 'tmp'):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
for i in range(n):
    m = msgs[i % len(msgs)]
    # Vary the Message-ID so every message is distinct.
    m = m.replace(b'Message-ID: <', b'Message-ID: <b%d.' % i, 1).replace(b'Message-Id: <', b'Message-Id: <b%d.' % i, 1)
    name = '%d.M%dP1.bench,S=%d:2,S' % (1700000000 + i, i, len(m))
    with open(os.path.join(root, 'cur', name), 'wb') as f:
        f.write(m)
PY
  sync
}

run() {
  local label=$1; shift
  local bytes
  bytes=$(du -sb "$WORK/Maildir" | cut -f1)
  local start end
  start=$(date +%s.%N)
  # Peak RSS too, where GNU time is installed.
  local timer=()
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -o "$WORK/rss" -f '%M')
  echo 0 >"$WORK/rss"
  "${timer[@]}" "$BIN" --no-log batch "$@" "$WORK/Maildir" > "$WORK/out.txt"
  end=$(date +%s.%N)
  python3 -c "
n=$N; b=$bytes; t=$end-$start; kb=int(open('$WORK/rss').read().split()[-1])
rss=f'  peak RSS {kb/1024:.0f} MiB' if kb else ''
print(f'{\"$label\":<14} {t:7.1f} s  {n/t:8.0f} messages/s  {b/t/1e6:7.1f} MB/s{rss}')"
  tail -1 "$WORK/out.txt"
}

mkdir -p "$WORK"
echo "generating $N messages in $WORK/Maildir"
generate
run "--dry-run" --dry-run --jobs 2
run "--jobs 1" --jobs 1
generate
run "--jobs 2" --jobs 2
run "second run" --jobs 2
rm -rf "$WORK"
