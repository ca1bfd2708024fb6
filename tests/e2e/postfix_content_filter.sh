#!/usr/bin/env bash
# End to end: trackless as Postfix's after-queue content filter (SMTP and LMTP in, re-injected
# into Postfix) and as the LMTP proxy in front of a real Dovecot, with the packaged snippets
# (packaging/postfix/*.content-filter, main.cf.lmtp; ports substituted).
#   1. SMTP variant: corpus delivered exactly as `trackless filter` rewrites it; a clean message
#      unchanged; a two-recipient message delivered once per recipient;
#   2. LMTP-in variant: the same;
#   3. Postfix → trackless lmtp (unix socket) → Dovecot LMTP;
#   4. fault test: 1000 messages; the downstream (re-injection smtpd) stopped for a while and
#      the filter stopped and restarted mid-run; every message delivered exactly once, queue
#      empty. Then the filter is SIGKILLed mid-run: nothing lost, and any duplicate is one
#      Postfix announced ("message may be sent more than once").
# Run as root: bash tests/e2e/postfix_content_filter.sh [path/to/trackless] [fault-test-count]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$here/lib.sh"
TRACKLESS=${1:-$repo/target/debug/trackless}
FAULT_N=${2:-1000}
[[ -x "$TRACKLESS" ]] || { echo "build trackless first (cargo build)"; exit 1; }
e2e_install_packages

pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
no_return_path() {
  perl -0777 -pe 'my ($h, $b) = split /(?<=\n)(?=\r?\n)/, $_, 2; $h =~ s/^Return-Path:[^\n]*\n(?:[ \t][^\n]*\n)*//gmi; $_ = $h . ($b // "")' "$1"
}

# The packaged snippets with this run's ports.
snippets() {
  local dir=$1 filter_port=$2 reinject_port=$3 variant=$4
  sed -e "s/10025/$filter_port/g; s/10024/$filter_port/g; s/10026/$reinject_port/g" \
    "$repo/packaging/postfix/master.cf.content-filter" >"$dir/master.extra"
  if [[ $variant == smtp ]]; then
    sed -e "s/10025/$filter_port/g" "$repo/packaging/postfix/main.cf.content-filter" >"$dir/main.extra"
  else
    printf 'content_filter = trackless-lmtp:inet:127.0.0.1:%s\n' "$filter_port" >"$dir/main.extra"
  fi
}

