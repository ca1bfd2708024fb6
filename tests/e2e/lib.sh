# shellcheck shell=bash
# tests/e2e/lib.sh — end-to-end test helpers for trackless.
#
# Source this file from a bash test script:
#
#     set -euo pipefail
#     source "$(dirname "$0")/lib.sh"      # installs the EXIT/INT/TERM cleanup trap
#     e2e_install_packages
#     dir=$(e2e_tmpdir milter)
#     e2e_postfix_start "$dir"
#     e2e_send message.eml alice@example.net
#     e2e_wait_delivered "$dir" alice 1
#
# It runs real, private Postfix and Dovecot instances bound to 127.0.0.1 (and
# unix sockets) only.  Nothing here reads or changes the system's own Postfix or
# Dovecot configuration, except that an empty /etc/postfix/main.cf is created
# when it is missing (Debian's postfix package with "No configuration" leaves
# none, and postconf/postqueue/sendmail without -c die without it).
#
# Every daemon started is recorded twice: in this shell (stopped by
# e2e_cleanup_on_exit, which the EXIT trap runs) and in a registry under
# $E2E_STATE_DIR, so that a later run can stop daemons left behind by a run that
# was killed with SIGKILL (see e2e_reap_stale).
#
# All functions return non-zero on failure and print a diagnostic on stderr, so
# they work under `set -euo pipefail`.  Variables they export: E2E_SMTP_PORT,
# E2E_POSTFIX_DIR (e2e_postfix_start), E2E_LMTP_PORT, E2E_LMTP_SOCKET
# (e2e_dovecot_start).  See tests/e2e/README.md.

# Guard against being sourced twice (the traps and arrays would be reset).
if [[ -n "${E2E_LIB_LOADED:-}" ]]; then
  return 0
fi
E2E_LIB_LOADED=1

# --- settings (override in the environment before sourcing) ------------------

# Base of the directories e2e_tmpdir makes; must be traversable by the
# postfix and nobody users (so not under a 0700 mktemp directory).
# The tests give trackless every setting as flags: an installed /etc/trackless/trackless.toml
# (the .deb's) must not change what they check.
export TRACKLESS_CONFIG=/dev/null
: "${E2E_TMP:=/tmp/trackless-e2e}"
# Registry of running daemons, used to reap those of killed runs.
: "${E2E_STATE_DIR:=/tmp/trackless-e2e-state}"
# The mail domain the Postfix instance delivers into Maildirs.
: "${E2E_DOMAIN:=example.net}"
# Envelope sender e2e_send uses.
: "${E2E_FROM:=sender@example.org}"
# Default envelope recipient of e2e_send / e2e_send_many.
: "${E2E_RCPT:=user@${E2E_DOMAIN}}"
# uid/gid owning delivered mail (Postfix pipe(8) and Dovecot refuse uid 0).
: "${E2E_MAIL_UID:=$(id -u nobody)}"
: "${E2E_MAIL_GID:=$(id -g nobody)}"
# Default timeout (seconds) of the e2e_wait_* functions.
: "${E2E_TIMEOUT:=30}"

# The directory of this file (for tests that keep fixtures beside it).
# shellcheck disable=SC2034
E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Daemons started by this shell: "postfix DIR", "dovecot DIR", "pid PID NAME".
E2E_STARTED=()
# Extra cleanup commands registered with e2e_on_exit (run first, last-in first).
E2E_EXIT_CMDS=()
# Ports handed out by e2e_free_port in this test run, one a line (a file, as
# e2e_free_port usually runs in a $(...) subshell; $$ is the same there).
E2E_PORTS_FILE="$E2E_STATE_DIR/ports.$$"
# Scratch files of this run (wire data, transcripts); removed on exit, or by
# e2e_reap_stale in a later run if this one is SIGKILLed.
E2E_RUN_TMP="$E2E_STATE_DIR/run.$$"

# --- small helpers -------------------------------------------------------------

# e2e_log MSG...: prints a progress line on stderr, prefixed with the time
# since the library was loaded.
e2e_log() {
  printf '[e2e %6ss] %s\n' "$(e2e_elapsed "$E2E_T0")" "$*" >&2
}

# e2e_die MSG...: prints MSG on stderr and returns 1 (use as `e2e_die ... ; return 1`
# or `|| e2e_die ...`; under set -e the caller stops).
e2e_die() {
  printf 'e2e: ERROR: %s\n' "$*" >&2
  return 1
}

# e2e_now: prints the current time in seconds with milliseconds (for timings).
e2e_now() {
  date +%s.%3N
}
E2E_T0=$(e2e_now)

# e2e_elapsed START: prints the seconds elapsed since START (from e2e_now), 2 decimals.
e2e_elapsed() {
  awk -v a="$1" -v b="$(e2e_now)" 'BEGIN { printf "%.2f", b - a }'
}

# e2e_mktemp: creates and prints a new scratch file in $E2E_RUN_TMP.
e2e_mktemp() {
  mkdir -p "$E2E_RUN_TMP"
  mktemp "$E2E_RUN_TMP/tmp.XXXXXX"
}

