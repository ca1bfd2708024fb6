#!/usr/bin/env bash
# End to end: a real Postfix with trackless as its milter (packaging/postfix/main.cf.milter,
# the same snippet an admin appends), delivering to a Maildir.
#   1. every corpus message arrives exactly as `trackless filter` writes it (apart from the
#      headers Postfix adds), a clean message arrives unchanged;
#   2. the milter is SIGKILLed in the middle of a burst (some but not all of it delivered at
#      that moment): every message is delivered exactly once (milter_default_action = accept),
#      those accepted while the milter was down arrive unchanged, those accepted before the
#      kill and after the restart are rewritten; the queue ends empty;
#   3. the tracking log has a row per filtered message, and report dossier makes a dossier
#      from it.
# Run as root: bash tests/e2e/postfix_milter.sh [path/to/trackless]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$here/lib.sh"
TRACKLESS=${1:-$repo/target/debug/trackless}
[[ -x "$TRACKLESS" ]] || { echo "build trackless first (cargo build)"; exit 1; }
e2e_install_packages

pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
# The message without its Return-Path header field(s).
no_return_path() {
  perl -0777 -pe 'my ($h, $b) = split /(?<=\n)(?=\r?\n)/, $_, 2; $h =~ s/^Return-Path:[^\n]*\n(?:[ \t][^\n]*\n)*//gmi; $_ = $h . ($b // "")' "$1"
}

dir=$(e2e_tmpdir postfix-milter)
msgs="$dir/msgs"
mkdir -p "$msgs"
# The milter socket lives in the queue directory, named relative to it in main.cf exactly as
# in the packaged snippet (Postfix resolves unix:trackless/milter.sock there).
cp "$repo/packaging/postfix/main.cf.milter" "$dir/main.extra"
e2e_postfix_start "$dir" "$dir/main.extra"
sockdir="$dir/spool/trackless"
# As the systemd unit does: a setgid directory of group postfix, so the 0660 socket is
# reachable by smtpd and nobody else.
install -d -g postfix -m 2750 "$sockdir"

start_milter() {
  e2e_spawn "$dir/milter.log" "$TRACKLESS" --log "$dir/log.sqlite" milter \
    --listen "unix:$sockdir/milter.sock" --socket-mode 0660
  MILTER_PID=$E2E_LAST_PID
  e2e_wait_socket "$sockdir/milter.sock"
}
start_milter
[[ "$(stat -c %G:%a "$sockdir/milter.sock")" == postfix:660 ]] || { echo "socket mode/group wrong: $(stat -c %G:%a "$sockdir/milter.sock")"; exit 1; }
ok "milter listening on $sockdir/milter.sock (group postfix, 0660)"