# Send the corpus (and a clean and a multi-recipient message), check what arrives.
check_variant() {
  local dir=$1 user=$2 n=0 f id got
  mkdir -p "$dir/msgs"
  for f in "$repo"/corpus/*.eml; do n=$((n + 1)); cp "$f" "$dir/msgs/$n.eml"; done
  e2e_send_many -j 4 -t "$user@example.net" "$dir/msgs"/*.eml
  e2e_wait_delivered "$dir" "$user" "$n" 120
  for f in "$dir/msgs"/*.eml; do
    id=$(perl -ne 'if (/^Message-I[dD]:\s*(<[^>]+>)/) { print $1; exit }' "$f")
    [[ -n "$id" ]] || continue
    got=$(e2e_find_message "$dir/mail/$user/Maildir" "$id")
    no_return_path "$f" | "$TRACKLESS" --no-log filter >"$dir/expected.eml"
    # Two Received headers: the public smtpd's and the re-injection smtpd's.
    e2e_assert_same_message "$dir/expected.eml" "$got" 2
  done
  e2e_send "$repo/corpus/brevo-newsletter.eml" "${user}a@example.net" "${user}b@example.net"
  e2e_wait_delivered "$dir" "${user}a" 1
  e2e_wait_delivered "$dir" "${user}b" 1
  no_return_path "$repo/corpus/brevo-newsletter.eml" | "$TRACKLESS" --no-log filter >"$dir/expected.eml"
  e2e_assert_same_message "$dir/expected.eml" "$(e2e_delivered_files "$dir" "${user}a")" 2
  e2e_assert_same_message "$dir/expected.eml" "$(e2e_delivered_files "$dir" "${user}b")" 2
  e2e_wait_queue_empty "$dir" 30
}

for variant in smtp lmtp; do
  dir=$(e2e_tmpdir "content-filter-$variant")
  fport=$(e2e_free_port); rport=$(e2e_free_port)
  snippets "$dir" "$fport" "$rport" "$variant"
  e2e_spawn "$dir/trackless.log" "$TRACKLESS" --log "$dir/log.sqlite" "$variant" \
    --listen "inet:127.0.0.1:$fport" --forward "smtp://127.0.0.1:$rport"
  e2e_wait_port "$fport"
  e2e_postfix_start "$dir" "$dir/main.extra" "$dir/master.extra"
  check_variant "$dir" "$variant"
  ok "$variant content filter: corpus rewritten like trackless filter, 2-recipient message delivered to each, queue empty"
  e2e_postfix_stop "$dir"
  e2e_kill "$E2E_LAST_PID"
done

# 3. Postfix → trackless lmtp (unix socket, packaged main.cf.lmtp) → Dovecot.
dir=$(e2e_tmpdir content-filter-dovecot)
e2e_dovecot_start "$dir"
cp "$repo/packaging/postfix/main.cf.lmtp" "$dir/main.extra"
e2e_postfix_start "$dir" "$dir/main.extra"
sockdir="$dir/spool/trackless"
install -d -g postfix -m 2750 "$sockdir"
e2e_spawn "$dir/trackless.log" "$TRACKLESS" --log "$dir/log.sqlite" lmtp \
  --listen "unix:$sockdir/lmtp.sock" --socket-mode 0660 --forward "lmtp:unix:$E2E_LMTP_SOCKET"
e2e_wait_socket "$sockdir/lmtp.sock"
n=0
mkdir -p "$dir/msgs"
for f in "$repo"/corpus/*.eml; do n=$((n + 1)); cp "$f" "$dir/msgs/$n.eml"; done
e2e_send_many -j 4 -t dave@example.net "$dir/msgs"/*.eml
e2e_dovecot_wait_delivered "$dir" dave "$n" 120
for f in "$dir/msgs"/*.eml; do
  id=$(perl -ne 'if (/^Message-I[dD]:\s*(<[^>]+>)/) { print $1; exit }' "$f")
  [[ -n "$id" ]] || continue
  got=$(e2e_find_message "$dir/dovecot-mail/dave/Maildir" "$id")
  no_return_path "$f" | "$TRACKLESS" --no-log filter >"$dir/expected.eml"
  e2e_assert_same_message "$dir/expected.eml" "$got" 1 dovecot
done
e2e_send "$repo/corpus/sendgrid-newsletter.eml" erin@example.net frank@example.net
e2e_dovecot_wait_delivered "$dir" erin 1
e2e_dovecot_wait_delivered "$dir" frank 1
e2e_wait_queue_empty "$dir" 30
ok "Postfix → trackless lmtp → Dovecot: corpus rewritten like trackless filter, one copy per recipient"
e2e_postfix_stop "$dir"
e2e_kill "$E2E_LAST_PID"
e2e_dovecot_stop "$dir"

# 4. Fault test: downstream stopped for a while, filter stopped and restarted mid-run.
dir=$(e2e_tmpdir content-filter-fault)
fport=$(e2e_free_port); rport=$(e2e_free_port)
snippets "$dir" "$fport" "$rport" smtp
# Retry deferred mail quickly.
printf 'queue_run_delay = 2s\nminimal_backoff_time = 2s\nmaximal_backoff_time = 4s\n' >>"$dir/main.extra"
# trackless forwards through a gate that can refuse new connections (tests/e2e/tcp_gate.py).
gport=$(e2e_free_port)
e2e_spawn "$dir/gate.log" python3 "$repo/tests/e2e/tcp_gate.py" "$gport" "$rport" "$dir/downstream-down"
GATE_PID=$E2E_LAST_PID
e2e_wait_port "$gport"
start_filter() {
  e2e_spawn "$dir/trackless.log.$1" "$TRACKLESS" --no-log smtp \
    --listen "inet:127.0.0.1:$fport" --forward "smtp://127.0.0.1:$gport"
  FILTER_PID=$E2E_LAST_PID
  e2e_wait_port "$fport"
}
# Send COUNT numbered messages to USER in the background.
load() {
  local user=$1 count=$2 tag=$3 i
  mkdir -p "$dir/$tag"
  for ((i = 1; i <= count; i++)); do
    { printf 'X-Fault-Seq: %d\r\n' "$i"; cat "${files[$((i % ${#files[@]}))]}"; } >"$dir/$tag/$i.eml"
  done
  python3 "$repo/benches/smtp_load.py" 127.0.0.1 "$E2E_SMTP_PORT" "$count" 4 "$user@example.net" "$dir/$tag"/*.eml >"$dir/$tag.txt" 2>&1 &
  LOADER=$!
}
# How many distinct sequence numbers were delivered to USER.
delivered() {
  local f
  for f in $(e2e_delivered_files "$dir" "$1"); do perl -ne 'if (/^X-Fault-Seq:\s*(\d+)/) { print "$1\n"; exit }' "$f"; done | sort -n | uniq | wc -l
}
# Retry deferred mail until USER has COUNT messages and the queue is empty.
drain() {
  local user=$1 count=$2 t
  for ((t = 0; t < 60; t++)); do
    e2e_flush "$dir"
    if (( $(e2e_maildir_count "$dir/mail/$user/Maildir") >= count )) && e2e_queue_empty "$dir" >/dev/null 2>&1; then break; fi
    sleep 2
  done
  e2e_wait_queue_empty "$dir" 60
}
files=("$repo"/corpus/*.eml)
start_filter 1
e2e_postfix_start "$dir" "$dir/main.extra" "$dir/master.extra"
load grace "$FAULT_N" run1
sleep 3
# The downstream (re-injection smtpd) goes away for a while: new connections to it are
# refused, transactions already under way finish. trackless answers 451 and Postfix keeps the
# mail queued. (Removing the service from master.cf would make Postfix kill smtpd processes
# mid-transaction, which duplicates mail whatever the filter does.)
touch "$dir/downstream-down"
sleep 4
rm -f "$dir/downstream-down"
refused=$(grep -c 'downstream failure' "$dir/trackless.log.1" || true)
(( refused > 0 )) || { echo "the downstream outage was not noticed"; exit 1; }
ok "re-injection listener unreachable for 4 s during the run ($refused refused downstream connections)"
sleep 2
# Stop (SIGTERM: transactions in flight are finished, idle sessions get 421) and start again.
e2e_kill "$FILTER_PID"
start_filter 2
ok "filter stopped (SIGTERM) and restarted during the run"
wait "$LOADER" || { cat "$dir/run1.txt"; exit 1; }
drain grace "$FAULT_N"
e2e_wait_delivered "$dir" grace "$FAULT_N" 120
[[ "$(delivered grace)" == "$FAULT_N" ]] || { echo "delivered $(delivered grace) distinct of $FAULT_N"; exit 1; }
deferred=$(grep -c 'status=deferred' "$dir/maillog" || true)
ok "fault test: all $FAULT_N messages delivered exactly once ($deferred deferrals on the way), queue empty"

# SIGKILL cannot be made exactly-once by any SMTP filter: if the filter dies after the
# downstream accepted a message and before it passes the 250 back, Postfix retries it and logs
# "message may be sent more than once". What must hold: nothing is lost, and every extra copy
# is one of those.
before=$(grep -c 'may be sent more than once' "$dir/maillog" || true)
KILL_N=$((FAULT_N / 4))
load heidi "$KILL_N" run2
sleep 3
kill -KILL "$FILTER_PID"
sleep 1
start_filter 3
wait "$LOADER" || { cat "$dir/run2.txt"; exit 1; }
drain heidi "$KILL_N"
[[ "$(delivered heidi)" == "$KILL_N" ]] || { echo "lost messages after SIGKILL: $(delivered heidi) distinct of $KILL_N"; exit 1; }
copies=$(e2e_maildir_count "$dir/mail/heidi/Maildir")
warned=$(( $(grep -c 'may be sent more than once' "$dir/maillog" || true) - before ))
(( copies - KILL_N <= warned )) || { echo "$((copies - KILL_N)) duplicates but Postfix warned of $warned"; exit 1; }
ok "SIGKILL mid-run: all $KILL_N delivered, $((copies - KILL_N)) duplicate(s), each announced by Postfix ($warned warnings)"

e2e_kill "$GATE_PID"
echo "postfix_content_filter: $pass passed, 0 failed"
