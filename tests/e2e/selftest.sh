#!/usr/bin/env bash
# tests/e2e/selftest.sh — checks tests/e2e/lib.sh against real Postfix and
# Dovecot on this machine (127.0.0.1 and unix sockets only).
#
#   sudo bash tests/e2e/selftest.sh      # as root; installs packages if missing
#
# It stops at the first failed check (every daemon it started is stopped on
# exit, whatever happened) and ends with "selftest: N passed, N failed".
# Work directories: $E2E_TMP/selftest-* (default /tmp/trackless-e2e), kept
# after the run for inspection (maillog, dovecot.log, Maildirs) and wiped at
# the start of the next run.
set -Eeuo pipefail # -E: the ERR trap below also fires inside functions

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

PASSED=0
CURRENT=""
T_ALL=$(e2e_now)
TIMINGS=()

# begin NAME: starts a timed step.
begin() {
  CURRENT=$1
  T_STEP=$(e2e_now)
}

# ok: ends the current step successfully and records its time.
ok() {
  local t
  t=$(e2e_elapsed "$T_STEP")
  PASSED=$((PASSED + 1))
  TIMINGS+=("$(printf '%6.2fs  %s' "$t" "$CURRENT")")
  printf 'ok %d - %s (%ss)\n' "$PASSED" "$CURRENT" "$t"
}

# check DESCRIPTION CMD...: runs CMD as an assertion inside the current step;
# prints the description when it fails (set -e then ends the run).
check() {
  local desc=$1
  shift
  if ! "$@"; then
    printf 'check failed: %s\n' "$desc" >&2
    return 1
  fi
}

# fails CMD...: succeeds when CMD fails (its stderr is discarded).
fails() {
  if "$@" 2>/dev/null; then
    return 1
  fi
  return 0
}

REPORTED=""
on_error() {
  local rc=$?
  printf 'not ok %d - %s (line %s, status %s)\n' "$((PASSED + 1))" "${CURRENT:-setup}" "$1" "$rc"
  printf 'selftest: %d passed, 1 failed\n' "$PASSED"
  REPORTED=1
}
# on_exit: reports a run ended by a signal, then stops every daemon.
on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -z "$REPORTED" ]]; then
    printf 'not ok %d - %s (interrupted, status %s)\n' "$((PASSED + 1))" "${CURRENT:-setup}" "$rc"
    printf 'selftest: %d passed, 1 failed\n' "$PASSED"
  fi
  e2e_cleanup_on_exit
}
trap 'on_error $LINENO' ERR
trap on_exit EXIT

# ---------------------------------------------------------------------------
begin "install packages (skipped when present)"
e2e_install_packages
for tool in postfix postconf postqueue swaks dovecot doveadm miltertest perl; do
  check "$tool is installed" command -v "$tool" >/dev/null
done
ok

# ---------------------------------------------------------------------------
# Test messages: the awkward cases a filter must carry through unchanged.
msgs=$(e2e_tmpdir selftest-msgs)

# m1: CRLF line ends, plain.
printf '%s\r\n' \
  'From: Alice Sender <sender@example.org>' \
  'To: alice@example.net' \
  'Subject: selftest m1' \
  'Date: Mon, 02 Jan 2006 15:04:05 +0000' \
  'Message-ID: <m1.selftest@example.org>' \
  'MIME-Version: 1.0' \
  'Content-Type: text/plain; charset=us-ascii' \
  '' \
  'Hello Alice.' \
  '' \
  '-- ' \
  'sender' >"$msgs/m1.eml"