# 1. The corpus through Postfix → milter → Maildir, compared with trackless filter.
n=0
for f in "$repo"/corpus/*.eml; do
  n=$((n + 1))
  cp "$f" "$msgs/$n.eml"
done
e2e_send_many -j 4 -t alice@example.net "$msgs"/*.eml
e2e_wait_delivered "$dir" alice "$n" 60
checked=0
for f in "$msgs"/*.eml; do
  id=$(perl -ne 'if (/^Message-I[dD]:\s*(<[^>]+>)/) { print $1; exit }' "$f")
  [[ -n "$id" ]] || continue
  got=$(e2e_find_message "$dir/mail/alice/Maildir" "$id")
  # Postfix's cleanup drops a Return-Path header a message arrives with (it writes its own at
  # delivery), before milters see it: the filter gets the message as the milter does.
  no_return_path "$f" | "$TRACKLESS" --no-log filter >"$dir/expected.eml"
  e2e_assert_same_message "$dir/expected.eml" "$got"
  checked=$((checked + 1))
done
ok "$checked corpus messages delivered exactly as trackless filter rewrites them"

clean="$repo/corpus/personal-plain.eml"
e2e_send "$clean" bob@example.net
e2e_wait_delivered "$dir" bob 1
no_return_path "$clean" >"$dir/clean.eml"
e2e_assert_same_message "$dir/clean.eml" "$(e2e_delivered_files "$dir" bob)"
grep -q '^X-Trackless:' "$(e2e_delivered_files "$dir" bob)" && { echo "clean mail got a header"; exit 1; }
ok "clean message delivered byte-identical, no header added"

rows=$(perl -e 'print 0' )
if command -v sqlite3 >/dev/null; then rows=$(sqlite3 "$dir/log.sqlite" 'select count(*) from messages'); fi
"$TRACKLESS" --log "$dir/log.sqlite" report --format csv >"$dir/report.csv"
logged=$(($(wc -l <"$dir/report.csv") - 1))
((logged > 10)) || { echo "tracking log has only $logged sender rows"; exit 1; }
ok "tracking log written by the milter ($logged sender domains${rows:+, $rows rows})"

# 2. Kill the milter in the middle of a burst: nothing may be lost or duplicated, mail that
#    passed while it was down arrives unchanged (milter_default_action = accept), and mail
#    accepted after it came back is rewritten again.
# The burst uses only corpus messages the filter rewrites (its output has X-Trackless) and that
# have a Message-ID, so "rewritten" and "unchanged" can be told apart for every message.
total=120
kill_at=$((total / 4))       # kill once this many burst messages were delivered
outage_min=10                # restart once this many more were delivered while it was down
# One template per corpus message: as sent (X-Burst-Seq: @SEQ@ on top), as it arrives when
# passed unchanged, and as trackless filter rewrites it.
mkdir -p "$dir/templates" "$dir/burst" "$dir/burst-plain" "$dir/burst-rewritten"
tracked=()
for f in "$repo"/corpus/*.eml; do
  grep -qi '^Message-ID:' "$f" || continue
  t="$dir/templates/${f##*/}"
  { printf 'X-Burst-Seq: @SEQ@\r\n'; cat "$f"; } >"$t.sent"
  no_return_path "$t.sent" >"$t.plain"
  "$TRACKLESS" --no-log filter <"$t.plain" >"$t.rewritten" 2>/dev/null
  perl -ne 'last if /^\r?$/; if (/^X-Trackless:/i) { $f = 1; last } END { $? = $f ? 0 : 1 }' "$t.rewritten" && tracked+=("$t")
