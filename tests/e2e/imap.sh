#!/usr/bin/env bash
# `trackless imap` against a real Dovecot IMAP server from Debian's packages: a throwaway
# instance on loopback with its own configuration directory, TLS from a throwaway CA
# (verified by the client), two users, then the tests in tests/imap_dovecot.rs, which are
# #[ignore]d in a plain `cargo test` because they need the server:
#   alice  implicit TLS, every extension (UIDPLUS, MOVE, IDLE);
#   bob    STARTTLS, a server that advertises neither UIDPLUS nor MOVE;
#   carol  `imap watch`: mail delivered while it waits in IDLE;
#   dave   500 messages, the client killed 20 times and the server restarted once;
#   erin   a quota that leaves no room for a clean copy (the test adds erin to the passwd file);
#   gina   200 messages in two folders, synced two folders at once (--jobs 2);
#   frank, hana  the benchmark (benches/imap_sync.sh), skipped here.
#
#   bash tests/e2e/imap.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

if ! [[ -x /usr/lib/dovecot/imap ]] || ! command -v dovecot >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends dovecot-imapd >/tmp/trackless-imap-apt.log 2>&1 ||
    { tail -n 30 /tmp/trackless-imap-apt.log; exit 1; }
fi

dir=$(mktemp -d /tmp/trackless-imap.XXXXXX)
chmod 0755 "$dir"
mkdir -p "$dir/run" "$dir/state" "$dir/mail"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
imap_port=$(free_port)
imaps_port=$(free_port)

# TLS: a throwaway CA and a certificate for 127.0.0.1 and localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=trackless test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" \
  -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
chmod 0644 "$dir/ca.pem"

printf 'alice-secret\n' >"$dir/alice.pw"
printf 'bob-secret\n' >"$dir/bob.pw"
printf 'carol-secret\n' >"$dir/carol.pw"
printf 'dave-secret\n' >"$dir/dave.pw"
printf 'erin-secret\n' >"$dir/erin.pw"
printf 'frank-secret\n' >"$dir/frank.pw"
printf 'gina-secret\n' >"$dir/gina.pw"
printf 'hana-secret\n' >"$dir/hana.pw"
# passwd-file: user:password:uid:gid:gecos:home:shell:extra fields. bob's imap process
# advertises no UIDPLUS and no MOVE (the client must fall back; Dovecot would still run them).
cat >"$dir/passwd" <<EOF
alice:{PLAIN}alice-secret::::::
carol:{PLAIN}carol-secret::::::
dave:{PLAIN}dave-secret::::::
frank:{PLAIN}frank-secret::::::
gina:{PLAIN}gina-secret::::::
hana:{PLAIN}hana-secret::::::
bob:{PLAIN}bob-secret::::::userdb_imap_capability=IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE
EOF

cat >"$dir/dovecot.conf" <<EOF
# Private Dovecot for trackless's IMAP tests (tests/e2e/imap.sh).
base_dir = $dir/run
state_dir = $dir/state
instance_name = trackless-imap-e2e
protocols = imap
listen = 127.0.0.1
log_path = $dir/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
ssl = yes
ssl_cert = <$dir/server.pem
ssl_key = <$dir/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
# Quota counted for everyone; only users with a quota_rule (the test adds one) have a limit.
mail_plugins = \$mail_plugins quota
plugin {
  quota = count:User quota
  quota_vsizes = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN $dir/passwd
}
userdb {
  driver = passwd-file
  args = $dir/passwd
  default_fields = uid=nobody gid=nogroup home=$dir/mail/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
    ssl = yes
  }
}
EOF

start() { dovecot -c "$dir/dovecot.conf"; }
stop() { doveadm -c "$dir/dovecot.conf" stop >/dev/null 2>&1 || true; }
cleanup() {
  stop
  sleep 0.5
  rm -rf "$dir"
}
trap cleanup EXIT
start
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$imaps_port") 2>/dev/null && break
  sleep 0.1
done

export TRACKLESS_TEST_IMAP_DIR=$dir
export TRACKLESS_TEST_IMAP_PORT=$imap_port
export TRACKLESS_TEST_IMAPS_PORT=$imaps_port
# A server restart as clients see it: the imap processes of logged-in users outlive a stopped
# master, so they go too — killed mid-command (a MOVE that copied and did not expunge is what
# the test must survive). A process killed while holding a Maildir's dotlock leaves
# dovecot-uidlist.lock behind, which the next server waits on for two minutes before calling
# it stale ("Mailbox is locked"); with every process gone the lock is certainly stale, and is
# removed as an admin restarting after a crash would.
export TRACKLESS_TEST_IMAP_RESTART="pkill -KILL -x imap; doveadm -c $dir/dovecot.conf stop; sleep 1; find $dir/mail -name dovecot-uidlist.lock -delete; dovecot -c $dir/dovecot.conf"

echo "== Dovecot $(dovecot --version | awk '{print $1}') IMAP on 127.0.0.1:$imap_port (STARTTLS) and :$imaps_port (TLS)"
# TRACKLESS_IMAP_BENCH=1 (benches/imap_sync.sh): the benchmark alone, on a release build.
if [[ "${TRACKLESS_IMAP_BENCH:-}" == 1 ]]; then
  cargo test --release --test imap_dovecot bench_ -- --ignored --nocapture --test-threads=1
  exit
fi
cargo test --test imap_dovecot -- --ignored --test-threads=1 --skip bench_ || {
  tail -n 40 "$dir/dovecot.log" >&2
  exit 1
}
# A complaint dossier from the log alice's sync filled (tests/imap_dovecot.rs).
TRACKLESS_CONFIG=/dev/null "$repo/target/debug/trackless" --log "$dir/alice-log.sqlite" \
  report dossier news.maison-dupont.example --lang en --out "$dir/dossier"
grep -q 'news\.maison-dupont\.example' "$dir/dossier/dossier.html" && grep -q 'Selligent' "$dir/dossier/dossier.html" ||
  { echo "the dossier from the IMAP sync's log lacks news.maison-dupont.example or Selligent"; exit 1; }
echo "== IMAP against Dovecot: passed (and report dossier from the sync's log)"
