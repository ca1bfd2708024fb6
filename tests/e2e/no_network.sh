#!/usr/bin/env bash
# End to end: trackless never contacts any network host.
#
# Everything below runs in a private network namespace (and a private mount namespace), made
# so that any attempt to leave is seen, never carried out:
#   - loopback works as usual; a veth interface with 192.0.2.2/24 and 2001:db8::2/64 (TEST-NET
#     and documentation addresses) carries the default routes, so a packet for any other host
#     is routed and reaches the output hook instead of failing early with "network unreachable";
#   - nftables, in the namespace's output hook, rejects and counts every packet not leaving
#     through lo (IPv6 neighbour discovery and MLD, which the kernel sends by itself, excepted);
#   - /etc/resolv.conf is replaced (bind mount) by "nameserver 192.0.2.53", so a DNS lookup is
#     such a packet too; nscd's and systemd-resolved's sockets, if any, are hidden so that no
#     lookup can be handed to a daemon outside the namespace;
#   - every trackless process runs under strace -f, which records every connect, sendto,
#     sendmsg and sendmmsg: a destination that is not AF_UNIX, AF_NETLINK, 127.0.0.0/8 or ::1,
#     or is port 53 anywhere, is an attempt to leave. (execve and accept are traced too, to
#     show that strace did follow each trackless process.)
# Steps:
#   1. self-check: curl to 192.0.2.1 and to [2001:db8::1], getent hosts example.com (a DNS
#      query), bash /dev/tcp/192.0.2.1/80 and /dev/udp/192.0.2.1/9 must each be seen by both
#      detectors, and a loopback connection by neither (the script fails if the detector is
#      blind);
#   2. trackless inspect over every corpus/*.eml, trackless filter on each of them;
#   3. trackless batch over a Maildir copy of the corpus;
#   4. the daemons handling the corpus: trackless milter behind a Postfix (milter_default_action
#      = tempfail, so nothing passes around it), trackless smtp forwarding to a Postfix smtpd
#      on loopback, trackless lmtp forwarding to Dovecot's LMTP socket;
#   5. trackless report and check-config over the log written by the steps above;
#   6. no packet counted and no forbidden destination in any trace; the self-check again.
# Run as root: bash tests/e2e/no_network.sh [path/to/trackless]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$here/lib.sh"
TRACKLESS=${1:-$repo/target/debug/trackless}
[[ -x "$TRACKLESS" ]] || { echo "build trackless first (cargo build)"; exit 1; }
TRACKLESS=$(cd "$(dirname "$TRACKLESS")" && pwd)/$(basename "$TRACKLESS")

if [[ -z "${TRACKLESS_E2E_NETNS:-}" ]]; then
  [[ $(id -u) == 0 ]] || { echo "run as root (network namespace, nftables, Postfix)"; exit 1; }
  # nftables: the packet counter; strace: the syscall trace; curl: the self-check.
  E2E_PACKAGES+=(nftables strace curl iproute2)
  e2e_install_packages
  # The same script again, in new network and mount namespaces (unshare execs: same PID).
  export TRACKLESS_E2E_NETNS=1
  exec unshare --net --mount --propagation private -- bash "$0" "$TRACKLESS"
fi

pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
fail() { echo "no_network: FAILED: $*" >&2; exit 1; }

# Never go on outside the namespace: the self-check sends packets to TEST-NET addresses.
[[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ]] ||
  fail "not in a private network namespace"

dir=$(e2e_tmpdir no-network)
mkdir -p "$dir/trace" "$dir/out"

# --- the namespace -------------------------------------------------------------------------
ip link set lo up
ip link add nn0 type veth peer name nn1 || fail "cannot create a veth pair (kernel without veth?)"
for i in nn0 nn1; do
  # No addresses or router solicitations of the kernel's own on these links.
  ip link set "$i" addrgenmode none 2>/dev/null || true
  sysctl -qw "net.ipv6.conf.$i.accept_ra=0" "net.ipv6.conf.$i.router_solicitations=0" "net.ipv6.conf.$i.accept_dad=0" || true
  ip link set "$i" up