# m2 (two recipients): LF line ends, 8-bit UTF-8 header and body, a 3000-byte
# header line and body line, lines starting with dots, text that swaks
# would otherwise rewrite ("\n", %DATE%, a final "." line), a "From " line
# in the body, trailing blank lines and no final line end.
perl -e '
  print "From: =?UTF-8?Q?Ren=C3=A9?= <sender\@example.org>\n";
  print "To: bob\@example.net, carol\@example.net\n";
  print "Subject: selftest m2 \xc3\xa9t\xc3\xa9 caf\xc3\xa9\n";
  print "Message-ID: <m2.selftest\@example.org>\n";
  print "X-Long: ", "h" x 3000, "\n";
  print "X-Folded: first part\n\tsecond part\n";
  print "Content-Type: text/plain; charset=utf-8\n";
  print "Content-Transfer-Encoding: 8bit\n\n";
  print "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e\n";
  print "b" x 3000, "\n";
  print ".leading dot\n..two leading dots\n.\n";
  print "literal backslash-n: \\n and tokens %DATE% %TO_ADDRESS% %NEWLINE%\n";
  print "From the body, not an mbox separator\n";
  print "\n\n";
  print "no final newline";
' >"$msgs/m2.eml"

# m3: CRLF, no Date, no Message-ID, no To (Postfix must not add any), a bare
# CR inside a line (Postfix turns it into a space).
printf 'From: sender@example.org\r\nSubject: selftest m3\r\n\r\nbare\rCR inside a line\r\n' >"$msgs/m3.eml"

# ---------------------------------------------------------------------------
begin "postfix: private instance starts on a free 127.0.0.1 port"
pf=$(e2e_tmpdir selftest-postfix)
e2e_postfix_start "$pf"
check "E2E_SMTP_PORT is set" test -n "$E2E_SMTP_PORT"
check "smtpd answers" e2e_port_open "$E2E_SMTP_PORT"
check "master runs" e2e_postfix_master_pid "$pf" >/dev/null
check "maillog is written" grep -q 'daemon started' "$pf/maillog"
# shellcheck disable=SC2016
check "every service has chroot n" awk '!/^[#[:space:]]/ && NF >= 8 && $5 != "n" { bad = 1 } END { exit bad }' "$pf/etc/master.cf"
ok

begin "postfix: 3 messages (one to 2 recipients) delivered to the right Maildirs"
e2e_send "$msgs/m1.eml" alice@example.net
e2e_send "$msgs/m2.eml" bob@example.net carol@example.net
e2e_send "$msgs/m3.eml" alice@example.net
e2e_wait_delivered "$pf" alice 2 20
e2e_wait_delivered "$pf" bob 1 20
e2e_wait_delivered "$pf" carol 1 20
check "nobody else got mail" test "$(find "$pf/mail" -mindepth 1 -maxdepth 1 | wc -l)" -eq 3
ok

begin "postfix: delivered = sent (CRLF->LF), less Return-Path/X-Original-To/Delivered-To/Received"
f1=$(e2e_find_message "$pf/mail/alice/Maildir" '<m1.selftest@example.org>')
f3=$(e2e_find_message "$pf/mail/alice/Maildir" 'selftest m3' Subject)
fb=$(e2e_delivered_files "$pf" bob)
fc=$(e2e_delivered_files "$pf" carol)
check "header order" test "$(e2e_header_names "$f1" 5 | tr '\n' ' ')" = "Return-Path X-Original-To Delivered-To Received From "
check "m1 has no CR left" test "$(tr -dc '\r' <"$f1" | wc -c)" -eq 0
check "Delivered-To of bob" grep -q '^Delivered-To: bob@example.net$' "$fb"
check "X-Original-To of carol" grep -q '^X-Original-To: carol@example.net$' "$fc"
check "Return-Path" grep -q '^Return-Path: <sender@example.org>$' "$f1"
e2e_assert_same_message "$msgs/m1.eml" "$f1"
e2e_assert_same_message "$msgs/m2.eml" "$fb"
e2e_assert_same_message "$msgs/m2.eml" "$fc"
e2e_assert_same_message "$msgs/m3.eml" "$f3"
check "m3: bare CR became a space" grep -q '^bare CR inside a line$' "$f3"
check "m3: no header added" test "$(e2e_header_names "$f3" 10 | tr '\n' ' ')" = "Return-Path X-Original-To Delivered-To Received From Subject "
ok

