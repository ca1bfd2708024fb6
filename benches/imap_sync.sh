#!/usr/bin/env bash
# `trackless imap` speed against a throwaway Dovecot on loopback (TLS), release build:
# messages/s of `imap sync` over N corpus copies (each with its own Message-ID), a rerun, and
# the delay from delivery to clean copy under `imap watch` (median and max of 20 deliveries).
#
#   bash benches/imap_sync.sh            # N = 1000
#   TRACKLESS_BENCH_MESSAGES=5000 bash benches/imap_sync.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TRACKLESS_IMAP_BENCH=1 bash tests/e2e/imap.sh 2>&1 | grep -E 'bench:|^== |error|panicked' | sed 's/^.*bench:/bench:/'
