#!/usr/bin/env bash
# Postfix throughput with trackless vs without, on the hard case: generated 51 KB newsletters,
# every one of them rewritten, with trackless' default tracking log on (a SQLite file).
#   benches/postfix_newsletters.sh [N] [CONCURRENCY] [MODES...]    (run as root)
# N messages (default 2000, generated once per run with the newsletter example), sent over
# CONCURRENCY SMTP sessions (default 20) to a throwaway Postfix that relays them to an
# smtp-sink on loopback, so that Postfix alone is the baseline ("none", always run first).
# MODES: milter (unix socket) milter-inet smtp lmtp (after-queue content filters that
# re-inject; default: all four); twice: the after-queue set-up with no filter at all (Postfix
# hands each message to its own re-injection smtpd), the ceiling of any after-queue filter, as
# every message goes through Postfix twice (not in the default list); milter-null: a milter
# that gives every body back unchanged as a replacement and adds a header (examples/
# null_milter.rs), the ceiling of any milter that rewrites every message (what Postfix itself
# spends on a replaced body; not in the default list); dovecot and
# lmtp-dovecot: final delivery instead of a relay, as the packaged main.cf.lmtp sets it up:
# Postfix's lmtp client hands each message to a throwaway Dovecot LMTP that writes it into a
# Maildir (dovecot, the baseline of these two), or to trackless lmtp in front of that Dovecot
# (lmtp-dovecot, whose ratio is to the dovecot run of the same round). Not in the default list.
# For each run: seconds from the first SMTP connection until the sink accepted the N-th
# message (its "status=sent" line in the maillog), messages/s, the ratio to the baseline of
# the same round, trackless' CPU per message (user and system, from
# /proc/PID/stat), its peak RSS (VmHWM) and the records in its log after a graceful stop.
# Environment:
#   REPEAT=2       run the baseline and the modes twice, alternating (this machine's speed
#                  drifts by up to +-30 % within minutes); default 1
#   SINK_DUMP=1    the sink keeps every message, and the summary counts how many carry
#                  trackless' X-Trackless header (costs disk writes, in every mode alike;
#                  the dovecot modes count in the Maildirs Dovecot always writes)
#   TIMEOUT=600    seconds to wait for the deliveries of one run
#   TRACKLESS_BIN  another trackless binary to run (A/B against an older build)
#   COUNT=1        also count trackless' context switches, system calls and page faults, and
#                  its CPU (perf stat's task-clock), per message over its whole run (start-up
#                  and stop included): counts this machine's noise hardly moves, for A/B
#                  between builds (needs perf)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$repo/tests/e2e/lib.sh"
N=${1:-2000}
C=${2:-20}
shift 2 || shift $# || true
MODES=("$@")
((${#MODES[@]})) || MODES=(milter milter-inet smtp lmtp)
REPEAT=${REPEAT:-1}
SINK_DUMP=${SINK_DUMP:-0}
TIMEOUT=${TIMEOUT:-600}
COUNT=${COUNT:-0}
SIZE_KB=51
for m in "${MODES[@]}"; do
  case "$m" in
    milter | milter-inet | milter-null | smtp | lmtp | twice | dovecot | lmtp-dovecot) ;;
    *) e2e_die "unknown mode $m (milter, milter-inet, milter-null, smtp, lmtp, twice, dovecot, lmtp-dovecot)"; exit 2 ;;
  esac
done

e2e_install_packages
# Another build given: only the message generator is built (the working tree may be mid-edit).
if [[ -z ${TRACKLESS_BIN:-} ]]; then
  (cd "$repo" && cargo build --release --quiet)
fi
[[ -x "$repo/target/release/examples/newsletter" ]] ||
  (cd "$repo" && cargo build --release --quiet --example newsletter)
if [[ " ${MODES[*]} " == *" milter-null "* ]]; then
  (cd "$repo" && cargo build --release --quiet --example null_milter)
fi
T="${TRACKLESS_BIN:-$repo/target/release/trackless}"
if [[ $COUNT == 1 ]] && ! command -v perf >/dev/null; then
  e2e_die "COUNT=1 needs perf (apt-get install linux-perf)"; exit 2
fi
TICK=$(getconf CLK_TCK)
SINK_USER=$(id -un "$E2E_MAIL_UID")

# The mail: generated once per run, in this run's scratch directory (removed on exit).
mkdir -p "$E2E_RUN_TMP"
mail=$(mktemp -d "$E2E_RUN_TMP/newsletters.XXXXXX")
e2e_log "generating $N newsletters of $SIZE_KB KB in $mail"
"$repo/target/release/examples/newsletter" "$mail" "$N" "$SIZE_KB"
files=("$mail"/*.eml)
((${#files[@]} == N)) || { e2e_die "expected $N generated messages, found ${#files[@]}"; exit 1; }

# cpu_ticks PID: prints "UTIME STIME" (clock ticks, all threads) from /proc/PID/stat.
cpu_ticks() {
  local st
  st=$(cat "/proc/$1/stat")
  st=${st##*) }
  # fields 14 and 15 of stat are 12 and 13 after "pid (comm) "
  awk '{ print $12, $13 }' <<<"$st"
}

# host_ticks: the whole machine's busy CPU ticks so far (user, nice, system, irq, softirq from
# /proc/stat; idle, iowait and steal left out).
host_ticks() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# sent_count MAILLOG SINKPORT: prints how many deliveries to the sink the maillog shows.
sent_count() {
  grep -c "relay=127\.0\.0\.1\[127\.0\.0\.1\]:$2, .*status=sent" "$1" || true
}

# wait_sent MAILLOG SINKPORT: waits until N messages reached the sink; fails after TIMEOUT.
wait_sent() {
  local deadline=$((SECONDS + TIMEOUT)) have
  while :; do
    have=$(sent_count "$1" "$2")
    ((have >= N)) && return 0
    if ((SECONDS >= deadline)); then
      e2e_die "only $have of $N messages reached the sink after ${TIMEOUT}s"
      return 1
    fi
    sleep 0.1
  done
}

# stop_graceful PID: SIGTERM (trackless finishes the messages in flight and writes the rest
# of its log), then waits up to 60 s for it to exit before SIGKILL.
stop_graceful() {
  local pid=$1 i
  e2e_unregister pid "$(e2e_proc_id "$pid")"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 600; i++)); do
    e2e_alive "$pid" || break
    sleep 0.1
  done
  if e2e_alive "$pid"; then
    e2e_log "trackless (pid $pid) still runs 60 s after SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# log_records LOG: prints "RECORDS CHANGED" of a tracking log (CHANGED: records of rewritten
# messages; "?" without the sqlite3 command, which then counts the report's messages).
log_records() {
  if command -v sqlite3 >/dev/null; then
    sqlite3 "$1" 'SELECT count(*), coalesce(sum(changed), 0) FROM messages' | tr '|' ' '
  else
    "$T" --log "$1" report --by domain --format csv |
      awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "messages") c = i; next } c { n += $c } END { print n + 0, "?" }'
  fi
}

# run ROUND MODE: one measurement; appends a line to $RESULTS.
run() {
  local round=$1 mode=$2 dir extra_main extra_master port reinj sink relay tpid=
  local start end secs cpu0 cpu1 hwm=- user=- sys=- recs=- changed=- dumped=- deferred errs=- ok=1
  local tl counts="- - - -" host0 host1 host=-
  dir=$(e2e_tmpdir "newsletters-$mode-$round")
  tl=$T
  if [[ $COUNT == 1 ]]; then
    # perf stat follows the threads a process makes after it is attached, not those it had:
    # attach to the wrapper's shell, which then becomes trackless (same PID, so signals and
    # /proc still reach trackless itself).
    tl="$dir/counted-trackless"
    printf '#!/bin/bash\nperf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter,page-faults -p $$ -o %q 2>/dev/null &\nsleep 0.3\nexec %q "$@"\n' \
      "$dir/perf.csv" "$T" >"$tl"
    chmod +x "$tl"
  fi
  extra_main="$dir/main.extra"; extra_master="$dir/master.extra"
  : >"$extra_main"; : >"$extra_master"

  # The sink: Postfix relays every message for sink.test to it.
  sink=$(e2e_free_port)
  local dump=()
  if [[ $SINK_DUMP == 1 ]]; then
    mkdir -p "$dir/sink"; chown "$E2E_MAIL_UID" "$dir/sink"
    dump=(-d "$dir/sink/m.")
  fi
  e2e_spawn "$dir/sink.log" smtp-sink -u "$SINK_USER" "${dump[@]}" "127.0.0.1:$sink" 256
  local sink_pid=$E2E_LAST_PID
  e2e_wait_port "$sink"
  # Where Postfix hands each message last (its "status=sent" lines name it).
  relay=$sink

  case "$mode" in
    none) ;;
    milter)
      e2e_spawn "$dir/trackless.log" "$tl" --log "$dir/log.sqlite" milter --listen "unix:$dir/milter.sock" --socket-mode 0666
      tpid=$E2E_LAST_PID
      e2e_wait_socket "$dir/milter.sock"
      printf 'smtpd_milters = unix:%s/milter.sock\nnon_smtpd_milters =\nmilter_default_action = accept\nmilter_protocol = 6\n' "$dir" >"$extra_main"
      ;;
    milter-null)
      e2e_spawn "$dir/trackless.log" "$repo/target/release/examples/null_milter" "$dir/milter.sock"
      tpid=$E2E_LAST_PID
      e2e_wait_socket "$dir/milter.sock"
      printf 'smtpd_milters = unix:%s/milter.sock\nnon_smtpd_milters =\nmilter_default_action = accept\nmilter_protocol = 6\n' "$dir" >"$extra_main"
      ;;
    milter-inet)
      port=$(e2e_free_port)
      e2e_spawn "$dir/trackless.log" "$tl" --log "$dir/log.sqlite" milter --listen "inet:127.0.0.1:$port"
      tpid=$E2E_LAST_PID
      e2e_wait_port "$port"
      printf 'smtpd_milters = inet:127.0.0.1:%s\nnon_smtpd_milters =\nmilter_default_action = accept\nmilter_protocol = 6\n' "$port" >"$extra_main"
      ;;
    smtp | lmtp)
      port=$(e2e_free_port); reinj=$(e2e_free_port)
      if [[ $mode == smtp ]]; then
        e2e_content_filter_config "$extra_main" "$extra_master" "[127.0.0.1]:$port" "$reinj" smtp
      else
        e2e_content_filter_config "$extra_main" "$extra_master" "inet:127.0.0.1:$port" "$reinj" lmtp
      fi
      e2e_spawn "$dir/trackless.log" "$tl" --log "$dir/log.sqlite" "$mode" --listen "inet:127.0.0.1:$port" --forward "smtp://127.0.0.1:$reinj"
      tpid=$E2E_LAST_PID
      e2e_wait_port "$port"
      ;;
    twice)
      reinj=$(e2e_free_port)
      e2e_content_filter_config "$extra_main" "$extra_master" "[127.0.0.1]:$reinj" "$reinj" smtp
      ;;
    dovecot)
      e2e_dovecot_start "$dir"
      relay=$E2E_LMTP_PORT
      ;;
    lmtp-dovecot)
      e2e_dovecot_start "$dir"
      relay=$(e2e_free_port)
      e2e_spawn "$dir/trackless.log" "$tl" --log "$dir/log.sqlite" lmtp --listen "inet:127.0.0.1:$relay" --forward "lmtp:unix:$E2E_LMTP_SOCKET"
      tpid=$E2E_LAST_PID
      e2e_wait_port "$relay"
      ;;
  esac
  case "$mode" in
    dovecot | lmtp-dovecot)
      printf 'transport_maps = inline:{ sink.test=lmtp:inet:127.0.0.1:%s }\n' "$relay" >>"$extra_main" ;;
    *)
      printf 'transport_maps = inline:{ sink.test=smtp:[127.0.0.1]:%s }\n' "$sink" >>"$extra_main" ;;
  esac
  e2e_postfix_start "$dir" "$extra_main" "$extra_master"

  [[ -n $tpid ]] && cpu0=$(cpu_ticks "$tpid")
  host0=$(host_ticks)
  start=$(date +%s.%N)
  python3 "$here/smtp_load.py" 127.0.0.1 "$E2E_SMTP_PORT" "$N" "$C" alice@sink.test "${files[@]}" >"$dir/load.txt" 2>"$dir/load.err" || ok=0
  wait_sent "$dir/maillog" "$relay" || ok=0
  end=$(date +%s.%N)
  host1=$(host_ticks)
  host=$(awk -v a="$host0" -v b="$host1" -v t="$TICK" -v n="$N" 'BEGIN { printf "%.2f", (b - a) * 1000 / t / n }')
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  if [[ -n $tpid ]]; then
    if cpu1=$(cpu_ticks "$tpid"); then
      read -r user sys < <(awk -v a="$cpu0" -v b="$cpu1" -v t="$TICK" -v n="$N" \
        'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f %.2f\n", (y[1] - x[1]) * 1000 / t / n, (y[2] - x[2]) * 1000 / t / n }')
      hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$tpid/status")
    else
      e2e_log "trackless (pid $tpid) died during the run; see $dir/trackless.log"
      ok=0
    fi
    stop_graceful "$tpid"
    if [[ $COUNT == 1 ]]; then
      # perf writes its counts once trackless has exited.
      for ((i = 0; i < 50; i++)); do
        grep -q 'page-faults' "$dir/perf.csv" 2>/dev/null && break
        sleep 0.1
      done
      counts=$(awk -F, -v n="$N" '
        $3 == "task-clock" { c = sprintf("%.2f", $1 / n) }
        $3 == "context-switches" { cs = sprintf("%.1f", $1 / n) }
        $3 == "raw_syscalls:sys_enter" { sc = sprintf("%.1f", $1 / n) }
        $3 == "page-faults" { pf = sprintf("%.1f", $1 / n) }
        END { print (c == "" ? "-" : c), (cs == "" ? "-" : cs), (sc == "" ? "-" : sc), (pf == "" ? "-" : pf) }' "$dir/perf.csv" 2>/dev/null || echo "- - - -")
    fi
    if [[ -s "$dir/log.sqlite" ]]; then
      read -r recs changed < <(log_records "$dir/log.sqlite")
    else
      recs=0; changed=0
    fi
    errs=$(grep -cE '^[^ ]+ +(WARN|ERROR) ' "$dir/trackless.log" || true)
  fi
  deferred=$(grep -cE 'status=(deferred|bounced)' "$dir/maillog" || true)
  e2e_postfix_stop "$dir"
  [[ $mode == dovecot || $mode == lmtp-dovecot ]] && e2e_dovecot_stop "$dir"
  e2e_unregister pid "$(e2e_proc_id "$sink_pid")"
  e2e_kill "$sink_pid"
  if [[ $SINK_DUMP == 1 ]]; then
    local kept="$dir/sink"
    [[ $mode == dovecot || $mode == lmtp-dovecot ]] && kept="$dir/dovecot-mail"
    dumped=$({ grep -lr '^X-Trackless:' "$kept" || true; } | wc -l)
  fi
  ((ok)) || e2e_log "$mode (round $round) did not complete: $dir/load.txt, $dir/load.err, $dir/maillog"
  echo "$round $mode $secs $user $sys $hwm $recs $changed $dumped $deferred $errs $ok $counts $host" >>"$RESULTS"
  printf '%-11s round %s: %7.2f s  %6.1f messages/s  (%s)\n' "$mode" "$round" "$secs" \
    "$(awk -v n="$N" -v s="$secs" 'BEGIN { print n / s }')" "$(cat "$dir/load.txt" 2>/dev/null)"
}

RESULTS=$(e2e_mktemp)
echo "$N generated ${SIZE_KB} KB newsletters (all rewritten), $C concurrent SMTP sessions, relayed to smtp-sink; $(nproc) cores"
for ((r = 1; r <= REPEAT; r++)); do
  run "$r" none
  for m in "${MODES[@]}"; do run "$r" "$m"; done
done

echo
echo "Summary (ratio: the baseline's seconds over the mode's, same round (lmtp-dovecot: dovecot's); CPU: trackless' per message;"
echo "records: rows in the tracking log after SIGTERM / of them rewritten; sink: messages with X-Trackless at the sink;"
echo "deferred: Postfix deferrals and bounces; warn+err: WARN and ERROR lines in trackless' own log;"
echo "with COUNT=1: trackless' task-clock ms, context switches, system calls and page faults per message, start to stop;"
echo "host ms: the whole machine's busy CPU per message during the run, Postfix, load generator and sink included)"
awk -v n="$N" '
  { round[NR] = $1; mode[NR] = $2; secs[NR] = $3; line[NR] = $0; if ($2 == "none") base[$1] = $3; if ($2 == "dovecot") dove[$1] = $3 }
  END {
    printf "%-5s %-11s %8s %8s %6s %8s %8s %7s %13s %6s %9s %8s %8s %6s %8s %6s %8s\n", "round", "mode", "secs", "msg/s", "ratio", "user ms", "sys ms", "VmHWM", "records", "sink", "deferred", "warn+err", "task ms", "ctxsw", "syscalls", "faults", "host ms"
    for (i = 1; i <= NR; i++) {
      split(line[i], f, " ")
      printf "%-5s %-11s %8.2f %8.1f %6.2f %8s %8s %7s %13s %6s %9s %8s %8s %6s %8s %6s %8s%s\n", f[1], f[2], f[3], n / f[3], (f[2] == "lmtp-dovecot" && dove[f[1]] ? dove[f[1]] : base[f[1]]) / f[3],
        f[4], f[5], (f[6] == "-" ? "-" : f[6] " MB"), (f[7] == "-" ? "-" : f[7] "/" f[8]), f[9], f[10], f[11], f[13], f[14], f[15], f[16], f[17], (f[12] ? "" : "  INCOMPLETE")
    }
  }' "$RESULTS"