done
ip addr add 192.0.2.2/24 dev nn0
ip -6 addr add 2001:db8::2/64 dev nn0 nodad
ip route add default via 192.0.2.1 dev nn0
ip -6 route add default via 2001:db8::1 dev nn0
nft -f - <<'EOF' || fail "cannot load the nftables rules (kernel without nf_tables?)"
table inet trackless_e2e {
  counter leaked { }
  chain output {
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } accept
    meta l4proto tcp counter name leaked reject with tcp reset
    counter name leaked reject with icmpx admin-prohibited
  }
}
EOF
# Name service daemons outside the namespace must not resolve for us.
for d in /run/nscd /var/run/nscd /run/systemd/resolve; do
  if [[ -d "$d" && ! -L "$d" ]]; then mount -t tmpfs -o mode=0755 none "$d"; fi
done
# The bind mount needs a file to cover: when resolv.conf is missing (glibc would then ask
# 127.0.0.1), or is a link into the hidden resolved directory, an empty one is created.
resolv=$(readlink -f /etc/resolv.conf)
[[ -e "$resolv" ]] || { mkdir -p "$(dirname "$resolv")"; touch "$resolv"; }
printf 'nameserver 192.0.2.53\noptions timeout:1 attempts:1\n' >"$dir/resolv.conf"
mount --bind "$dir/resolv.conf" "$resolv"
grep -q '^nameserver 192.0.2.53$' /etc/resolv.conf || fail "/etc/resolv.conf was not replaced"
ok "network namespace: lo, nn0 192.0.2.2/24 + 2001:db8::2/64 with the default routes, nftables counter, resolver 192.0.2.53"

