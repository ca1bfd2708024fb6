#!/usr/bin/env bash
# `trackless imap` speed against a throwaway Dovecot on loopback (TLS), release build:
# messages/s of `imap sync` over N generated 100 KB newsletters that all get rewritten (one
# folder, --jobs 1), a rerun, N more across two folders (--jobs 2), and the delay from delivery
# to clean copy under `imap watch` (median, p99 and max of 100 deliveries).
#
#   bash benches/imap_sync.sh            # N = 1000
#   TRACKLESS_BENCH_MESSAGES=5000 TRACKLESS_BENCH_DELIVERIES=200 bash benches/imap_sync.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TRACKLESS_IMAP_BENCH=1 bash tests/e2e/imap.sh 2>&1 | grep -E 'bench:|^== |error|panicked' | sed 's/^.*bench:/bench:/'
