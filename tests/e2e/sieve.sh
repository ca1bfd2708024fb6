#!/usr/bin/env bash
# End to end: trackless as a Dovecot Sieve filter (Pigeonhole extprograms), per user, with the
# packaged files of packaging/dovecot/ (paths substituted). Postfix → Dovecot LMTP, every
# corpus message sent once to all of these users:
#   alice  opted in (packaging/dovecot/trackless.sieve as ~/.dovecot.sieve): every message
#          exactly as `trackless filter` writes it from what Dovecot handed the filter;
#   bob    no script: the originals, byte for byte;
#   carol  the wrapper with a configuration whose rules file is broken: the originals;
#   dave   the wrapper around a trackless that writes half a message and is SIGKILLed: the
#          originals;
#   fay    the wrapper around a trackless that exits 0 without output: the originals;
# then two messages to erin, whose wrapper runs a trackless that writes a changed message and
# hangs (killed by the wrapper's time limit, 1s here): the originals.
# Without the wrapper (ivan, judy): a program exiting 1 leaves the original, one exiting 0
# without output turns the message into an empty one.
# `trackless report` run as alice (the mail uid, HOME = her home, no root) lists what was
# removed from her 50 messages.
# kim runs the inspect-only form (execute :pipe, packaging/dovecot/trackless-inspect): the
# originals, and her own report counts the same trackers as alice's.
# Then the global script (packaging/dovecot/trackless-everyone.sieve as sieve_before): gus,
# without any script of his own, gets the corpus filtered; hana, with a (not active) personal
# script named "trackless-optout", the originals.
# Run as root: bash tests/e2e/sieve.sh [path/to/trackless]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$here/lib.sh"
TRACKLESS=${1:-$repo/target/debug/trackless}
if [[ ! -x "$TRACKLESS" && $# -eq 0 ]]; then
  (cd "$repo" && cargo build)
fi
[[ -x "$TRACKLESS" ]] || { echo "build trackless first (cargo build)"; exit 1; }
TRACKLESS=$(cd "$(dirname "$TRACKLESS")" && pwd)/$(basename "$TRACKLESS")
E2E_PACKAGES+=(dovecot-sieve)
e2e_install_packages
t_start=$(e2e_now)

pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $* ($(e2e_elapsed "$t_start")s)"; }
fail() { echo "not ok - $*"; e2e_maillog_tail "$dir" 40 >&2 || true; exit 1; }
no_return_path() {
  perl -0777 -pe 'my ($h, $b) = split /(?<=\n)(?=\r?\n)/, $_, 2; $h =~ s/^Return-Path:[^\n]*\n(?:[ \t][^\n]*\n)*//gmi; $_ = $h . ($b // "")' "$1"
}
# The headers Dovecot and Postfix put on top of a delivered message: Return-Path, Delivered-To
# (single recipient only), Dovecot's Received, Postfix's Received.
trace_headers() {
  perl -0777 -ne '
    my $field = qr/[^\n]*\n(?:[ \t][^\n]*\n)*/;
    /\A((?:Return-Path:$field)?(?:Delivered-To:$field)?Received:${field}Received:$field)/i
      or die "e2e: $ARGV: no Dovecot and Postfix trace headers on top\n";
    print $1;' "$1"
}

dir=$(e2e_tmpdir sieve)
mail_user=$(id -un "$E2E_MAIL_UID")
mail_group=$(id -gn "$E2E_MAIL_UID")

# --- the packaged files, with this run's paths -----------------------------------------------
bindir=$dir/sieve-filter
execdir=$dir/sieve-execute
install -d -m 0755 "$bindir" "$execdir"
# wrapper NAME SETTING=VALUE...: the packaged wrapper as $bindir/NAME, its settings replaced.
wrapper() {
  local name=$1 kv k
  shift
  cp "$repo/packaging/dovecot/trackless-filter" "$bindir/$name"
  for kv in TRACKLESS="$TRACKLESS" CONFIG=/dev/null "$@"; do
    k=${kv%%=*}
    grep -q "^$k=" "$bindir/$name" || fail "no $k= setting in packaging/dovecot/trackless-filter"
    KV=$kv perl -pi -e 'BEGIN { ($k, $v) = split /=/, $ENV{KV}, 2 } s/^\Q$k\E=.*/$k=$v/' "$bindir/$name"
  done
  chmod 0755 "$bindir/$name"
}
# The inspect-only wrapper, as $execdir/trackless.
cp "$repo/packaging/dovecot/trackless-inspect" "$execdir/trackless"
perl -pi -e "s|^TRACKLESS=.*|TRACKLESS=$TRACKLESS|; s|^CONFIG=.*|CONFIG=/dev/null|" "$execdir/trackless"
grep -q "^TRACKLESS=$TRACKLESS\$" "$execdir/trackless" || fail "no TRACKLESS= setting in packaging/dovecot/trackless-inspect"
chmod 0755 "$execdir/trackless"
# Fake trackless programs for the failure cases.
cat >"$dir/fake-killed" <<'EOF'
#!/bin/sh
# Half a changed message, then SIGKILL.
head -c 300 | sed 's/^Subject:/Subject: [changed]/'
kill -KILL $$
EOF
cat >"$dir/fake-hung" <<'EOF'
#!/bin/sh
# A changed message, then no exit.
sed 's/^Subject:/Subject: [changed]/'
exec sleep 60
EOF
cat >"$dir/fake-empty" <<'EOF'
#!/bin/sh
# Reads the message, writes nothing, "succeeds".
cat >/dev/null
exit 0
EOF
chmod 0755 "$dir"/fake-*
# Pigeonhole's own behaviour, without the wrapper: a program that fails after writing part of
# a message, and one that "succeeds" without writing anything.
printf '#!/bin/sh\nhead -c 200\nexit 1\n' >"$bindir/raw-fail"
printf '#!/bin/sh\ncat >/dev/null\nexit 0\n' >"$bindir/raw-empty"
chmod 0755 "$bindir"/raw-*
printf 'this is = not [valid toml\n' >"$dir/broken-rules.toml"
printf '[policy]\nrules = ["%s"]\n' "$dir/broken-rules.toml" >"$dir/broken.toml"
wrapper trackless
wrapper trackless-broken CONFIG="$dir/broken.toml"
wrapper trackless-killed TRACKLESS="$dir/fake-killed"
wrapper trackless-empty TRACKLESS="$dir/fake-empty"
wrapper trackless-hung TRACKLESS="$dir/fake-hung" TIMEOUT=1
# The broken configuration does fail: trackless itself passes the message through (exit 0).
printf 'Subject: x\n\nx\n' | "$TRACKLESS" --config "$dir/broken.toml" --no-log filter 2>"$dir/broken.err" >/dev/null
grep -q 'passed through unchanged' "$dir/broken.err" || fail "broken rules file not reported: $(cat "$dir/broken.err")"

# dovecot.conf additions: Sieve for LMTP, the packaged plugin settings.
sieve_conf() {
  printf 'protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n'
  printf 'plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n'
  sed -e "s|/usr/lib/dovecot/sieve-filter|$bindir|" \
    -e "s|/usr/lib/dovecot/sieve-execute|$execdir|" \
    -e "s|^ *#sieve_before = .*|  ${1:+sieve_before = $1}|" \
    "$repo/packaging/dovecot/90-sieve-extprograms.conf"
}
sieve_conf >"$dir/sieve.conf"
grep -q "sieve_filter_bin_dir = $bindir" "$dir/sieve.conf" || fail "sieve_filter_bin_dir not substituted"
e2e_dovecot_start "$dir" "$dir/sieve.conf"
printf 'virtual_transport = lmtp:unix:%s\n' "$E2E_LMTP_SOCKET" >"$dir/main.extra"
e2e_postfix_start "$dir" "$dir/main.extra"

# home USER [SIEVE-TEXT]: creates USER's home (as Dovecot's userdb has it), with SIEVE-TEXT
# as the active script ~/.dovecot.sieve.
home() {
  local h=$dir/dovecot-mail/$1
  install -d -o "$mail_user" -g "$mail_group" -m 0700 "$h"
  if [[ -n "${2:-}" ]]; then
    printf '%s\n' "$2" >"$h/.dovecot.sieve"
    chown "$mail_user:$mail_group" "$h/.dovecot.sieve"
  fi
}
home alice
install -o "$mail_user" -g "$mail_group" -m 0644 "$repo/packaging/dovecot/trackless.sieve" "$dir/dovecot-mail/alice/.dovecot.sieve"
home bob
home carol 'require "vnd.dovecot.filter"; filter "trackless-broken";'
home dave 'require "vnd.dovecot.filter"; filter "trackless-killed";'
home fay 'require "vnd.dovecot.filter"; filter "trackless-empty";'
home erin 'require "vnd.dovecot.filter"; filter "trackless-hung";'
home kim 'require "vnd.dovecot.execute"; execute :pipe "trackless";'

mkdir -p "$dir/msgs"
n=0
for f in "$repo"/corpus/*.eml; do n=$((n + 1)); no_return_path "$f" >"$dir/msgs/$n.eml"; done
# msgid FILE: the Message-ID of a message.
msgid() { perl -ne 'if (/^Message-I[dD]:\s*(<[^>]+>)/) { print $1; exit }' "$1"; }
ids=()
for ((i = 1; i <= n; i++)); do ids[i]=$(msgid "$dir/msgs/$i.eml"); done
# delivered USER: fills the associative array GOT (Message-ID → file) with USER's Maildir;
# fails on a Message-ID seen twice.
declare -A GOT
delivered() {
  local id f
  GOT=()
  while IFS=$'\t' read -r id f; do
    [[ -z "${GOT[$id]:-}" ]] || fail "$1: two messages with Message-ID $id"
    GOT[$id]=$f
  done < <(e2e_dovecot_delivered_files "$dir" "$1" |
    perl -ne 'chomp; my $f = $_; open(my $fh, "<", $f) or die "$f: $!\n";
      while (<$fh>) { last if /^\r?$/; if (/^Message-I[dD]:\s*(<[^>]+>)/) { print "$1\t$f\n"; last } }')
}

# expect_filtered USER [N]: every (or the first N) corpus message in USER's Maildir is what
# `trackless filter` writes from what Dovecot handed the filter: the delivered message's trace
# headers on top of the message as sent.
expect_filtered() {
  local user=$1 max=${2:-$n} i f got input changed=0
  input=$(e2e_mktemp)
  delivered "$user"
  for ((i = 1; i <= max; i++)); do
    f=$dir/msgs/$i.eml
    got=${GOT[${ids[i]}]:-}
    [[ -n "$got" ]] || fail "$user: no message with Message-ID ${ids[i]}"
    { trace_headers "$got"; e2e_normalise_sent "$f"; } >"$input"
    "$TRACKLESS" --config /dev/null --no-log filter <"$input" >"$dir/expected.eml" 2>/dev/null
    if ! cmp -s "$dir/expected.eml" "$got"; then
      diff <(cat -A "$dir/expected.eml") <(cat -A "$got") | head -n 30 >&2 || true
      fail "$user: $got (corpus $(basename "$(ls "$repo"/corpus/*.eml | sed -n "${i}p")")) is not what trackless filter writes"
    fi
    cmp -s "$input" "$got" || changed=$((changed + 1))
  done
  rm -f "$input"
  ((changed > 0)) || fail "$user: no message was changed at all"
  echo "# $user: $max messages as trackless filter writes them, $changed of them changed"
}
# expect_originals USER [N]: every (or the first N) corpus message in USER's Maildir is the
# message as sent, byte for byte (less the trace headers).
expect_originals() {
  local user=$1 max=${2:-$n} i f got
  delivered "$user"
  for ((i = 1; i <= max; i++)); do
    f=$dir/msgs/$i.eml
    got=${GOT[${ids[i]}]:-}
    [[ -n "$got" ]] || fail "$user: no message with Message-ID ${ids[i]}"
    e2e_assert_same_message "$f" "$got" 1 dovecot || fail "$user: $got is not the original ($f)"
  done
}

# --- 1. per-user opt-in and the failure cases ---------------------------------------------------
users=(alice bob carol dave fay kim)
rcpts=()
for u in "${users[@]}"; do rcpts+=("$u@$E2E_DOMAIN"); done
E2E_RCPT_LIST=$(IFS=,; echo "${rcpts[*]}")
e2e_send_many -j 4 -t "$E2E_RCPT_LIST" "$dir/msgs"/*.eml
for u in "${users[@]}"; do e2e_dovecot_wait_delivered "$dir" "$u" "$n" 120; done
e2e_wait_queue_empty "$dir" 30
ok "corpus ($n messages) delivered once to each of ${users[*]}"

expect_filtered alice
ok "alice (opted in with packaging/dovecot/trackless.sieve): every message exactly as trackless filter writes it"
expect_originals bob
ok "bob (no script): every original byte for byte"
expect_originals carol
grep -q 'passed through unchanged' "$dir/dovecot.log" || fail "no warning about the broken rules file in dovecot.log"
ok "carol (broken rules file): every original byte for byte, the warning in Dovecot's log"
expect_originals dave
grep -q 'trackless failed (exit status 137); original delivered' "$dir/dovecot.log" || fail "no 'trackless failed' line in dovecot.log"
ok "dave (trackless SIGKILLed after half a message): every original byte for byte"
expect_originals fay
grep -q 'trackless wrote nothing; original delivered' "$dir/dovecot.log" || fail "no 'wrote nothing' line in dovecot.log"
ok "fay (trackless exits 0 without output): every original byte for byte"

t0=$(e2e_now)
e2e_send_many -j 2 -t "erin@$E2E_DOMAIN" "$dir/msgs/1.eml" "$dir/msgs/2.eml"
e2e_dovecot_wait_delivered "$dir" erin 2 60
expect_originals erin 2
grep -q 'trackless did not finish within 1s; original delivered' "$dir/dovecot.log" || fail "no timeout line in dovecot.log"
! grep -q 'Panic' "$dir/dovecot.log" || fail "Dovecot panicked"
ok "erin (trackless hangs, the wrapper's 1s limit): both originals byte for byte, in $(e2e_elapsed "$t0")s"
if leftover=$(pgrep -u "$mail_user" -f "$dir/fake-hung|sleep 60" 2>/dev/null); then
  fail "the hung fake trackless is still running: $leftover"
fi

# What Pigeonhole itself does (the reason for the wrapper): a failing program leaves the
# message as it was, an empty output from a "successful" one becomes an empty message.
home ivan 'require "vnd.dovecot.filter"; filter "raw-fail";'
home judy 'require "vnd.dovecot.filter"; filter "raw-empty";'
e2e_send "$dir/msgs/1.eml" "ivan@$E2E_DOMAIN" "judy@$E2E_DOMAIN"
e2e_dovecot_wait_delivered "$dir" ivan 1
e2e_dovecot_wait_delivered "$dir" judy 1
expect_originals ivan 1
[[ ! -s "$(e2e_dovecot_delivered_files "$dir" judy)" ]] || fail "judy: expected the empty message Pigeonhole makes of an empty filter output"
ok "Pigeonhole without the wrapper: a program exiting 1 after partial output leaves the original (ivan); exit 0 with no output delivers an EMPTY message (judy)"

# --- 2. `trackless report` as alice -----------------------------------------------------------
ahome=$dir/dovecot-mail/alice
log=$ahome/.local/state/trackless/log.sqlite
# The filter spools its records beside the log; the first `report` moves them into it.
[[ -f "$log.spool" ]] || fail "no spooled tracking records at $log.spool"
[[ $(stat -c '%U %a' "$log.spool") == "$mail_user 600" ]] || fail "$log.spool: $(stat -c '%U %a' "$log.spool"), expected $mail_user 600"
for u in bob carol dave fay erin; do
  [[ ! -e "$dir/dovecot-mail/$u/.local/state/trackless" ]] || fail "$u has a tracking log"
done
# as_user USER ARGS...: trackless run as the mail user with USER's home, no root.
as_user() {
  local h=$dir/dovecot-mail/$1
  shift
  setpriv --reuid="$E2E_MAIL_UID" --regid="$E2E_MAIL_GID" --clear-groups \
    env -i HOME="$h" PATH=/usr/bin:/bin TRACKLESS_CONFIG=/dev/null "$TRACKLESS" "$@"
}
as_alice() { as_user alice "$@"; }
as_alice report >"$dir/report.txt" 2>&1 || fail "trackless report as alice failed: $(cat "$dir/report.txt")"
as_alice report evidence beanbarrel.example >"$dir/evidence.txt" 2>&1 || fail "report evidence as alice failed"
grep -Eq "^$n message\(s\), [1-9][0-9]* tracked" "$dir/report.txt" || fail "report: not $n messages with trackers: $(tail -n 3 "$dir/report.txt")"
grep -Eq '^beanbarrel\.ex[^ ]* .* Mailchimp ' "$dir/report.txt" || fail "report lists no beanbarrel.example/Mailchimp row"
grep -q 'on beanbarrel.us6.list-manage.com (rule mailchimp.click' "$dir/evidence.txt" || fail "evidence names no list-manage.com tracker"
[[ $(stat -c '%U %a' "$log" 2>/dev/null) == "$mail_user 600" ]] || fail "$log: not the mail user's, 0600, after report"
[[ ! -e "$log.spool" ]] || fail "report left the spool $log.spool behind"
ok "trackless report as alice (uid $E2E_MAIL_UID, no root): $(grep -E '^[0-9]+ message\(s\)' "$dir/report.txt"), Mailchimp's list-manage.com click trackers in the evidence"

# --- 3. inspect only: `execute :pipe "trackless"` ---------------------------------------------
expect_originals kim
klog=$dir/dovecot-mail/kim/.local/state/trackless/log.sqlite
[[ $(stat -c '%U %a' "$klog.spool" 2>/dev/null) == "$mail_user 600" ]] || fail "kim: no spooled tracking records of the mail user, 0600, at $klog.spool"
as_user kim report >"$dir/report-kim.txt" 2>&1 || fail "trackless report as kim failed: $(cat "$dir/report-kim.txt")"
[[ $(stat -c '%U %a' "$klog" 2>/dev/null) == "$mail_user 600" ]] || fail "kim: no tracking log of the mail user, 0600, at $klog"
summary=$(grep -E '^[0-9]+ message\(s\)' "$dir/report.txt")
[[ "$(grep -E '^[0-9]+ message\(s\)' "$dir/report-kim.txt")" == "$summary" ]] ||
  fail "kim's report ($(grep -E '^[0-9]+ message' "$dir/report-kim.txt")) does not count what alice's does ($summary)"
grep -Eq '^beanbarrel\.ex[^ ]* .* Mailchimp ' "$dir/report-kim.txt" || fail "kim's report lists no beanbarrel.example/Mailchimp row"
ok "kim (execute :pipe, packaging/dovecot/trackless-inspect): every original byte for byte, and her own report counts what alice's does ($summary)"

# --- 4. everyone unless they opt out (sieve_before) --------------------------------------------
install -d -m 0755 "$dir/sieve-global"
install -m 0644 "$repo/packaging/dovecot/trackless-everyone.sieve" "$dir/sieve-global/"
sieve_conf "$dir/sieve-global/trackless-everyone.sieve" >"$dir/sieve-before.conf"
grep -q "^ *sieve_before = $dir/sieve-global/trackless-everyone.sieve" "$dir/sieve-before.conf" || fail "sieve_before not set"
e2e_dovecot_start "$dir" "$dir/sieve-before.conf"
# Compiled once by root, as packaging/dovecot/README.md says.
sievec -c "$dir/dovecot.conf" "$dir/sieve-global/trackless-everyone.sieve" || fail "sievec failed"
[[ -s "$dir/sieve-global/trackless-everyone.svbin" ]] || fail "sievec wrote no binary"
home gus
home hana
# hana opts out as a ManageSieve user would: a script named trackless-optout, not active.
install -d -o "$mail_user" -g "$mail_group" -m 0700 "$dir/dovecot-mail/hana/sieve"
printf 'keep;\n' >"$dir/dovecot-mail/hana/sieve/trackless-optout.sieve"
chown "$mail_user:$mail_group" "$dir/dovecot-mail/hana/sieve/trackless-optout.sieve"
e2e_send_many -j 4 -t "gus@$E2E_DOMAIN,hana@$E2E_DOMAIN" "$dir/msgs"/*.eml
e2e_dovecot_wait_delivered "$dir" gus "$n" 120
e2e_dovecot_wait_delivered "$dir" hana "$n" 120
expect_filtered gus
expect_originals hana
! grep -Eq 'Panic|Error: .*sieve' "$dir/dovecot.log" || fail "errors in dovecot.log: $(grep -E 'Panic|Error' "$dir/dovecot.log" | head)"
ok "sieve_before trackless-everyone.sieve: gus (no script) gets every message filtered, hana (trackless-optout) every original"

e2e_postfix_stop "$dir"
e2e_dovecot_stop "$dir"
echo "sieve: $pass passed, 0 failed ($(e2e_elapsed "$t_start")s)"