# --- the detectors -------------------------------------------------------------------------
# Packets that tried to leave the namespace so far.
leaked() {
  nft list counter inet trackless_e2e leaked | awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'
}
STRACE=(strace -f -qq --seccomp-bpf -e trace=connect,sendto,sendmsg,sendmmsg,accept,accept4,execve -e signal=none)
# traced NAME CMD...: runs CMD under strace (trace in $dir/trace/NAME); CMD's status.
traced() {
  local name=$1
  shift
  "${STRACE[@]}" -o "$dir/trace/$name" -- "$@"
}
# attempts FILE...: prints the traced calls that try to reach something else than a unix
# socket, the kernel (netlink) or loopback, or a DNS server anywhere; fails when there are none.
attempts() {
  perl -e '
    my $found = 0;
    for my $f (@ARGV) {
      open(my $fh, "<", $f) or die "$f: $!\n";
      while (my $l = <$fh>) {
        next unless $l =~ /\b(?:connect|sendto|sendmsg|sendmmsg)\(/;
        my @why;
        while ($l =~ /sa_family=(AF_\w+)([^}]*)/g) {
          my ($fam, $rest) = ($1, $2);
          next if $fam eq "AF_UNIX" || $fam eq "AF_UNSPEC" || $fam eq "AF_NETLINK";
          my ($port) = $rest =~ /sin6?_port=htons\((\d+)\)/;
          my ($addr) = $fam eq "AF_INET" ? $rest =~ /inet_addr\("([^"]+)"\)/ : $rest =~ /inet_pton\(AF_INET6, "([^"]+)"/;
          if ($fam eq "AF_INET" || $fam eq "AF_INET6") {
            my $lo = defined $addr && ($addr =~ /^127\./ || $addr eq "::1" || $addr =~ /^::ffff:127\./i);
            push @why, "$fam " . ($addr // "?") . " port " . ($port // "?") if !$lo || ($port // 0) == 53;
          } else {
            push @why, $fam;
          }
        }
        if (@why) { print "$f: ", join(", ", @why), ": $l"; $found++ }
      }
    }
    exit($found ? 0 : 1);
  ' "$@"
}

# 1. Self-check: each deliberate attempt must be seen by both detectors, loopback by neither.
# expect_caught TRACE CMD...: runs CMD (which must fail to reach its host) traced; fails the
# script unless the packet counter went up and the trace shows the attempt.
expect_caught() {
  local name=$1 before after
  shift
  before=$(leaked)
  traced "$name" timeout 20 "$@" >"$dir/out/$name" 2>&1 || true
  after=$(leaked)
  ((after > before)) || fail "self-check: the packet counter did not see: $* (blind detector)"
  attempts "$dir/trace/$name" >/dev/null ||
    fail "self-check: the strace check did not see: $* (blind detector; trace: $dir/trace/$name)"
}
selfcheck() {
  local r=$1 port before after
  expect_caught "selfcheck$r-curl4" curl --noproxy '*' -sS --max-time 5 http://192.0.2.1/
  expect_caught "selfcheck$r-curl6" curl --noproxy '*' -sS --max-time 5 'http://[2001:db8::1]/'
  expect_caught "selfcheck$r-dns" getent hosts example.com
  expect_caught "selfcheck$r-devtcp" bash -c 'exec 3<>/dev/tcp/192.0.2.1/80'
  expect_caught "selfcheck$r-devudp" bash -c 'echo >/dev/udp/192.0.2.1/9'
  # Loopback is allowed: a listener on 127.0.0.1 and a connection to it count for nothing.
  port=$(e2e_free_port)
  before=$(leaked)
  traced "selfcheck$r-loopback" perl -MIO::Socket::INET -e '
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0], Listen => 1, ReuseAddr => 1) or die "listen: $!\n";
    IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or die "connect: $!\n";' "$port" ||
    fail "self-check: the loopback connection failed"
  after=$(leaked)
  ((after == before)) || fail "self-check: a loopback connection was counted as leaving"
  grep -q 'connect(.*127\.0\.0\.1' "$dir/trace/selfcheck$r-loopback" || fail "self-check: strace did not record the loopback connect"
  if attempts "$dir/trace/selfcheck$r-loopback" >/dev/null; then fail "self-check: a loopback connection was flagged"; fi
}
selfcheck 1
ok "self-check: curl (IPv4, IPv6), getent hosts example.com, /dev/tcp and /dev/udp attempts each caught by the packet counter and by strace; loopback by neither"

base=$(leaked)
export HOME="$dir/home"
mkdir -p "$HOME"
corpus=("$repo"/corpus/*.eml)
ncorpus=${#corpus[@]}
T=("$TRACKLESS" --log "$dir/log.sqlite")

# 2. inspect and filter over the whole corpus.
traced inspect "${T[@]}" inspect "${corpus[@]}" >"$dir/out/inspect.txt" 2>"$dir/out/inspect.err" ||
  fail "trackless inspect failed: $(tail -3 "$dir/out/inspect.err")"
[[ -s "$dir/out/inspect.txt" ]] || fail "trackless inspect printed nothing"
mkdir -p "$dir/out/filter"
traced filter bash -c '
  out=$1 n=$2
  shift 2
  files=("${@:1:n}") cmd=("${@:n+1}")
  for f in "${files[@]}"; do
    "${cmd[@]}" filter <"$f" >"$out/${f##*/}" 2>>"$out/errors" || { echo "trackless filter failed on $f"; exit 1; }
  done' _ "$dir/out/filter" "$ncorpus" "${corpus[@]}" "${T[@]}" || fail "trackless filter failed"
rewritten=0
for f in "${corpus[@]}"; do
  [[ -s "$dir/out/filter/${f##*/}" ]] || fail "no output of trackless filter for $f"
  cmp -s "$f" "$dir/out/filter/${f##*/}" || rewritten=$((rewritten + 1))
done
((rewritten > ncorpus / 2)) || fail "trackless filter rewrote only $rewritten of $ncorpus corpus messages"
# strace followed them: one execve of trackless for inspect, one per message for filter.
execs() { grep -c "execve(\"$TRACKLESS\"" "$dir/trace/$1" || true; }
(($(execs inspect) == 1 && $(execs filter) == ncorpus)) ||
  fail "the traces show $(execs inspect) execve of trackless for inspect and $(execs filter) for filter (expected 1 and $ncorpus)"
