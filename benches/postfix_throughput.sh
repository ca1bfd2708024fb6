#!/usr/bin/env bash
# Postfix throughput with trackless vs without, on this machine, with real corpus messages.
#   benches/postfix_throughput.sh [N] [CONCURRENCY] [MODES...]    (run as root)
# MODES: milter (unix socket) milter-inet smtp lmtp (default: milter smtp). For each mode: messages/s from the first
# SMTP connection to the last delivery into the Maildir, the ratio to plain Postfix, and the
# added per-message latency (median and p99 of Postfix's "delays=a" - time until the message
# was queued, which includes the milter - or of the whole delivery for content filters).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$repo/tests/e2e/lib.sh"
N=${1:-2000}
C=${2:-8}
shift 2 || true
MODES=("${@:-milter smtp}")
read -r -a MODES <<<"${MODES[*]}"
(cd "$repo" && cargo build --release --quiet)
T="$repo/target/release/trackless"
e2e_install_packages
files=("$repo"/corpus/*.eml)

# delays: print the distribution of Postfix's delays=a (or total delay) from a maillog.
delays() {
  perl -ne 'if (/status=sent/ && /delays=([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+)/) { print(($ARGV[0] eq "total" ? $1+$2+$3+$4 : $1), "\n") }' -- "$2" "$1" 2>/dev/null || true
}
stats() { sort -n | awk '{a[NR]=$1} END { if (NR) printf "median %.3f s, p99 %.3f s", a[int(NR*0.5)+1], a[int(NR*0.99)+1]; else printf "n/a" }'; }

run() {
  local mode=$1 dir extra_main extra_master port reinj start end secs
  dir=$(e2e_tmpdir "bench-$mode")
  extra_main="$dir/main.extra"; extra_master="$dir/master.extra"
  : >"$extra_main"; : >"$extra_master"
  case "$mode" in
    none) ;;
    milter)
      # A unix socket, as in production (packaging/postfix/main.cf.milter).
      e2e_spawn "$dir/trackless.log" "$T" --no-log milter --listen "unix:$dir/milter.sock" --socket-mode 0666
      e2e_wait_socket "$dir/milter.sock"
      printf 'smtpd_milters = unix:%s/milter.sock\nnon_smtpd_milters =\nmilter_default_action = accept\nmilter_protocol = 6\n' "$dir" >"$extra_main"
      ;;
    milter-inet)
      port=$(e2e_free_port)
      e2e_spawn "$dir/trackless.log" "$T" --no-log milter --listen "inet:127.0.0.1:$port"
      e2e_wait_port "$port"
      printf 'smtpd_milters = inet:127.0.0.1:%s\nnon_smtpd_milters =\nmilter_default_action = accept\nmilter_protocol = 6\n' "$port" >"$extra_main"
      ;;
    smtp|lmtp)
      port=$(e2e_free_port); reinj=$(e2e_free_port)
      if [[ $mode == smtp ]]; then
        e2e_content_filter_config "$extra_main" "$extra_master" "[127.0.0.1]:$port" "$reinj" smtp
      else
        e2e_content_filter_config "$extra_main" "$extra_master" "inet:127.0.0.1:$port" "$reinj" lmtp
      fi
      e2e_spawn "$dir/trackless.log" "$T" --no-log "$mode" --listen "inet:127.0.0.1:$port" --forward "smtp://127.0.0.1:$reinj"
      e2e_wait_port "$port"
      ;;
  esac
  e2e_postfix_start "$dir" "$extra_main" "$extra_master"
  start=$(date +%s.%N)
  python3 "$here/smtp_load.py" 127.0.0.1 "$E2E_SMTP_PORT" "$N" "$C" alice@example.net "${files[@]}" >"$dir/load.txt"
  e2e_wait_delivered "$dir" alice "$N" 600
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc -l)
  echo "$mode $secs" >>"$RESULTS"
  local kind=a; [[ $mode == smtp || $mode == lmtp ]] && kind=total
  delays "$dir/maillog" "$kind" >"$dir/delays.txt"
  printf '%-7s %6.1f s  %6.0f messages/s  (%s; delays: %s)\n' "$mode" "$secs" "$(echo "$N / $secs" | bc -l)" "$(cat "$dir/load.txt")" "$(stats <"$dir/delays.txt")"
  e2e_postfix_stop "$dir"
  [[ $mode == none ]] || e2e_kill "$E2E_LAST_PID"
}

RESULTS=$(mktemp)
echo "$N corpus messages, $C concurrent SMTP sessions, 2 cores"
run none
for m in "${MODES[@]}"; do run "$m"; done
base=$(awk '$1=="none"{print $2}' "$RESULTS")
awk -v b="$base" '$1!="none"{printf "ratio %s/plain Postfix: %.2f\n", $1, b/$2}' "$RESULTS"
# Latency added by the milter: difference of the delays=a medians and p99s.
rm -f "$RESULTS"
