#!/usr/bin/env bash
# The PostgreSQL tracking log against a real PostgreSQL server from Debian's packages: a
# throwaway cluster on loopback (password authentication, its own port), then the tests in
# tests/log_postgres.rs, which are #[ignore]d in a plain `cargo test` because they need it:
# round trip and report parity with SQLite, concurrent schema creation, the CLI report, and a
# milter that keeps delivering while the server is stopped and writes the queued records when
# it is back.
#
#   bash tests/e2e/postgres.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends postgresql >/tmp/trackless-pg-apt.log 2>&1 ||
    { tail -n 30 /tmp/trackless-pg-apt.log; exit 1; }
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")

# PostgreSQL refuses to run as root: use its own system user when we are root.
dir=$(mktemp -d /tmp/trackless-pg.XXXXXX)
chmod 0755 "$dir"
if [[ $(id -u) == 0 ]]; then
  chown postgres: "$dir"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password="t-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$password" >"$dir/pw"
chmod 0644 "$dir/pw"

as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --no-sync -E UTF8 >"$dir/initdb.log"

# TLS: a throwaway CA and a server certificate for 127.0.0.1 (the tests connect with
# sslmode=require&sslrootcert=ca.pem, and check that the system CAs and another host name are
# refused).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=trackless test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" \
  -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
chmod 0644 "$dir/ca.pem"
chmod 0600 "$dir/server.key"
[[ $(id -u) == 0 ]] && chown postgres: "$dir/server.key" "$dir/server.pem"

ctl() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=$dir/server.pem -c ssl_key_file=$dir/server.key" "$@"
}
cleanup() {
  ctl stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
ctl start >/dev/null

as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q -c \
  "CREATE ROLE trackless LOGIN CREATEDB PASSWORD '$password'" -c \
  "CREATE DATABASE trackless OWNER trackless"

export TRACKLESS_TEST_PG_URL="postgres://trackless:$password@127.0.0.1:$port/trackless"
export TRACKLESS_TEST_PG_CA="$dir/ca.pem"
export TRACKLESS_TEST_PG_STOP="$(declare -f as_pg ctl); ctl stop -m fast"
export TRACKLESS_TEST_PG_START="$(declare -f as_pg ctl); ctl start"
export dir bin port

echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
cargo test --test log_postgres -- --ignored --test-threads=1
echo "== PostgreSQL tracking log: passed"