ok "trackless inspect over the corpus, trackless filter on each of its $ncorpus messages ($rewritten rewritten)"

# 3. batch over a Maildir copy of the corpus.
md="$dir/Maildir"
mkdir -p "$md/cur" "$md/new" "$md/tmp"
i=0
for f in "${corpus[@]}"; do
  i=$((i + 1))
  cp "$f" "$md/cur/1700000000.M${i}P1.e2e:2,S"
done
traced batch "${T[@]}" batch --backup "$dir/batch-backup" "$md" >"$dir/out/batch.txt" 2>&1 ||
  fail "trackless batch failed: $(tail -3 "$dir/out/batch.txt")"
grep -Eq "^$ncorpus seen, [1-9][0-9]* rewritten" "$dir/out/batch.txt" ||
  fail "trackless batch did not rewrite the Maildir copy: $(tail -1 "$dir/out/batch.txt")"
(($(execs batch) == 1)) || fail "the batch trace shows no execve of trackless"
ok "trackless batch over a Maildir copy of the corpus: $(grep -Eo '^[0-9]+ seen, [0-9]+ rewritten' "$dir/out/batch.txt")"

# 4. The daemons, each under strace, handling the corpus.
# traced_spawn NAME CMD...: starts CMD under strace in the background (trace in
# $dir/trace/NAME, output in $dir/NAME.log); TRACED_PID is CMD's PID (to stop it: a signal to
# strace would only make it detach), STRACE_PID strace's.
traced_spawn() {
  local name=$1 i
  shift
  rm -f "$dir/$name.pid"
  e2e_spawn "$dir/$name.log" "${STRACE[@]}" -o "$dir/trace/$name" -- \
    sh -c 'echo $$ >"$0"; exec "$@"' "$dir/$name.pid" "$@"
  STRACE_PID=$E2E_LAST_PID
  for ((i = 0; i < 200; i++)); do
    [[ -s "$dir/$name.pid" ]] && break
    sleep 0.05
  done
  TRACED_PID=$(cat "$dir/$name.pid") || fail "$name did not start"
  e2e_on_exit "e2e_kill $TRACED_PID"
}
# stop_traced: SIGTERM to the traced daemon, then waits for strace to finish its trace.
stop_traced() {
  e2e_kill "$TRACED_PID"
  wait "$STRACE_PID" 2>/dev/null || true
}
# count_tracked FILE...: how many of the messages carry X-Trackless (were rewritten).
count_tracked() {
  grep -l '^X-Trackless:' "$@" | wc -l
}
mkdir -p "$dir/run"
chmod 0755 "$dir/run"
dport=$(e2e_free_port)   # the sink: a Postfix smtpd without milters, delivering to Maildirs
cat >"$dir/main.extra" <<EOF
smtpd_milters = unix:$dir/run/milter.sock
milter_default_action = tempfail
milter_protocol = 6
EOF
cat >"$dir/master.extra" <<EOF
127.0.0.1:$dport inet n - n - - smtpd
  -o smtpd_milters=
  -o receive_override_options=no_milters
EOF

# milter: Postfix -> trackless milter -> Maildir of alice.
traced_spawn milter "${T[@]}" milter --listen "unix:$dir/run/milter.sock" --socket-mode 0666
e2e_wait_socket "$dir/run/milter.sock"
e2e_postfix_start "$dir" "$dir/main.extra" "$dir/master.extra"
e2e_wait_port "$dport"
e2e_send_many -j 4 -t alice@example.net "${corpus[@]}"
e2e_wait_delivered "$dir" alice "$ncorpus" 120
stop_traced
n=$(count_tracked $(e2e_delivered_files "$dir" alice))
((n > ncorpus / 2)) || fail "only $n of $ncorpus messages through the milter carry X-Trackless"
grep -q 'accept4\?(.*= [0-9]' "$dir/trace/milter" || fail "the milter trace shows no accepted connection: strace did not follow it"
ok "trackless milter behind Postfix: $ncorpus corpus messages delivered, $n rewritten"