done
((${#tracked[@]} >= 10)) || { echo "only ${#tracked[@]} corpus messages with trackers"; exit 1; }
# Burst message i and its two acceptable results: the templates with the sequence number in the
# first header (which the filter passes on as it is), so the filter runs once per template.
perl -e '
  my ($dir, $total, @t) = @ARGV;
  for my $i (1 .. $total) {
    for my $kind (["sent", "burst"], ["plain", "burst-plain"], ["rewritten", "burst-rewritten"]) {
      my $src = $t[$i % @t] . ".$kind->[0]";
      open(my $in, "<:raw", $src) or die "$src: $!\n";
      my $m = do { local $/; <$in> };
      $m =~ s/\AX-Burst-Seq: \@SEQ\@(?=\r?\n)/X-Burst-Seq: $i/ or die "$src does not start with X-Burst-Seq: \@SEQ\@\n";
      open(my $out, ">:raw", "$dir/$kind->[1]/$i.eml") or die "$dir/$kind->[1]/$i.eml: $!\n";
      print {$out} $m;
      close($out) or die "$dir/$kind->[1]/$i.eml: $!\n";
    }
  }' "$dir" "$total" "${tracked[@]}"
carol_md="$dir/mail/carol/Maildir"
# A line in the maillog, in order with Postfix's own (postlog goes through postlogd too).
marker() { postlog -c "$dir/etc" -t trackless-e2e "milter $1"; }
# Wait until the Maildir of carol holds at least $1 messages; give up after 120 s, or when the
# burst has been sent and nothing is left in the queue.
wait_carol() {
  local want=$1 deadline=$((SECONDS + 120))
  while (($(e2e_maildir_count "$carol_md") < want)); do
    if [[ -e "$dir/burst.rc" ]] && e2e_queue_empty "$dir" 2>/dev/null; then return 1; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.02
  done
}
(e2e_send_many -j 4 -t carol@example.net "$dir/burst"/*.eml >"$dir/burst.log" 2>&1; echo $? >"$dir/burst.rc") &
sender=$!
# If the test fails mid-burst, stop the senders (the subshell and its swaks children) too.
kill_tree() { local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill "$1" 2>/dev/null || true; }
e2e_on_exit '[[ -z "${sender:-}" ]] || kill_tree "$sender"'
wait_carol "$kill_at" || true
marker KILLING
killed_at=$(e2e_maildir_count "$carol_md")
kill -KILL "$MILTER_PID"
wait "$MILTER_PID" 2>/dev/null || true
marker KILLED
((killed_at > 0 && killed_at < total)) || {
  echo "the kill did not land mid-burst: $killed_at of $total delivered when the milter was killed"
  exit 1
}
ok "milter killed (SIGKILL) with $killed_at of $total burst messages delivered"
wait_carol $((killed_at + outage_min)) || true
down_at=$(e2e_maildir_count "$carol_md")
# The killed milter left its socket file behind: start_milter waits until the new one accepts
# connections (e2e_wait_socket connects), so every session after BACK can reach it. Sessions
# between RESTARTING and BACK may or may not have reached it.
marker RESTARTING
start_milter
marker BACK
back_at=$(e2e_maildir_count "$carol_md")
((back_at < total)) || { echo "the burst was over before the milter came back ($back_at of $total delivered)"; exit 1; }
wait "$sender" || true
sender=
[[ "$(cat "$dir/burst.rc")" == 0 ]] || { echo "some sends were refused:"; tail -20 "$dir/burst.log"; exit 1; }
# Every accepted message is in the queue until delivered: an empty queue means all arrived.
e2e_wait_queue_empty "$dir" 120
ok "milter back after $((down_at - killed_at)) deliveries without it; $back_at of $total delivered at restart, queue drained"

# Every burst message delivered exactly once: count each sequence number, duplicates included.
for f in $(e2e_delivered_files "$dir" carol); do
  perl -ne 'if (/^X-Burst-Seq:\s*(\d+)/) { print "$1\n"; $s = 1; exit } END { print "none\n" unless $s }' "$f"
done | sort | uniq -c | awk -v n="$total" '
  { c[$2] = $1 }
  END {
    bad = 0
    for (i = 1; i <= n; i++) {
      if (!(i in c)) { printf "burst message %d lost\n", i; bad++ }
      else if (c[i] != 1) { printf "burst message %d delivered %d times\n", i, c[i]; bad++ }
    }
    for (k in c) if (k !~ /^[0-9]+$/ || k + 0 < 1 || k + 0 > n) { printf "%d delivered message(s) with sequence number %s\n", c[k], k; bad++ }
    exit bad > 0
  }' || { echo "burst messages lost or duplicated across the crash (above)"; exit 1; }
ok "each of the $total burst messages delivered exactly once"

# What each message went through, from the maillog: the smtpd session that received it
# (identified by the queue id in the delivered Received header) started and ended
#   before   before KILLING: the milter was up throughout -> rewritten
#   kill     between KILLING and KILLED -> either form (in flight when the milter died)
#   outage   after KILLED, before RESTARTING: the milter connection was refused -> unchanged
#   restart  between RESTARTING and BACK -> either form
#   after    after BACK -> rewritten again
#   across   started and ended in different phases (in flight at a marker) -> either form
# (in flight at the kill, also the new body without the X-Trackless header sent after it)
# and whether smtpd logged that it could not connect to the milter.
e2e_delivered_files "$dir" carol | perl -e '
  my ($maillog, $plain, $rewritten) = @ARGV;
  sub norm { my $m = shift; $m =~ s/\r\n/\n/g; $m .= "\n" if length $m && $m !~ /\n\z/; $m =~ tr/\r/ /; $m }
  sub slurp { open(my $fh, "<:raw", $_[0]) or die "$_[0]: $!\n"; local $/; scalar <$fh> }
  open(my $log, "<", $maillog) or die "$maillog: $!\n";
  my ($phase, %sess, %byqid) = ("before");
  while (<$log>) {
    if (/trackless-e2e\S*: milter (KILLING|KILLED|RESTARTING|BACK)$/) { $phase = { KILLING => "kill", KILLED => "outage", RESTARTING => "restart", BACK => "after" }->{$1}; next }
    next unless m{postfix/smtpd\[(\d+)\]: (.*)};
    my ($pid, $msg) = ($1, $2);
    if ($msg =~ /^connect from /) { $sess{$pid} = { start => $phase, down => 0, qids => [] } }
    elsif (!$sess{$pid}) { next }
    elsif ($msg =~ /^warning: connect to Milter service /) { $sess{$pid}{down} = 1 }
    elsif ($msg =~ /^([0-9A-F]+): client=/) { push @{ $sess{$pid}{qids} }, $1 }
    elsif ($msg =~ /^disconnect from /) {
      my $s = delete $sess{$pid};
      # A session across a marker was in flight at the kill or the restart: either form.
      my $p = $s->{start} eq $phase ? $phase : "across";
      $byqid{$_} = [$p, $s->{down}] for @{ $s->{qids} };
    }
  }
  while (my $f = <STDIN>) {
    chomp $f;
    my $m = slurp($f);
    my ($seq) = $m =~ /^X-Burst-Seq:\s*(\d+)/m;
    my ($qid) = $m =~ /^Received: from .*\n(?:[ \t].*\n)*?[ \t].* with E?SMTP id ([0-9A-F]+)/m;
    # The delivered message without the headers Postfix added (see e2e_strip_postfix_headers).
    (my $body = $m) =~ s/\A(?:Return-Path:.*\n)?(?:X-Original-To:.*\n)?(?:Delivered-To:.*\n)?Received:.*\n(?:[ \t].*\n)*//;
    my $form = "other";
    if (defined $seq) {
      my $new = norm(slurp("$rewritten/$seq.eml"));
      # Postfix applies the changes of a milter as they come: one killed between the new body
      # and the X-Trackless header it sends after it leaves the body rewritten, the header not.
      (my $no_header = $new) =~ s/^X-Trackless:.*\n(?:[ \t].*\n)*//m;
      $form = "unchanged" if $body eq norm(slurp("$plain/$seq.eml"));
      $form = "rewritten" if $body eq $new;
      $form = "body-only" if $form eq "other" && $body eq $no_header;
    }
    my ($p, $down) = @{ $byqid{$qid // ""} // ["unknown", 0] };
    printf "%s %s %s %s %s %s\n", $seq // "none", $qid // "none", $p, $down ? "milter-refused" : "milter-reached", $form, $f;
  }
' "$dir/maillog" "$dir/burst-plain" "$dir/burst-rewritten" >"$dir/burst-phases.txt"
awk '
  { n[$3]++; if ($5 == "rewritten") rw[$3]++ }
  $5 == "other"                                        { print "neither unchanged nor rewritten like trackless filter: " $0; bad++ }
  $5 == "body-only" && $3 != "kill" && $3 != "across"  { print "rewritten without its X-Trackless header, yet not in flight at the kill: " $0; bad++ }
  $3 == "unknown"                                      { print "no smtpd session found in the maillog: " $0; bad++ }
  $3 == "before" && ($5 != "rewritten" || $4 != "milter-reached") { print "accepted before the kill but not filtered: " $0; bad++ }
  $3 == "outage" && ($5 != "unchanged" || $4 != "milter-refused") { print "accepted while the milter was down but not passed on unchanged: " $0; bad++ }
  $3 == "after"  && ($5 != "rewritten" || $4 != "milter-reached") { print "accepted after the milter came back but not filtered: " $0; bad++ }
  END {
    if (n["outage"] < 1) { print "no message was accepted while the milter was down"; bad++ }
    if (n["after"] < 1) { print "no message was accepted after the milter came back"; bad++ }
    printf "before %d, outage %d, after restart %d; in flight at the kill or the restart %d (%d rewritten)\n", n["before"], n["outage"], n["after"], n["kill"] + n["restart"] + n["across"], rw["kill"] + rw["restart"] + rw["across"] > "/dev/stderr"
    exit bad > 0
  }' "$dir/burst-phases.txt" 2>"$dir/burst-summary.txt" || { echo "see $dir/burst-phases.txt"; exit 1; }
ok "burst phases: $(cat "$dir/burst-summary.txt"): unchanged while the milter was down, rewritten (X-Trackless) before and after"

# 3. SIGTERM: the milter stops cleanly and removes its socket.
e2e_kill "$MILTER_PID"
[[ ! -e "$sockdir/milter.sock" ]] || { echo "socket left behind"; exit 1; }
ok "SIGTERM: milter stopped and removed its socket"

# 4. A complaint dossier from the log the milter filled in this run.
"$TRACKLESS" --log "$dir/log.sqlite" report dossier northwind.example --lang en --out "$dir/dossier"
grep -q 'northwind\.example' "$dir/dossier/dossier.html" && grep -q 'SendGrid' "$dir/dossier/dossier.html" ||
  { echo "the dossier from the milter's log lacks northwind.example or SendGrid"; exit 1; }
ok "report dossier northwind.example from the milter's log (sender and ESP named)"

echo "postfix_milter: $pass passed, 0 failed"
