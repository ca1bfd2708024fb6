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
#      empty. Then the filter is SIGKILLed mid-run (some but not all delivered at that moment):
#      nothing lost, and every extra copy belongs to a queue id for which Postfix logged
#      "message may be sent more than once".
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

# A complaint dossier from the log the filter in DIR filled in this run: sender and ESP named.
check_dossier() {
  "$TRACKLESS" --log "$1/log.sqlite" report dossier glowco.example --lang en --out "$1/dossier"
  grep -q 'glowco\.example' "$1/dossier/dossier.html" && grep -q 'Klaviyo' "$1/dossier/dossier.html" ||
    { echo "the dossier from $1/log.sqlite lacks glowco.example or Klaviyo"; exit 1; }
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
  check_dossier "$dir"
  ok "$variant content filter: report dossier glowco.example from its log"
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
check_dossier "$dir"
ok "LMTP proxy: report dossier glowco.example from its log"

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
# If the test fails while a loader runs, stop it too.
e2e_on_exit '[[ -z "${LOADER:-}" ]] || kill "$LOADER" 2>/dev/null'

# Wait until USER's Maildir holds at least COUNT messages; give up after 120 s, or when the
# loader has ended and nothing is left in the queue. (The loader ends long before the last
# message is delivered: it only waits for Postfix to queue them.)
wait_user() {
  local user=$1 count=$2 deadline=$((SECONDS + 120))
  while (($(e2e_maildir_count "$dir/mail/$user/Maildir") < count)); do
    if ! kill -0 "$LOADER" 2>/dev/null && e2e_queue_empty "$dir" 2>/dev/null; then return 1; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
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
# check_delivered USER COUNT exact|announced: compares the sequence numbers delivered to USER,
# every copy counted, with 1..COUNT. Each must arrive; "exact": exactly once; "announced": an
# extra copy is allowed only for a message whose queue id (the public smtpd's, in the second
# Received header Postfix added) has a "may be sent more than once" warning in the maillog
# from an attempt that sent it, one extra copy per warning. Prints a summary line; fails with
# the offending messages on stderr.
check_delivered() {
  e2e_delivered_files "$dir" "$1" | perl -e '
    my ($n, $mode, $maillog) = @ARGV;
    my (%warned, %copies, @bad);
    open(my $log, "<", $maillog) or die "$maillog: $!\n";
    # Only the delivery attempt that lost the connection counts: qmgr then defers the other
    # queued messages for the filter with the same text after "delivery temporarily
    # suspended:", but those were not sent at all.
    while (<$log>) { $warned{$1}++ if /: ([0-9A-F]+): .*status=deferred \((?!delivery temporarily suspended).*message may be sent more than once/ }
    while (my $f = <STDIN>) {
      chomp $f;
      open(my $fh, "<:raw", $f) or die "$f: $!\n";
      local $/; my $m = <$fh>;
      my ($head) = split /\n\n/, $m, 2;
      $head =~ s/\n[ \t]/ /g;                            # unfold
      my @lines = split /\n/, $head;
      shift @lines while @lines && $lines[0] =~ /^(?:Return-Path|X-Original-To|Delivered-To):/i;
      # Postfix adds two Received headers: the re-injection smtpd (top), the public smtpd.
      my @qid = map { /^Received: .* by mx\.e2e\.test \(Postfix\) with E?SMTP id ([0-9A-F]+)/ ? $1 : "?" } @lines[0, 1];
      my ($seq) = $head =~ /^X-Fault-Seq:\s*(\d+)$/m;
      if (!defined $seq || $seq < 1 || $seq > $n) { push @bad, "$f: no X-Fault-Seq in 1..$n"; next }
      push @{ $copies{$seq} }, $qid[1];
    }
    my ($dups, %dupqid) = (0);
    for my $seq (1 .. $n) {
      my $c = $copies{$seq} // [];
      if (!@$c) { push @bad, "message $seq lost"; next }
      next if @$c == 1;
      if ($mode eq "exact") { push @bad, "message $seq delivered " . @$c . " times"; next }
      my %q; $q{$_}++ for @$c;
      if (keys %q > 1) { push @bad, "message $seq delivered " . @$c . " times, queued under different ids (" . join(",", sort keys %q) . ")"; next }
      my ($qid) = keys %q;
      my $extra = @$c - 1;
      if (($warned{$qid} // 0) < $extra) {
        push @bad, "message $seq (queue id $qid) delivered " . @$c . " times, Postfix warned " . ($warned{$qid} // 0) . " time(s) that it may be sent more than once";
        next;
      }
      $dups += $extra; $dupqid{$qid} = 1;
    }
    print STDERR "$_\n" for @bad;
    my $nw = 0; $nw += $_ for values %warned;
    printf "%d duplicate(s) (queue ids: %s), %d warning(s) in the maillog\n", $dups, join(" ", sort keys %dupqid) || "-", $nw;
    exit(@bad ? 1 : 0);
  ' "$2" "$3" "$dir/maillog"
}
files=("$repo"/corpus/*.eml)
start_filter 1
e2e_postfix_start "$dir" "$dir/main.extra" "$dir/master.extra"
load grace "$FAULT_N" run1
wait_user grace $((FAULT_N / 10)) || true
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
wait_user grace $(($(e2e_maildir_count "$dir/mail/grace/Maildir") + FAULT_N / 20)) || true
# Stop (SIGTERM: transactions in flight are finished, idle sessions get 421) and start again.
stopped_at=$(e2e_maildir_count "$dir/mail/grace/Maildir")
e2e_kill "$FILTER_PID"
((stopped_at > 0 && stopped_at < FAULT_N)) || { echo "the stop did not land mid-run: $stopped_at of $FAULT_N delivered"; exit 1; }
start_filter 2
ok "filter stopped (SIGTERM) with $stopped_at of $FAULT_N delivered, and restarted"
wait "$LOADER" || { LOADER=; cat "$dir/run1.txt"; exit 1; }
LOADER=
drain grace "$FAULT_N"
summary=$(check_delivered grace "$FAULT_N" exact) || { echo "fault test: messages lost or duplicated (above)"; exit 1; }
deferred=$(grep -c 'status=deferred' "$dir/maillog" || true)
ok "fault test: all $FAULT_N messages delivered exactly once ($deferred deferrals on the way), queue empty"

# SIGKILL cannot be made exactly-once by any SMTP filter: if the filter dies after the
# downstream accepted a message and before it passes the 250 back, Postfix retries it and logs
# "message may be sent more than once" for that queue id. What must hold: nothing is lost, and
# every extra copy belongs to a queue id Postfix logged that warning for.
KILL_N=$((FAULT_N / 4))
load heidi "$KILL_N" run2
wait_user heidi $((KILL_N / 5)) || true
killed_at=$(e2e_maildir_count "$dir/mail/heidi/Maildir")
kill -KILL "$FILTER_PID"
wait "$FILTER_PID" 2>/dev/null || true
((killed_at > 0 && killed_at < KILL_N)) || { echo "the kill did not land mid-run: $killed_at of $KILL_N delivered"; exit 1; }
ok "filter SIGKILLed with $killed_at of $KILL_N delivered"
sleep 1
start_filter 3
wait "$LOADER" || { LOADER=; cat "$dir/run2.txt"; exit 1; }
LOADER=
drain heidi "$KILL_N"
summary=$(check_delivered heidi "$KILL_N" announced) || { echo "after SIGKILL: messages lost, or duplicated without Postfix's warning (above)"; exit 1; }
ok "SIGKILL mid-run: all $KILL_N delivered, $summary"

e2e_kill "$GATE_PID"
echo "postfix_content_filter: $pass passed, 0 failed"