# e2e_tmpdir NAME: creates (afresh) and prints a directory $E2E_TMP/NAME for one
# instance.  Its mode is 0755 and $E2E_TMP is 0755 too: Postfix's unprivileged
# daemons (user postfix) and delivery agents (user nobody) must be able to
# traverse it, which a `mktemp -d` directory (0700) does not allow.
e2e_tmpdir() {
  local name=${1:?usage: e2e_tmpdir NAME}
  local d="${E2E_TMP:?}/$name"
  if [[ "$name" == */* || "$name" == . || "$name" == .. || "$E2E_TMP" != /?* ]]; then
    e2e_die "e2e_tmpdir: NAME must be a plain name and E2E_TMP an absolute path"
    return 1
  fi
  mkdir -p "$E2E_TMP"
  chmod 0755 "$E2E_TMP"
  # A previous (killed) run may still have daemons in there.
  e2e_reap_stale
  e2e_postfix_stop "$d" 2>/dev/null || true
  e2e_dovecot_stop "$d" 2>/dev/null || true
  rm -rf "$d"
  mkdir -p "$d"
  chmod 0755 "$d"
  printf '%s\n' "$d"
}

# e2e_check_traversable DIR: fails unless every ancestor of DIR can be searched
# by other users (mode o+x), which the postfix and nobody users need.
e2e_check_traversable() {
  local p
  p=$(cd "$1" && pwd)
  while [[ "$p" != / && -n "$p" ]]; do
    if [[ $(stat -c %A "$p") != ?????????[xt] ]]; then
      e2e_die "$p is not searchable by other users (mode $(stat -c %a "$p")); Postfix's unprivileged daemons cannot reach $1. Use e2e_tmpdir or chmod o+x."
      return 1
    fi
    p=$(dirname "$p")
  done
}

# e2e_free_port: prints a TCP port on 127.0.0.1 that nothing listens on, chosen
# at random in 20000-32767 (below Linux's ephemeral range, so outgoing
# connections do not grab it meanwhile) and never one already handed out in
# this test run (so two ports taken before either is bound differ).  There is
# an unavoidable race between this check and the daemon's bind;
# e2e_postfix_start and e2e_dovecot_start retry with another port when they
# lose it.
e2e_free_port() {
  local port i
  mkdir -p "$E2E_STATE_DIR"
  touch "$E2E_PORTS_FILE"
  for ((i = 0; i < 100; i++)); do
    port=$(perl -MIO::Socket::INET -e '
      for (1 .. 200) {
        my $p = 20000 + int(rand(12768));
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $p,
                                      Proto => "tcp", Listen => 1, ReuseAddr => 1) or next;
        close $s; print $p; exit 0;
      }
      exit 1;') || continue
    if ! grep -qx "$port" "$E2E_PORTS_FILE"; then
      printf '%s\n' "$port" >>"$E2E_PORTS_FILE"
      printf '%s\n' "$port"
      return 0
    fi
  done
  e2e_die "no free port found"
}

# e2e_port_open PORT [HOST]: succeeds when something accepts TCP connections on
# HOST:PORT (default 127.0.0.1).
e2e_port_open() {
  local port=$1 host=${2:-127.0.0.1}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# e2e_wait_port PORT [TIMEOUT]: waits until 127.0.0.1:PORT accepts connections.
e2e_wait_port() {
  local port=$1 timeout=${2:-$E2E_TIMEOUT} deadline
  deadline=$((SECONDS + timeout))
  until e2e_port_open "$port"; do
    if ((SECONDS >= deadline)); then
      e2e_die "nothing listens on 127.0.0.1:$port after ${timeout}s"
      return 1
    fi
    sleep 0.05
  done
}

# e2e_socket_open PATH: succeeds when something accepts stream connections on
# the unix socket PATH.  A socket file alone proves nothing: a daemon killed
# with SIGKILL leaves its socket behind, and connecting to it is refused.
e2e_socket_open() {
  [[ -S "$1" ]] && perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1' "$1" 2>/dev/null
}

# e2e_wait_socket PATH [TIMEOUT]: waits until something accepts connections on
# the unix socket PATH (e2e_socket_open; the probe connection is closed at once).
e2e_wait_socket() {
  local path=$1 timeout=${2:-$E2E_TIMEOUT} deadline
  deadline=$((SECONDS + timeout))
  until e2e_socket_open "$path"; do
    if ((SECONDS >= deadline)); then
      if [[ -S "$path" ]]; then
        e2e_die "nothing accepts connections on the unix socket $path after ${timeout}s"
      else
        e2e_die "no unix socket at $path after ${timeout}s"
      fi
      return 1
    fi
    sleep 0.05
  done
}

# --- packages ------------------------------------------------------------------

# Debian packages the e2e tests need:
#   postfix         the MTA (postfix, postconf, postqueue, postlogd, smtp-source/sink)
#   swaks           SMTP/LMTP client used to send test messages
#   dovecot-core    Dovecot (master, auth, doveadm)
#   dovecot-lmtpd   Dovecot's LMTP server
#   miltertest      milter protocol test driver (in Debian 12 it is its own package,
#                   built from the opendkim source; opendkim-tools no longer ships it)
#   perl            swaks, e2e_free_port and the message helpers (already present)
#   procps          pgrep/ps for diagnostics
E2E_PACKAGES=(postfix swaks dovecot-core dovecot-lmtpd miltertest perl procps)

# e2e_install_packages: installs E2E_PACKAGES with apt-get, non-interactively,
# and returns at once (no apt-get at all) when they are all installed already.
# Postfix is preseeded with "No configuration" so the package writes no
# /etc/postfix/main.cf and starts nothing; package scripts are prevented from
# starting the system's Dovecot/Postfix through policy-rc.d (an existing
# /usr/sbin/policy-rc.d is left alone, a temporary one is removed afterwards).
e2e_install_packages() {
  local missing=() p
  for p in "${E2E_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]})); then
    e2e_log "installing: ${missing[*]}"
    if [[ $(id -u) != 0 ]]; then
      e2e_die "must be root to install ${missing[*]}"
      return 1
    fi
    local own_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      own_policy=1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    local rc=0
    {
      DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
          "${missing[@]}" >/tmp/trackless-e2e-apt.log 2>&1
    } || rc=$?
    [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
    if ((rc)); then
      tail -n 30 /tmp/trackless-e2e-apt.log >&2 || true
      e2e_die "apt-get install ${missing[*]} failed (log: /tmp/trackless-e2e-apt.log)"
      return 1
    fi
  fi
  # postconf, postqueue and sendmail without -c read /etc/postfix/main.cf and
  # die when it is missing ("No configuration" installs none).
  if [[ ! -e /etc/postfix/main.cf && $(id -u) == 0 ]]; then
    touch /etc/postfix/main.cf
  fi
}

# --- daemon registry and cleanup ----------------------------------------------

# e2e_proc_id PID: prints "PID:STARTTIME" (start time from /proc/PID/stat), an
# identity that survives PID reuse; prints nothing if PID is not running (a
# zombie counts as not running: a killed test shell may stay one for a while).
e2e_proc_id() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ "${stat%% *}" != [ZX] ]] || return 0
  # field 22 of stat is field 20 after "pid (comm) "
  printf '%s:%s\n' "$1" "$(awk '{ print $20 }' <<<"$stat")"
}

# e2e_register KIND DIR: records that this shell started a daemon of KIND
# (postfix|dovecot) in DIR, both in E2E_STARTED and in the on-disk registry.
e2e_register() {
  E2E_STARTED+=("$1 $2")
  e2e_register_on_disk "$1" "$2"
}

# e2e_register_on_disk KIND WHAT: writes the registry entry of KIND (postfix,
# dovecot: WHAT is the instance directory; pid: WHAT is PID:STARTTIME) with
# the identity of the test shell that owns it.
e2e_register_on_disk() {
  local kind=$1 what=$2 key
  [[ -n "$what" ]] || return 0
  mkdir -p "$E2E_STATE_DIR"
  key=$(printf '%s %s' "$kind" "$what" | md5sum | cut -c1-16)
  printf '%s\n%s\n%s\n' "$kind" "$what" "$(e2e_proc_id $$)" >"$E2E_STATE_DIR/$key"
}

# e2e_unregister KIND DIR: removes the registry entry of KIND in DIR.
e2e_unregister() {
  local key
  key=$(printf '%s %s' "$1" "$2" | md5sum | cut -c1-16)
  rm -f "$E2E_STATE_DIR/$key"
}

# e2e_reap_stale: stops the daemons recorded in $E2E_STATE_DIR whose owning
# shell is gone (a run killed by SIGKILL, or whose traps did not run).
e2e_reap_stale() {
  local f kind dir owner
  [[ -d "$E2E_STATE_DIR" ]] || return 0
  for f in "$E2E_STATE_DIR"/ports.* "$E2E_STATE_DIR"/run.*; do
    [[ -e "$f" ]] || continue
    # scratch files of test shells that are gone
    [[ -e "/proc/${f##*.}" ]] || rm -rf "$f"
  done
  for f in "$E2E_STATE_DIR"/*; do
    [[ -f "$f" && "$f" != */ports.* ]] || continue
    { read -r kind; read -r dir; read -r owner; } <"$f" || true
    if [[ -n "$owner" && "$(e2e_proc_id "${owner%%:*}")" == "$owner" ]]; then
      continue # its shell still runs
    fi
    [[ "$kind" == pid ]] || e2e_log "reaping $kind left running in $dir by a previous run"
    case "$kind" in
      postfix) e2e_postfix_stop "$dir" || true ;;
      dovecot) e2e_dovecot_stop "$dir" || true ;;
      pid) [[ "$(e2e_proc_id "${dir%%:*}")" == "$dir" ]] && e2e_kill "${dir%%:*}" ;;
    esac
    rm -f "$f"
  done
}

# e2e_on_exit CMD...: registers a command (e.g. stopping a trackless daemon) for
# e2e_cleanup_on_exit to run before it stops Postfix/Dovecot.
e2e_on_exit() {
  E2E_EXIT_CMDS+=("$*")
}