begin "postfix: queue empty; a recipient in another domain is refused"
e2e_wait_queue_empty "$pf" 10
check "relay to example.com refused" fails e2e_send "$msgs/m1.eml" x@example.com
check "at RCPT, with 550 5.7.1" grep -q '<x@example.com>: Recipient address rejected: trackless e2e' "$pf/maillog"
e2e_queue_empty "$pf"
ok

begin "postfix: 40 messages with e2e_send_many -j 4"
copies=()
for _ in $(seq 1 40); do copies+=("$msgs/m1.eml"); done
t=$(e2e_now)
e2e_send_many -j 4 -t dave@example.net "${copies[@]}"
e2e_wait_delivered "$pf" dave 40 60
secs=$(e2e_elapsed "$t")
printf '  40 messages sent and delivered in %ss (%s msg/s)\n' "$secs" "$(awk -v s="$secs" 'BEGIN { printf "%.1f", 40 / s }')"
e2e_wait_queue_empty "$pf" 10
ok

begin "postfix: stop"
e2e_postfix_stop "$pf"
check "master gone" fails e2e_postfix_master_pid "$pf"
check "port closed" fails e2e_port_open "$E2E_SMTP_PORT"
ok

# ---------------------------------------------------------------------------
begin "dovecot: private LMTP server on a unix socket and a free 127.0.0.1 port"
dc=$(e2e_tmpdir selftest-dovecot)
e2e_dovecot_start "$dc"
check "E2E_LMTP_PORT is set" test -n "$E2E_LMTP_PORT"
check "socket" test -S "$E2E_LMTP_SOCKET"
ok

begin "dovecot: LMTP over TCP (1 recipient) and the unix socket (2 recipients)"
e2e_lmtp_send "$msgs/m2.eml" erin@example.net
E2E_LMTP_VIA=socket e2e_lmtp_send "$msgs/m2.eml" frank@example.net grace@example.net
E2E_LMTP_VIA=socket e2e_lmtp_send "$msgs/m3.eml" erin@example.net
e2e_dovecot_wait_delivered "$dc" erin 2 20
e2e_dovecot_wait_delivered "$dc" frank 1 20
e2e_dovecot_wait_delivered "$dc" grace 1 20
fe=$(e2e_find_message "$dc/dovecot-mail/erin/Maildir" '<m2.selftest@example.org>')
fe3=$(e2e_find_message "$dc/dovecot-mail/erin/Maildir" 'selftest m3' Subject)
ff=$(e2e_dovecot_delivered_files "$dc" frank)
fg=$(e2e_dovecot_delivered_files "$dc" grace)
check "header order (1 rcpt)" test "$(e2e_header_names "$fe" 4 | tr '\n' ' ')" = "Return-Path Delivered-To Received From "
check "header order (2 rcpts)" test "$(e2e_header_names "$ff" 3 | tr '\n' ' ')" = "Return-Path Received From "
e2e_assert_same_message "$msgs/m2.eml" "$fe" 0 dovecot
e2e_assert_same_message "$msgs/m2.eml" "$ff" 0 dovecot
e2e_assert_same_message "$msgs/m2.eml" "$fg" 0 dovecot
e2e_assert_same_message "$msgs/m3.eml" "$fe3" 0 dovecot
check "dovecot keeps a bare CR" grep -q $'^bare\rCR inside a line$' "$fe3"
ok

