#!/usr/bin/env bash
# End to end: a real Postfix with trackless as its milter (packaging/postfix/main.cf.milter,
# the same snippet an admin appends), delivering to a Maildir.
#   1. every corpus message arrives exactly as `trackless filter` writes it (apart from the
#      headers Postfix adds), a clean message arrives unchanged;
#   2. the milter is killed in the middle of a run of messages: everything is still delivered
#      once (milter_default_action = accept), the queue ends empty;
#   3. the tracking log has a row per filtered message.
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

# 2. Kill the milter in the middle of a run: nothing may be lost or duplicated.
total=120
mkdir -p "$dir/burst"
for ((i = 1; i <= total; i++)); do
  src=$(ls "$repo"/corpus/*.eml | sed -n "$(( (i % n) + 1 ))p")
  { printf 'X-Burst-Seq: %d\r\n' "$i"; cat "$src"; } >"$dir/burst/$i.eml"
done
(e2e_send_many -j 4 -t carol@example.net "$dir/burst"/*.eml >"$dir/burst.log" 2>&1; echo $? >"$dir/burst.rc") &
sender=$!
sleep 2
kill -KILL "$MILTER_PID"
ok "milter killed (SIGKILL) while messages were being sent"
sleep 1
start_milter
wait "$sender" || true
[[ "$(cat "$dir/burst.rc")" == 0 ]] || { echo "some sends were refused:"; tail -20 "$dir/burst.log"; exit 1; }
e2e_wait_delivered "$dir" carol "$total" 120
e2e_wait_queue_empty "$dir" 60
seqs=$(for f in $(e2e_delivered_files "$dir" carol); do perl -ne 'if (/^X-Burst-Seq:\s*(\d+)/) { print "$1\n"; exit }' "$f"; done | sort -n | uniq)
[[ "$(echo "$seqs" | wc -l)" == "$total" ]] || { echo "lost or duplicated: $(echo "$seqs" | wc -l) distinct of $total"; exit 1; }
filtered=$(grep -l '^X-Trackless:' $(e2e_delivered_files "$dir" carol) | wc -l)
ok "all $total messages delivered exactly once across the crash ($filtered filtered), queue empty"

# 3. SIGTERM: the milter stops cleanly and removes its socket.
e2e_kill "$MILTER_PID"
[[ ! -e "$sockdir/milter.sock" ]] || { echo "socket left behind"; exit 1; }
ok "SIGTERM: milter stopped and removed its socket"

echo "postfix_milter: $pass passed, 0 failed"