# smtp: swaks -> trackless smtp -> Postfix smtpd on 127.0.0.1:$dport -> Maildir of bob.
sport=$(e2e_free_port)
traced_spawn smtp "${T[@]}" smtp --listen "inet:127.0.0.1:$sport" --forward "smtp://127.0.0.1:$dport"
e2e_wait_port "$sport"
E2E_SERVER=127.0.0.1:$sport e2e_send_many -j 4 -t bob@example.net "${corpus[@]}"
e2e_wait_delivered "$dir" bob "$ncorpus" 120
stop_traced
n=$(count_tracked $(e2e_delivered_files "$dir" bob))
((n > ncorpus / 2)) || fail "only $n of $ncorpus messages through trackless smtp carry X-Trackless"
grep -q "connect(.*htons($dport).*127\.0\.0\.1" "$dir/trace/smtp" || fail "the smtp trace shows no connection to the sink: strace did not follow it"
ok "trackless smtp forwarding to a loopback Postfix smtpd: $ncorpus corpus messages delivered, $n rewritten"

# lmtp: LMTP client -> trackless lmtp -> Dovecot's LMTP unix socket -> Maildir of carol.
e2e_dovecot_start "$dir"
lport=$(e2e_free_port)
traced_spawn lmtp "${T[@]}" lmtp --listen "inet:127.0.0.1:$lport" --forward "lmtp:unix:$E2E_LMTP_SOCKET"
e2e_wait_port "$lport"
E2E_PROTOCOL=LMTP E2E_SERVER=127.0.0.1:$lport e2e_send_many -j 4 -t carol@example.net "${corpus[@]}"
e2e_dovecot_wait_delivered "$dir" carol "$ncorpus" 120
stop_traced
n=$(count_tracked $(e2e_dovecot_delivered_files "$dir" carol))
((n > ncorpus / 2)) || fail "only $n of $ncorpus messages through trackless lmtp carry X-Trackless"
grep -q "connect(.*AF_UNIX.*$E2E_LMTP_SOCKET" "$dir/trace/lmtp" || fail "the lmtp trace shows no connection to Dovecot: strace did not follow it"
ok "trackless lmtp forwarding to Dovecot's LMTP socket: $ncorpus corpus messages delivered, $n rewritten"

# report and check-config, over the log all of the above wrote.
traced report "${T[@]}" report >"$dir/out/report.txt" 2>&1 || fail "trackless report failed: $(tail -3 "$dir/out/report.txt")"
[[ -s "$dir/out/report.txt" ]] || fail "trackless report printed nothing"
traced check-config "${T[@]}" check-config >"$dir/out/check-config.txt" 2>&1 ||
  fail "trackless check-config failed: $(tail -3 "$dir/out/check-config.txt")"
(($(execs report) == 1 && $(execs check-config) == 1)) || fail "the report/check-config traces show no execve of trackless"
ok "trackless report and check-config over the log written above"

# 6. Nothing tried to leave.
now=$(leaked)
traces=(inspect filter batch milter smtp lmtp report check-config)
if attempts "${traces[@]/#/$dir/trace/}" >"$dir/attempts.txt"; then
  head -n 20 "$dir/attempts.txt" >&2
  fail "trackless tried to reach a network host (above; all traces in $dir/trace)"
fi
((now == base)) || fail "$((now - base)) packet(s) tried to leave the namespace while trackless ran"
ok "no packet left the namespace (counter $base before, $now after) and no trackless process tried to reach anything but unix sockets and loopback ($(cat "${traces[@]/#/$dir/trace/}" | wc -l) traced calls)"

selfcheck 2
ok "self-check again at the end: every deliberate attempt still caught"

echo "no_network: $pass passed, 0 failed"