begin "postfix -> dovecot: virtual_transport = lmtp:unix:... via EXTRA_MAIN_CF_FILE"
printf 'virtual_transport = lmtp:unix:%s\n' "$E2E_LMTP_SOCKET" >"$dc/main.extra"
e2e_postfix_start "$dc" "$dc/main.extra"
e2e_send "$msgs/m2.eml" heidi@example.net
e2e_dovecot_wait_delivered "$dc" heidi 1 20
fh=$(e2e_dovecot_delivered_files "$dc" heidi)
check "header order" test "$(e2e_header_names "$fh" 5 | tr '\n' ' ')" = "Return-Path Delivered-To Received Received From "
e2e_assert_same_message "$msgs/m2.eml" "$fh" 1 dovecot
check "base virtual_transport commented out" grep -q '^#overridden# virtual_transport' "$dc/etc/main.cf"
check "no 'overriding earlier entry' warning" fails grep -q "overriding earlier entry" "$dc/maillog"
e2e_postfix_stop "$dc"
ok

begin "dovecot: stop"
e2e_dovecot_stop "$dc"
check "master gone" fails e2e_dovecot_master_pid "$dc"
check "LMTP port closed" fails e2e_port_open "$E2E_LMTP_PORT"
ok

# ---------------------------------------------------------------------------
begin "milter settings via EXTRA_MAIN_CF_FILE: dead milter + milter_default_action"
ml=$(e2e_tmpdir selftest-milter)
dead=$(e2e_free_port)
cat >"$ml/main.extra" <<EOF
smtpd_milters = inet:127.0.0.1:$dead
non_smtpd_milters = \$smtpd_milters
milter_default_action = accept
EOF
e2e_postfix_start "$ml" "$ml/main.extra"
check "postconf sees smtpd_milters" test "$(e2e_postconf "$ml" -h smtpd_milters)" = "inet:127.0.0.1:$dead"
e2e_send "$msgs/m1.eml" ivan@example.net
e2e_wait_delivered "$ml" ivan 1 20
check "smtpd tried the milter" grep -q "connect to Milter service inet:127.0.0.1:$dead: Connection refused" "$ml/maillog"
e2e_assert_same_message "$msgs/m1.eml" "$(e2e_delivered_files "$ml" ivan)"
# Same instance, milter_default_action = tempfail: the message is refused now.
e2e_postconf "$ml" -e milter_default_action=tempfail
e2e_postfix_reload "$ml"
check "tempfail refuses the message" fails e2e_send "$msgs/m1.eml" ivan@example.net
# The maillog line is written asynchronously: give it a few seconds to appear.
in_maillog() {
  local i
  for ((i = 0; i < 50; i++)); do
    grep -q "$1" "$2" && return 0
    sleep 0.1
  done
  return 1
}
check "with a 4xx reply" in_maillog 'milter-reject: .* 451 4.7.1 Service unavailable' "$ml/maillog"
e2e_postfix_stop "$ml"
ok

# ---------------------------------------------------------------------------
begin "content_filter via EXTRA_*_CF_FILE: after-queue loop through a re-injection smtpd"
cf=$(e2e_tmpdir selftest-filter)
reinject=$(e2e_free_port)
e2e_content_filter_config "$cf/main.extra" "$cf/master.extra" "[127.0.0.1]:$reinject" "$reinject" smtp
e2e_postfix_start "$cf" "$cf/main.extra" "$cf/master.extra"
e2e_send "$msgs/m2.eml" judy@example.net
e2e_wait_delivered "$cf" judy 1 20
fj=$(e2e_delivered_files "$cf" judy)
check "went through the filter transport" grep -q "relay=127.0.0.1\[127.0.0.1\]:$reinject" "$cf/maillog"
check "header order" test "$(e2e_header_names "$fj" 6 | tr '\n' ' ')" = "Return-Path X-Original-To Delivered-To Received Received From "
e2e_assert_same_message "$msgs/m2.eml" "$fj" 2
check "long lines were not folded" fails grep -q "breaking line" "$cf/maillog"
e2e_wait_queue_empty "$cf" 10
e2e_postfix_stop "$cf"
ok

# ---------------------------------------------------------------------------
trap - ERR
echo "timings:"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %6.2fs  total\n' "$(e2e_elapsed "$T_ALL")"
printf 'selftest: %d passed, 0 failed\n' "$PASSED"