# e2e_spawn LOGFILE CMD [ARGS...]: starts CMD in the background with stdout and
# stderr in LOGFILE, sets E2E_LAST_PID to its PID, and registers it to be
# killed (SIGTERM, then SIGKILL after 5s) by e2e_cleanup_on_exit (and by
# e2e_reap_stale in a later run if this one is SIGKILLed).  Meant for the
# trackless daemon a test puts in front of or behind Postfix.  Do not call
# it in $(...) (that would run it in a subshell); read E2E_LAST_PID instead:
#     e2e_spawn "$dir/trackless.log" trackless milter --listen ...
#     pid=$E2E_LAST_PID
e2e_spawn() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 </dev/null &
  E2E_LAST_PID=$!
  E2E_STARTED+=("pid $E2E_LAST_PID $1")
  e2e_register_on_disk pid "$(e2e_proc_id "$E2E_LAST_PID")"
}

# e2e_kill PID: stops a process started with e2e_spawn (SIGTERM, SIGKILL after 5s).
e2e_kill() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    e2e_alive "$pid" || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# e2e_cleanup_on_exit: runs the e2e_on_exit commands, kills e2e_spawn'ed
# processes and stops every Postfix and Dovecot instance this shell started
# (newest first).  Idempotent; never fails.  Sourcing lib.sh installs it as
# the EXIT trap (and INT/TERM/HUP exit through it); a test that sets its own
# EXIT trap must call it from there.
e2e_cleanup_on_exit() {
  local - # set +e below stays local to this function
  local i entry kind a b
  set +e
  for ((i = ${#E2E_EXIT_CMDS[@]} - 1; i >= 0; i--)); do
    eval "${E2E_EXIT_CMDS[i]}" || true
  done
  E2E_EXIT_CMDS=()
  for ((i = ${#E2E_STARTED[@]} - 1; i >= 0; i--)); do
    entry=${E2E_STARTED[i]}
    kind=${entry%% *}
    a=${entry#* }
    case "$kind" in
      postfix) e2e_postfix_stop "$a" ;;
      dovecot) e2e_dovecot_stop "$a" ;;
      pid)
        b=${a%% *}
        e2e_unregister pid "$(e2e_proc_id "$b")"
        e2e_kill "$b"
        ;;
    esac
  done
  E2E_STARTED=()
  rm -rf "$E2E_PORTS_FILE" "$E2E_RUN_TMP"
  return 0
}

# e2e__on_signal SIG: trap handler for INT/TERM/HUP: exits 128+signal; the EXIT
# trap then cleans up.
e2e__on_signal() {
  trap - "$1"
  exit $((128 + $(kill -l "$1")))
}

trap e2e_cleanup_on_exit EXIT
trap 'e2e__on_signal INT' INT
trap 'e2e__on_signal TERM' TERM
trap 'e2e__on_signal HUP' HUP

# --- Postfix -------------------------------------------------------------------

# e2e_postfix_master_pid DIR: prints the PID of the Postfix master running for
# the instance in DIR; fails when none runs.
e2e_postfix_master_pid() {
  local pidfile="$1/spool/pid/master.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(tr -dc 0-9 <"$pidfile")
  [[ -n "$pid" ]] && e2e_alive "$pid" || return 1
  # make sure it is a Postfix master and not a reused PID
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == master ]] || return 1
  printf '%s\n' "$pid"
}

# e2e_write_maildir_deliverer FILE: writes the perl program the e2emaildir
# pipe(8) transport runs as `deliver-maildir BASE RECIPIENT`: it stores its
# standard input, byte for byte, as one new message in
# BASE/<localpart>/Maildir/new/ (through tmp/ and rename, as Maildir wants).
# Exit codes follow sysexits: 67 (bounce) for an unsafe local part, 75 (retry
# later) for I/O errors.
e2e_write_maildir_deliverer() {
  cat >"$1" <<'EOF'
use strict;
use warnings;
use Sys::Hostname ();
use Time::HiRes ();
my ($base, $rcpt) = @ARGV;
my ($lp) = lc($rcpt // '') =~ /^([a-z0-9_+=-][a-z0-9._+=-]*)\@/;
if (!defined $lp) { print STDERR "5.1.1 unsupported local part in <$rcpt>\n"; exit 67 }
my $md = "$base/$lp/Maildir";
for my $d ("$base/$lp", $md, "$md/tmp", "$md/new", "$md/cur") {
  mkdir($d, 0755) or -d $d or do { print STDERR "4.2.0 mkdir $d: $!\n"; exit 75 };
}
my ($s, $us) = Time::HiRes::gettimeofday();
(my $host = Sys::Hostname::hostname()) =~ s{[/:]}{_}g;
my $name = sprintf('%d.M%06dP%d.%s', $s, $us, $$, $host);
binmode STDIN;
open(my $fh, '>:raw', "$md/tmp/$name") or do { print STDERR "4.2.0 $md/tmp/$name: $!\n"; exit 75 };
my $buf;
while (my $n = read(STDIN, $buf, 65536)) { print {$fh} $buf or exit 75 }
close($fh) or exit 75;
rename("$md/tmp/$name", "$md/new/$name") or do { print STDERR "4.2.0 rename: $!\n"; exit 75 };
exit 0;
EOF
}

# e2e_postfix_write_config DIR PORT: writes DIR/etc/{main.cf,master.cf,deliver-maildir}
# for a private instance whose smtpd listens on 127.0.0.1:PORT.
e2e_postfix_write_config() {
  local dir=$1 port=$2
  cat >"$dir/etc/main.cf" <<EOF
# Private Postfix instance for trackless end-to-end tests (tests/e2e/lib.sh).
# Started with: postfix -c $dir/etc start
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop

# Identity; no DNS: myhostname is set so Postfix never asks the resolver.
myhostname = mx.e2e.test
mydomain = e2e.test
myorigin = \$myhostname
mydestination = localhost
smtpd_banner = \$myhostname ESMTP trackless-e2e

# Network: loopback, IPv4 only; the smtpd port is in master.cf.
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination

# Nothing ever leaves this machine: mail that is neither for $E2E_DOMAIN nor
# handed to an explicit transport (content_filter, virtual_transport, ...)
# fails at once instead of being relayed; local(8) delivery is off too.
default_transport = error:5.7.1 trackless e2e: no delivery outside this machine
relay_transport = error:5.7.1 trackless e2e: no delivery outside this machine
local_transport = error:5.7.1 trackless e2e: local delivery disabled
alias_maps =
alias_database =

# Every local part of $E2E_DOMAIN is accepted and delivered by pipe(8)
# (transport "e2emaildir" in master.cf, running as uid $E2E_MAIL_UID) into
# $dir/mail/<localpart>/Maildir/ (local part lower-cased).  virtual(8) cannot
# do that for arbitrary local parts: Postfix refuses regexp substitution in
# virtual_mailbox_maps and does not allow tcp:/socketmap: there.  The static
# map only makes smtpd accept every recipient of the domain.
virtual_mailbox_domains = $E2E_DOMAIN
virtual_mailbox_maps = static:any
virtual_transport = e2emaildir
e2emaildir_destination_recipient_limit = 1

# Keep messages byte for byte: no header rewriting for local (127.0.0.1)
# clients (Postfix would otherwise add Message-ID/Date/From when missing and
# qualify bare addresses in headers).
local_header_rewrite_clients =
always_add_missing_headers = no
append_dot_mydomain = no
biff = no

# Logging to a file through postlogd (the postlog service in master.cf);
# maillog_file must start with one of maillog_file_prefixes.
maillog_file_prefixes = $dir
maillog_file = $dir/maillog

# Pass long lines on unchanged: by default the smtp(8) and lmtp(8) clients
# break lines longer than 998 bytes with CRLF SPACE (content filters, LMTP).
smtp_line_length_limit = 0
lmtp_line_length_limit = 0

# Fast retries and no artificial delays in tests.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
in_flow_delay = 0
message_size_limit = 52428800

# --- EXTRA_MAIN_CF_FILE lines follow (later settings override earlier ones) ---
EOF
  e2e_write_maildir_deliverer "$dir/etc/deliver-maildir"
  # Every service runs without chroot (column 5 = n): a chrooted service would
  # live in $dir/spool and need copies of /etc/services, /etc/hosts, ...
  # (Debian's own master.cf chroots most services and its init script copies
  # those files; we do not run that script).
  cat >"$dir/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
# Final delivery for $E2E_DOMAIN: R/O/D prepend Return-Path, X-Original-To
# and Delivered-To (in that order), X marks it final delivery for DSN.
e2emaildir unix -       n       n       -       -       pipe
  flags=RODX user=$(id -un "$E2E_MAIL_UID") argv=/usr/bin/perl $dir/etc/deliver-maildir $dir/mail \${recipient}
# --- EXTRA_MASTER_CF_FILE lines follow ---
EOF
}

# e2e_drop_overridden FILE main|master: comments out the base settings of a
# generated main.cf/master.cf that the lines after its "EXTRA_..._FILE lines
# follow" marker define again: a main.cf parameter set again (Postfix would
# use the last one anyway, but warns "overriding earlier entry" in every
# process), or a master.cf service with the same name and type (with its
# continuation lines).  The commented lines start with "#overridden# ".
e2e_drop_overridden() {
  perl -e '
    my ($kind, $file) = @ARGV;
    open(my $in, "<", $file) or die "e2e: $file: $!\n";
    my @lines = <$in>;
    close($in);
    my ($mark) = grep { $lines[$_] =~ /^# --- EXTRA_\w+_FILE lines follow/ } 0 .. $#lines;
    exit 0 unless defined $mark;
    my $key = $kind eq "main"
      ? sub { $_[0] =~ /^\s*([A-Za-z0-9_]+)\s*=/ ? $1 : undef }
      : sub { $_[0] =~ /^(\S+)\s+(\S+)\s/ && $1 !~ /^#/ ? "$1 $2" : undef };
    my %later;
    for my $i ($mark + 1 .. $#lines) { my $k = $key->($lines[$i]); $later{$k} = 1 if defined $k }
    my $drop = 0;
    for my $i (0 .. $mark - 1) {
      my $k = $key->($lines[$i]);
      if (defined $k) { $drop = $later{$k} ? 1 : 0 }
      elsif ($lines[$i] !~ /^[ \t]/) { $drop = 0 }
      $lines[$i] = "#overridden# $lines[$i]" if $drop;
    }
    open(my $out, ">", "$file.tmp") or die "e2e: $file.tmp: $!\n";
    print {$out} @lines;
    close($out) or die "e2e: $file.tmp: $!\n";
    rename("$file.tmp", $file) or die "e2e: rename $file.tmp: $!\n";
  ' "$2" "$1"
}

# e2e_postfix_start DIR [EXTRA_MAIN_CF_FILE] [EXTRA_MASTER_CF_FILE]: creates and
# starts a private Postfix instance in DIR:
#   DIR/etc/      config_directory (main.cf, master.cf, deliver-maildir)
#   DIR/spool/    queue_directory      DIR/data/  data_directory
#   DIR/mail/<localpart>/Maildir/      delivered mail for <localpart>@$E2E_DOMAIN
#   DIR/maillog   the mail log (postlogd)
# smtpd listens on 127.0.0.1:$E2E_SMTP_PORT (a free port, exported; also
# written to DIR/smtp-port; E2E_POSTFIX_DIR is set to DIR).  The lines of
# EXTRA_MAIN_CF_FILE are appended to main.cf and those of EXTRA_MASTER_CF_FILE
# to master.cf; a parameter or service defined there replaces the base one
# (see e2e_drop_overridden), so e.g. "virtual_transport = lmtp:..." or
# "smtpd_milters = ..." take effect.  Any instance already running in DIR
# is stopped first and DIR's etc/spool/data/mail/maillog are recreated, so the
# call is idempotent.  Returns when smtpd accepts connections.
e2e_postfix_start() {
  local dir=${1:?usage: e2e_postfix_start DIR [EXTRA_MAIN_CF_FILE] [EXTRA_MASTER_CF_FILE]}
  local extra_main=${2:-} extra_master=${3:-}
  local t0 port out _
  t0=$(e2e_now)
  [[ -z "$extra_main" || -r "$extra_main" ]] || { e2e_die "cannot read $extra_main"; return 1; }
  [[ -z "$extra_master" || -r "$extra_master" ]] || { e2e_die "cannot read $extra_master"; return 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 0755 "$dir"
  e2e_check_traversable "$dir" || return 1
  [[ -e /etc/postfix/main.cf ]] || touch /etc/postfix/main.cf
  e2e_reap_stale
  e2e_postfix_stop "$dir" 2>/dev/null || true

  for _ in 1 2 3; do
    rm -rf "${dir:?}/etc" "${dir:?}/spool" "${dir:?}/data" "${dir:?}/mail" "${dir:?}/maillog"
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data" "$dir/mail"
    # data_directory must belong to mail_owner (postfix check only warns).
    chown postfix: "$dir/data"
    chmod 0700 "$dir/data"
    chown "$E2E_MAIL_UID:$E2E_MAIL_GID" "$dir/mail"
    port=$(e2e_free_port)
    e2e_postfix_write_config "$dir" "$port"
    if [[ -n "$extra_main" ]]; then cat "$extra_main" >>"$dir/etc/main.cf"; echo >>"$dir/etc/main.cf"; fi
    if [[ -n "$extra_master" ]]; then cat "$extra_master" >>"$dir/etc/master.cf"; echo >>"$dir/etc/master.cf"; fi
    e2e_drop_overridden "$dir/etc/main.cf" main
    e2e_drop_overridden "$dir/etc/master.cf" master
    : >"$dir/maillog"
    e2e_backdate "$dir/etc/main.cf" "$dir/etc/master.cf"
    # A broken main.cf would silently fall back to the system's queue
    # directory, where this library could neither see nor stop the master.
    if [[ "$(postconf -c "$dir/etc" -h queue_directory 2>&1)" != "$dir/spool" ]]; then
      postconf -c "$dir/etc" -n >/dev/null || true
      e2e_die "$dir/etc/main.cf does not set queue_directory = $dir/spool (broken EXTRA_MAIN_CF_FILE?)"
      return 1
    fi
    # `postfix start` runs `postfix check` (creates the queue directories with
    # the right owners) and then `master -w`, which returns only once the
    # master has bound its sockets.
    if out=$(postfix -c "$dir/etc" start 2>&1); then
      e2e_register postfix "$dir"
      if e2e_wait_port "$port" 10; then
        export E2E_SMTP_PORT=$port E2E_POSTFIX_DIR=$dir
        printf '%s\n' "$port" >"$dir/smtp-port"
        e2e_log "postfix started in $dir, smtpd on 127.0.0.1:$port ($(e2e_elapsed "$t0")s)"
        return 0
      fi
      e2e_postfix_stop "$dir" || true
    fi
    printf '%s\n' "$out" >&2
    tail -n 20 "$dir/maillog" >&2 2>/dev/null || true
    if ! grep -q 'Address already in use' <<<"$out" "$dir/maillog" 2>/dev/null; then
      break
    fi
    e2e_log "port $port was taken meanwhile; retrying"
  done
  e2e_die "postfix did not start in $dir (config: $dir/etc, log: $dir/maillog)"
}

# e2e_postfix_stop DIR: stops the Postfix instance in DIR and waits until all
# its processes are gone.  It SIGTERMs the master directly, as `postfix stop`
# does (that script then polls in whole seconds): the master SIGTERMs its
# process group and exits at once; children still alive after E2E_STOP_GRACE
# seconds (default 0.3) are SIGKILLed.  Succeeds when none was running.
e2e_postfix_stop() {
  local dir=${1:?usage: e2e_postfix_stop DIR} pid
  [[ -d "$dir" ]] || return 0
  dir=$(cd "$dir" && pwd)
  if pid=$(e2e_postfix_master_pid "$dir"); then
    e2e_stop_group "$pid"
  fi
  e2e_unregister postfix "$dir"
}

# e2e_alive PID: succeeds when PID runs and is not a zombie (daemons that
# double-fork are re-parented to PID 1, which in a container may be slow to
# reap them, so kill -0 alone would see them alive).
e2e_alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ "${st%% *}" != [ZX] ]]
}

# e2e_group_alive PGID: succeeds when a live (non-zombie) process of process
# group PGID remains.
e2e_group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^[ZX]/ { found = 1 } END { exit !found }'
}

# e2e_stop_group PID [WAIT]: stops the daemon PID, which leads its own process
# group (Postfix and Dovecot masters call setsid): SIGTERM to PID, up to WAIT
# seconds (default 5) for it to exit, up to E2E_STOP_GRACE seconds (default
# 0.3) for the rest of the group, then SIGKILL to whatever is left of it.
e2e_stop_group() {
  local pid=$1 wait=${2:-5} pgid i steps
  steps=$(awk -v g="${E2E_STOP_GRACE:-0.3}" 'BEGIN { printf "%d", g * 100 }')
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < wait * 100; i++)); do
    e2e_alive "$pid" || break
    sleep 0.01
  done
  if [[ "$pgid" == "$pid" ]]; then
    for ((i = 0; i < steps; i++)); do
      e2e_group_alive "$pgid" || return 0
      sleep 0.01
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
      e2e_group_alive "$pgid" || return 0
      sleep 0.01
    done
    e2e_die "processes of group $pgid survive SIGKILL"
    return 1
  fi
  e2e_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  return 0
}

# e2e_backdate FILE...: sets the modification time of FILEs 2 seconds into the
# past.  Postfix reads main.cf through load_file(), which re-reads a "hot"
# file -- mtime not older than one second before the read began -- pausing
# 0.3s each time, so every Postfix command and daemon that starts within ~2s
# of a change to main.cf waits that long (measured: `postfix start` 2.1s
# instead of 0.3s).  Call it after editing DIR/etc/main.cf by hand.
e2e_backdate() {
  touch -d "@$(($(date +%s) - 2))" "$@"
}

# e2e_postfix_reload DIR: `postfix reload` after a test edited main.cf or
# master.cf (e.g. with e2e_postconf DIR -e name=value), then waits until the
# master logged the reload and 0.5s more: the reload is asynchronous, and
# daemons of the old generation may still serve a connection or two.
# Restarting with e2e_postfix_start is the deterministic alternative.
e2e_postfix_reload() {
  local dir=${1:?usage: e2e_postfix_reload DIR} before i
  before=$(grep -c 'postfix/master.*: reload --' "$dir/maillog" || true)
  postfix -c "$dir/etc" reload >/dev/null 2>&1 || { e2e_maillog_tail "$dir" 10; e2e_die "postfix reload failed"; return 1; }
  for ((i = 0; i < 200; i++)); do
    (($(grep -c 'postfix/master.*: reload --' "$dir/maillog" || true) > before)) && break
    sleep 0.05
  done
  sleep 0.5
}

# e2e_postconf DIR [ARGS...]: runs postconf against the instance in DIR, e.g.
# `e2e_postconf "$dir" -e smtpd_milters=inet:127.0.0.1:1234` or
# `e2e_postconf "$dir" -h message_size_limit`.
e2e_postconf() {
  local dir=${1:?usage: e2e_postconf DIR [ARGS...]}
  shift
  postconf -c "$dir/etc" "$@"
  e2e_backdate "$dir/etc/main.cf" "$dir/etc/master.cf"
}

# e2e_queue_empty DIR: succeeds when the instance's queue is empty
# (`postqueue -p` prints "Mail queue is empty"); otherwise prints the queue
# listing on stderr and fails.
e2e_queue_empty() {
  local dir=${1:?usage: e2e_queue_empty DIR} out
  out=$(postqueue -c "$dir/etc" -p 2>&1) || true
  if [[ "$out" == "Mail queue is empty" ]]; then
    return 0
  fi
  printf 'e2e: queue of %s is not empty:\n%s\n' "$dir" "$out" >&2
  return 1
}

# e2e_wait_queue_empty DIR [TIMEOUT]: waits until the queue of DIR is empty.
e2e_wait_queue_empty() {
  local dir=$1 timeout=${2:-$E2E_TIMEOUT} deadline
  deadline=$((SECONDS + timeout))
  until e2e_queue_empty "$dir" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      e2e_queue_empty "$dir" || true
      e2e_maillog_tail "$dir"
      e2e_die "queue of $dir not empty after ${timeout}s"
      return 1
    fi
    sleep 0.1
  done
}

# e2e_flush DIR: asks the instance to retry all deferred mail now (`postqueue -f`).
e2e_flush() {
  postqueue -c "${1:?usage: e2e_flush DIR}/etc" -f
}

# e2e_maillog_tail DIR [LINES]: prints the last LINES (default 40) of DIR/maillog
# (and of DIR/dovecot.log when present) on stderr.
e2e_maillog_tail() {
  local dir=$1 n=${2:-40} f
  for f in "$dir/maillog" "$dir/dovecot.log"; do
    if [[ -s "$f" ]]; then
      printf -- '--- last %s lines of %s:\n' "$n" "$f" >&2
      tail -n "$n" "$f" >&2
    fi
  done
}

# --- sending -------------------------------------------------------------------

# e2e_wire_data FILE OUT: writes to OUT the DATA section swaks sends for FILE:
# every bare LF becomes CRLF (existing CRLFs stay), a missing final line end
# is added, lines starting with "." are dot-stuffed, and the terminating "."
# is appended (swaks adds its CRLF).  Sending that with --no-data-fixup sends
# FILE's bytes untouched: without it swaks would replace "\n" (backslash, n)
# anywhere in the message with CRLF, expand %DATE%/%TO_ADDRESS%/... tokens,
# drop a leading "From " line and strip a final "." line.
e2e_wire_data() {
  perl -0777 -pe 's/(?<!\r)\n/\r\n/g; $_ .= "\r\n" if length && !/\r\n\z/; s/^\./../mg; $_ .= ".";' "$1" >"$2"
}

# e2e_send FILE [RCPT...]: sends the message in FILE (.eml, LF or CRLF line
# ends) to the Postfix instance on 127.0.0.1:$E2E_SMTP_PORT with swaks, from
# $E2E_FROM to RCPT... (default $E2E_RCPT), the message bytes unchanged (see
# e2e_wire_data).  Returns swaks' status (0 = accepted for all recipients;
# non-zero when the server refused or the connection failed).  The swaks
# transcript is printed on failure, and kept in $E2E_SEND_LOG when that is set.  Environment: E2E_SERVER (default
# 127.0.0.1:$E2E_SMTP_PORT), E2E_PROTOCOL (SMTP, ESMTP or LMTP), E2E_SOCKET
# (a unix socket instead of E2E_SERVER), E2E_SWAKS_ARGS (extra arguments).
e2e_send() {
  local file=${1:?usage: e2e_send FILE [RCPT...]}
  shift
  local rcpts=("$@") wire log rc=0 target=()
  ((${#rcpts[@]})) || rcpts=("$E2E_RCPT")
  [[ -r "$file" ]] || { e2e_die "cannot read $file"; return 1; }
  if [[ -n "${E2E_SOCKET:-}" ]]; then
    target=(--socket "$E2E_SOCKET")
  else
    [[ -n "${E2E_SERVER:-}${E2E_SMTP_PORT:-}" ]] || { e2e_die "E2E_SMTP_PORT is not set (start Postfix first)"; return 1; }
    target=(--server "${E2E_SERVER:-127.0.0.1:$E2E_SMTP_PORT}")
  fi
  wire=$(e2e_mktemp)
  log=${E2E_SEND_LOG:-$(e2e_mktemp)}
  e2e_wire_data "$file" "$wire"
  local to
  to=$(IFS=,; printf '%s' "${rcpts[*]}")
  # shellcheck disable=SC2086
  swaks "${target[@]}" --protocol "${E2E_PROTOCOL:-ESMTP}" --helo e2e.client.test \
    --from "$E2E_FROM" --to "$to" --data "@$wire" --no-data-fixup \
    --timeout 60 ${E2E_SWAKS_ARGS:-} >"$log" 2>&1 || rc=$?
  if ((rc)); then
    printf 'e2e: swaks failed (status %s) sending %s to %s; transcript:\n' "$rc" "$file" "${rcpts[*]}" >&2
    cat "$log" >&2
  fi
  rm -f "$wire"
  [[ -n "${E2E_SEND_LOG:-}" ]] || rm -f "$log"
  return "$rc"
}

# e2e_send_many [-j JOBS] [-t RCPT[,RCPT...]] FILE...: sends every FILE like
# e2e_send, JOBS (default 4) at a time in parallel, to RCPT (default
# $E2E_RCPT).  Fails (after all finished) if any send failed, and prints how
# many failed.
e2e_send_many() {
  local jobs=4 rcpt=$E2E_RCPT opt OPTIND=1
  while getopts 'j:t:' opt; do
    case "$opt" in
      j) jobs=$OPTARG ;;
      t) rcpt=$OPTARG ;;
      *) e2e_die "usage: e2e_send_many [-j JOBS] [-t RCPT] FILE..."; return 1 ;;
    esac
  done
  shift $((OPTIND - 1))
  local faildir f n=0 failed
  mkdir -p "$E2E_RUN_TMP"
  faildir=$(mktemp -d "$E2E_RUN_TMP/many.XXXXXX")
  local -a rcpts
  IFS=, read -r -a rcpts <<<"$rcpt"
  # Wait only for our own senders: a bare `wait` would also wait for daemons
  # the test started with e2e_spawn.  (wait -n -p needs bash 5.1.)
  local -A live=()
  local fin
  for f in "$@"; do
    n=$((n + 1))
    (e2e_send "$f" "${rcpts[@]}" 2>"$faildir/$n.err" || echo "$f" >"$faildir/$n.failed") &
    live[$!]=1
    while ((${#live[@]} >= jobs)); do
      fin=
      wait -n -p fin "${!live[@]}" || true
      [[ -n "$fin" ]] && unset "live[$fin]"
    done
  done
  for fin in "${!live[@]}"; do
    wait "$fin" || true
  done
  failed=$(find "$faildir" -name '*.failed' | wc -l)
  if ((failed)); then
    cat "$faildir"/*.err >&2 2>/dev/null | head -n 60 >&2 || true
    rm -rf "$faildir"
    e2e_die "$failed of $n messages could not be sent"
    return 1
  fi
  rm -rf "$faildir"
}

# --- content filter ---------------------------------------------------------------

# e2e_content_filter_config MAIN_OUT MASTER_OUT NEXTHOP REINJECT_PORT [smtp|lmtp]
# writes the main.cf and master.cf lines of a Postfix after-queue content
# filter (FILTER_README's "advanced" setup) for e2e_postfix_start:
#   main.cf:   content_filter = e2efilter:NEXTHOP
#   master.cf: e2efilter, a smtp(8) (or lmtp(8)) client service that hands
#              every message to the filter at NEXTHOP -- "[127.0.0.1]:PORT"
#              for SMTP, "inet:127.0.0.1:PORT" or "unix:/path" for LMTP
#              (XFORWARD is offered; 8-bit is not converted to QP);
#              127.0.0.1:REINJECT_PORT, the smtpd the filter sends the
#              result back to, with content_filter and milters off and only
#              127.0.0.0/8 allowed to relay.
# Such a message is delivered with two Postfix Received headers (use RECEIVED=2
# with e2e_strip_postfix_headers / e2e_assert_same_message).  Pointing NEXTHOP
# at the re-injection port itself gives a filter-less loop (selftest.sh).
e2e_content_filter_config() {
  local main_out=$1 master_out=$2 nexthop=$3 reinject=$4 proto=${5:-smtp}
  case "$proto" in
    smtp | lmtp) ;;
    *) e2e_die "e2e_content_filter_config: protocol must be smtp or lmtp, not $proto"; return 1 ;;
  esac
  printf 'content_filter = e2efilter:%s\n' "$nexthop" >"$main_out"
  cat >"$master_out" <<EOF
e2efilter unix  -       -       n       -       10      $proto
  -o ${proto}_send_xforward_command=yes
  -o disable_mime_output_conversion=yes
  -o ${proto}_line_length_limit=0
127.0.0.1:$reinject inet n  -       n       -       10      smtpd
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_helo_restrictions=
  -o smtpd_client_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o mynetworks=127.0.0.0/8
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
EOF
}

# --- checking deliveries ---------------------------------------------------------

# e2e_maildir_count MAILDIR: prints the number of messages in MAILDIR/new and
# MAILDIR/cur (0 if MAILDIR does not exist yet).
e2e_maildir_count() {
  local md=$1
  { find "$md/new" "$md/cur" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l
}

# e2e_maildir_files MAILDIR: prints the paths of the messages in MAILDIR
# (new/ and cur/), oldest delivery first.
e2e_maildir_files() {
  local md=$1
  { find "$md/new" "$md/cur" -maxdepth 1 -type f -printf '%T@ %p\n' 2>/dev/null || true; } | sort -n | cut -d' ' -f2-
}

# e2e_wait_maildir MAILDIR COUNT [TIMEOUT] [LOGDIR]: waits until MAILDIR holds
# at least COUNT messages; on timeout prints the log tails of LOGDIR and fails.
# Fails at once if it holds more than COUNT.
e2e_wait_maildir() {
  local md=$1 want=$2 timeout=${3:-$E2E_TIMEOUT} logdir=${4:-} deadline have
  deadline=$((SECONDS + timeout))
  while :; do
    have=$(e2e_maildir_count "$md")
    if ((have == want)); then
      return 0
    fi
    if ((have > want)); then
      e2e_die "$md holds $have messages, expected $want"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      [[ -n "$logdir" ]] && e2e_maillog_tail "$logdir"
      e2e_die "$md holds $have messages after ${timeout}s, expected $want"
      return 1
    fi
    sleep 0.05
  done
}

# e2e_wait_delivered DIR USER COUNT [TIMEOUT]: waits until the Maildir of
# USER@$E2E_DOMAIN in the Postfix instance DIR (DIR/mail/USER/Maildir) holds
# exactly COUNT messages (new/ + cur/); fails with the maillog tail printed
# after TIMEOUT seconds (default $E2E_TIMEOUT) or when it holds more.
e2e_wait_delivered() {
  local dir=$1 user=$2 count=$3 timeout=${4:-$E2E_TIMEOUT}
  e2e_wait_maildir "$dir/mail/$user/Maildir" "$count" "$timeout" "$dir"
}

# e2e_delivered_files DIR USER: prints the message files delivered to USER in
# the Postfix instance DIR, oldest first.
e2e_delivered_files() {
  e2e_maildir_files "$1/mail/$2/Maildir"
}

# e2e_find_message MAILDIR NEEDLE [HEADER]: prints the path of the one message
# in MAILDIR whose HEADER header (default Message-ID; case-insensitive name,
# first line of the field only) contains the literal text NEEDLE; fails if
# there is none or more than one.
e2e_find_message() {
  local md=$1 needle=$2 header=${3:-Message-ID} f found=()
  while IFS= read -r f; do
    if perl -ne '
        BEGIN { ($h, $n) = splice(@ARGV, 0, 2) }
        last if /^\r?$/;
        if (/^\Q$h\E:.*\Q$n\E/i) { $m = 1; last }
        END { exit !$m }' "$header" "$needle" "$f"; then
      found+=("$f")
    fi
  done < <(e2e_maildir_files "$md")
  if ((${#found[@]} != 1)); then
    e2e_die "${#found[@]} messages in $md have \"$needle\" in $header (expected 1)"
    return 1
  fi
  printf '%s\n' "${found[0]}"
}

# e2e_header_names FILE [N]: prints the names of the first N (default 6) header
# fields of the message FILE, one a line (to check which headers come first).
e2e_header_names() {
  perl -ne 'BEGIN { $n = shift } last if /^\r?$/ || $c >= $n; if (/^([^\s:]+):/) { print "$1\n"; $c++ }' "${2:-6}" "$1"
}

# e2e_strip_postfix_headers FILE [RECEIVED]: prints the message FILE delivered
# by the Postfix instance with the headers Postfix added removed, so that it
# can be compared with what was sent.  Verified on Debian 12 (Postfix 3.7.11)
# with this library's configuration, a delivered message starts with, in this
# order:
#     Return-Path: <envelope sender>         \  prepended at delivery by the
#     X-Original-To: <recipient as received>  > delivery agent (pipe(8) flags
#     Delivered-To: <final recipient>        /  R, O, D; virtual(8) and local(8)
#                                               add the same three)
#     Received: from HELO (unknown [127.0.0.1])        \  written by smtpd(8)
#             by mx.e2e.test (Postfix) with ESMTP id QUEUEID  ahead of the data
#             for <rcpt>; DATE                         /  it received ("for"
#                                                only with a single recipient)
# then the message as sent (line ends LF, see e2e_normalise_sent).  Postfix
# adds nothing else here: no Message-ID/Date/From/To for messages lacking them
# (local_header_rewrite_clients is empty), and no header is rewritten.  After
# an after-queue content filter that re-injects through a second smtpd there
# are two Received headers (the re-injecting smtpd's on top).
# The function removes the first three if present (each at most once, in that
# order), then exactly RECEIVED (default 1) Received headers with their
# continuation lines, and fails if fewer are there.
e2e_strip_postfix_headers() {
  local file=${1:?usage: e2e_strip_postfix_headers FILE [RECEIVED]} nrecv=${2:-1}
  perl -e '
    my ($file, $nrecv) = @ARGV;
    open(my $fh, "<:raw", $file) or die "e2e: cannot read $file: $!\n";
    local $/; my $msg = <$fh>;
    # One header field, with its continuation lines, at the start of $msg.
    my $field = qr/[^\n]*\n(?:[ \t][^\n]*\n)*/;
    for my $name ("Return-Path", "X-Original-To", "Delivered-To") {
      $msg =~ s/\A\Q$name\E:$field//i;
    }
    for my $i (1 .. $nrecv) {
      $msg =~ s/\AReceived:$field//i
        or die "e2e: $file: expected $nrecv Received header(s) added by Postfix at the top, found " . ($i - 1) . "\n";
    }
    print $msg;
  ' "$file" "$nrecv"
}

# e2e_strip_dovecot_headers FILE [POSTFIX_RECEIVED]: prints a message that
# Dovecot's LMTP server delivered, with the headers Dovecot added removed.
# Verified with Dovecot 2.3.19 (Debian 12), it prepends, in this order:
#     Return-Path: <envelope sender>
#     Delivered-To: <recipient>        (only when the LMTP transaction had a
#                                       single recipient)
#     Received: from LHLO-NAME ([client IP])   (no IP over a unix socket)
#             by lmtp.e2e.test with LMTP id ...
#             (envelope-from <sender>)
#             for <recipient>; DATE            ("for" only with one recipient)
# Those are removed, then POSTFIX_RECEIVED (default 0) more Received headers:
# 1 when the message came through the Postfix instance (its smtpd's Received;
# Postfix's lmtp client adds none).  Fails if fewer are there.
e2e_strip_dovecot_headers() {
  local file=${1:?usage: e2e_strip_dovecot_headers FILE [POSTFIX_RECEIVED]} nrecv=${2:-0}
  perl -e '
    my ($file, $nrecv) = @ARGV;
    open(my $fh, "<:raw", $file) or die "e2e: cannot read $file: $!\n";
    local $/; my $msg = <$fh>;
    my $field = qr/[^\n]*\n(?:[ \t][^\n]*\n)*/;
    for my $name ("Return-Path", "Delivered-To") {
      $msg =~ s/\A\Q$name\E:$field//i;
    }
    $msg =~ s/\AReceived:$field//i
      or die "e2e: $file: no Received header added by Dovecot at the top\n";
    for my $i (1 .. $nrecv) {
      $msg =~ s/\AReceived:$field//i
        or die "e2e: $file: expected $nrecv Received header(s) added by Postfix below Dovecot\x27s, found " . ($i - 1) . "\n";
    }
    print $msg;
  ' "$file" "$nrecv"
}

# e2e_normalise_sent FILE [VIA]: prints the message in FILE as a delivery
# agent stores it after it was sent with e2e_send (all verified on Debian 12):
#  - every CRLF becomes LF: Postfix (pipe(8) here, and virtual(8)/local(8)
#    alike) and Dovecot write Maildir files with LF line ends, whatever was
#    sent; a bare LF stays LF;
#  - a final line end is added when FILE lacks one (SMTP cannot carry a
#    partial last line; e2e_wire_data adds CRLF);
#  - VIA=postfix (the default): a bare CR (one not followed by LF) becomes a
#    space -- Postfix does that on receipt, via smtpd and via sendmail alike;
#    VIA=dovecot (LMTP straight to Dovecot): bare CRs are kept.
# Everything else (8-bit bytes, long lines, "\n" text, leading dots) is kept,
# given smtp_line_length_limit = lmtp_line_length_limit = 0 (see main.cf).
e2e_normalise_sent() {
  local via=${2:-postfix}
  perl -0777 -pe '
    BEGIN { $via = shift }
    s/\r\n/\n/g;
    $_ .= "\n" if length && !/\n\z/;
    tr/\r/ / if $via eq "postfix";
  ' "$via" "$1"
}

# e2e_assert_same_message SENT DELIVERED [RECEIVED] [postfix|dovecot]: fails
# unless the delivered message file DELIVERED, less the headers the delivery
# path added, is byte-identical to e2e_normalise_sent SENT.  Prints a diff
# (cat -A notation) on failure.
#   postfix (default): delivered by the Postfix instance's Maildir transport;
#       RECEIVED (default 1) = number of Postfix Received headers (2 after an
#       after-queue content filter that re-injects through a second smtpd).
#   dovecot: delivered by Dovecot LMTP; RECEIVED (default 0) = number of
#       Postfix Received headers below Dovecot's (1 when Postfix handed the
#       message to Dovecot, or to an LMTP proxy in front of it).
e2e_assert_same_message() {
  local sent=$1 got=$2 kind=${4:-postfix} nrecv a b rc=0 via=postfix
  if [[ "$kind" == dovecot ]]; then nrecv=${3:-0}; else nrecv=${3:-1}; fi
  [[ "$kind" == dovecot && "$nrecv" == 0 ]] && via=dovecot
  a=$(e2e_mktemp)
  b=$(e2e_mktemp)
  e2e_normalise_sent "$sent" "$via" >"$a"
  if [[ "$kind" == dovecot ]]; then
    e2e_strip_dovecot_headers "$got" "$nrecv" >"$b" || rc=$?
  else
    e2e_strip_postfix_headers "$got" "$nrecv" >"$b" || rc=$?
  fi
  if ((rc == 0)) && ! cmp -s "$a" "$b"; then
    printf 'e2e: %s differs from what was sent (%s); diff sent delivered (cat -A):\n' "$got" "$sent" >&2
    diff <(cat -A "$a") <(cat -A "$b") | head -n 40 >&2 || true
    rc=1
  fi
  rm -f "$a" "$b"
  return "$rc"
}

# --- Dovecot -------------------------------------------------------------------

# e2e_dovecot_master_pid DIR: prints the PID of the Dovecot master of the
# instance in DIR; fails when none runs.
e2e_dovecot_master_pid() {
  local pidfile="$1/dovecot-run/master.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(tr -dc 0-9 <"$pidfile")
  [[ -n "$pid" ]] && e2e_alive "$pid" || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dovecot ]] || return 1
  printf '%s\n' "$pid"
}

# e2e_dovecot_start DIR [EXTRA_CONF_FILE]: starts a private Dovecot (LMTP only) for DIR:
#   DIR/dovecot.conf        its whole configuration (no /etc/dovecot include)
#   DIR/dovecot-run/        base_dir     DIR/dovecot-state/  state_dir
#   DIR/dovecot.log         its log
#   DIR/dovecot-lmtp        LMTP unix socket (mode 0666)  -> E2E_LMTP_SOCKET
#   127.0.0.1:E2E_LMTP_PORT LMTP over TCP (free port)      -> E2E_LMTP_PORT
#   DIR/dovecot-mail/<user>/Maildir/   delivered mail, for any recipient
#       (static userdb, allow_all_users; <user> is the local part, lower-cased)
# Any Dovecot already running for DIR is stopped first.  Returns once both
# listeners accept connections.  The lines of EXTRA_CONF_FILE, when given, are
# appended to dovecot.conf (e.g. a `protocol lmtp { mail_plugins = ... }` and a
# `plugin { ... }` section for Sieve; see e2e_dovecot_sieve_conf).
e2e_dovecot_start() {
  local dir=${1:?usage: e2e_dovecot_start DIR [EXTRA_CONF_FILE]} extra=${2:-} t0 port _
  t0=$(e2e_now)
  [[ -z "$extra" || -r "$extra" ]] || { e2e_die "cannot read $extra"; return 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 0755 "$dir"
  e2e_check_traversable "$dir" || return 1
  e2e_reap_stale
  e2e_dovecot_stop "$dir" 2>/dev/null || true
  for _ in 1 2 3; do
    rm -rf "${dir:?}/dovecot-run" "${dir:?}/dovecot-state" "${dir:?}/dovecot-mail" "${dir:?}/dovecot.log" "${dir:?}/dovecot-lmtp"
    mkdir -p "$dir/dovecot-run" "$dir/dovecot-state" "$dir/dovecot-mail"
    chown "$E2E_MAIL_UID:$E2E_MAIL_GID" "$dir/dovecot-mail"
    port=$(e2e_free_port)
    cat >"$dir/dovecot.conf" <<EOF
# Private Dovecot for trackless end-to-end tests (tests/e2e/lib.sh).
# Started with: dovecot -c $dir/dovecot.conf
base_dir = $dir/dovecot-run
state_dir = $dir/dovecot-state
instance_name = trackless-e2e
hostname = lmtp.e2e.test
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:~/Maildir
auth_username_format = %Lu

# Any recipient exists; mail for u@d goes to $dir/dovecot-mail/u/Maildir.
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=$E2E_MAIL_UID gid=$E2E_MAIL_GID home=$dir/dovecot-mail/%n allow_all_users=yes
}

service lmtp {
  unix_listener $dir/dovecot-lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $port
  }
}
EOF
    if [[ -n "$extra" ]]; then
      printf '\n# --- EXTRA_CONF_FILE (%s) ---\n' "$extra" >>"$dir/dovecot.conf"
      cat "$extra" >>"$dir/dovecot.conf"
    fi
    if dovecot -c "$dir/dovecot.conf" >"$dir/dovecot-start.log" 2>&1; then
      e2e_register dovecot "$dir"
      if e2e_wait_port "$port" 10 && e2e_wait_socket "$dir/dovecot-lmtp" 10; then
        export E2E_LMTP_PORT=$port E2E_LMTP_SOCKET=$dir/dovecot-lmtp
        printf '%s\n' "$port" >"$dir/lmtp-port"
        e2e_log "dovecot started in $dir, LMTP on 127.0.0.1:$port and $dir/dovecot-lmtp ($(e2e_elapsed "$t0")s)"
        return 0
      fi
      e2e_dovecot_stop "$dir" || true
    fi
    cat "$dir/dovecot-start.log" >&2 || true
    tail -n 20 "$dir/dovecot.log" >&2 2>/dev/null || true
    if ! grep -qs 'Address already in use' "$dir/dovecot-start.log" "$dir/dovecot.log"; then
      break
    fi
    e2e_log "port $port was taken meanwhile; retrying"
  done
  e2e_die "dovecot did not start in $dir (config: $dir/dovecot.conf, log: $dir/dovecot.log)"
}

# e2e_dovecot_stop DIR: stops the Dovecot of DIR (e2e_stop_group: SIGTERM to
# its master, which otherwise takes ~1s to exit, then SIGKILL to what is left
# of its process group after E2E_STOP_GRACE seconds) and waits until it is
# gone.  Succeeds when
# none was running.
e2e_dovecot_stop() {
  local dir=${1:?usage: e2e_dovecot_stop DIR} pid
  [[ -d "$dir" ]] || return 0
  dir=$(cd "$dir" && pwd)
  if pid=$(e2e_dovecot_master_pid "$dir"); then
    e2e_stop_group "$pid" 0
  fi
  e2e_unregister dovecot "$dir"
}

# e2e_dovecot_wait_delivered DIR USER COUNT [TIMEOUT]: like e2e_wait_delivered,
# for the Dovecot of DIR (DIR/dovecot-mail/USER/Maildir).
e2e_dovecot_wait_delivered() {
  local dir=$1 user=$2 count=$3 timeout=${4:-$E2E_TIMEOUT}
  e2e_wait_maildir "$dir/dovecot-mail/$user/Maildir" "$count" "$timeout" "$dir"
}

# e2e_dovecot_delivered_files DIR USER: prints the message files Dovecot
# delivered to USER, oldest first.
e2e_dovecot_delivered_files() {
  e2e_maildir_files "$1/dovecot-mail/$2/Maildir"
}

# e2e_lmtp_send FILE [RCPT...]: sends FILE with LMTP (LHLO) straight to the
# Dovecot started by e2e_dovecot_start, over TCP 127.0.0.1:$E2E_LMTP_PORT, or
# over the unix socket $E2E_LMTP_SOCKET when E2E_LMTP_VIA=socket.  Any
# LMTP server (e.g. trackless' LMTP proxy) can be targeted by setting
# E2E_SERVER=host:port or E2E_SOCKET=path instead.
e2e_lmtp_send() {
  if [[ "${E2E_LMTP_VIA:-tcp}" == socket ]]; then
    E2E_PROTOCOL=LMTP E2E_SOCKET=${E2E_SOCKET:-$E2E_LMTP_SOCKET} e2e_send "$@"
  else
    E2E_PROTOCOL=LMTP E2E_SERVER=${E2E_SERVER:-127.0.0.1:$E2E_LMTP_PORT} e2e_send "$@"
  fi
}
