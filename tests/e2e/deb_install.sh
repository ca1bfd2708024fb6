#!/usr/bin/env bash
# tests/e2e/deb_install.sh DEB — installs the Debian package built by packaging/build-deb.sh
# on this machine and checks that it works from the installed files alone:
#
#     sudo bash tests/e2e/deb_install.sh "$(bash packaging/build-deb.sh)"
#
# Installs (Postfix first, so that the group postfix exists), checks the binary, the shipped
# configuration (as root and as the service user), the account, the permissions, the conffile,
# the man pages, completions, docs and units; reinstalls over itself (the upgrade path: an
# edited config and a dpkg-statoverride are kept); runs the milter the way its unit does, but
# without systemd (there is none running in CI); filters a message as the service user and
# reads the report; then removes and purges the package and checks that nothing is left.
# Run as root. The package is purged on every exit, even a failed one; a trackless package
# installed before the test is purged first.
set -euo pipefail

deb=${1:?usage: deb_install.sh PATH/TO/trackless_VERSION_ARCH.deb}
[[ -f "$deb" ]] || {
  echo "deb_install: no such file: $deb" >&2
  exit 2
}
deb=$(realpath "$deb")
repo=$(cd "$(dirname "$0")/../.." && pwd)

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# lib.sh points every trackless at /dev/null for the other tests; here the installed
# /etc/trackless/trackless.toml is what must be read, as on a real system.
unset TRACKLESS_CONFIG XDG_CONFIG_HOME XDG_STATE_HOME TRACKLESS_LOG

if [[ $(id -u) != 0 ]]; then
  e2e_die "run as root (it installs and purges a package)"
  exit 1
fi

CONFIG=/etc/trackless/trackless.toml
STATE=/var/lib/trackless
SPOOL=/var/spool/postfix/trackless
UNITS=(trackless-milter trackless-smtp trackless-lmtp)
# A clean environment for the service user's commands, like systemd gives a unit (runuser sets
# HOME=/var/lib/trackless, USER, LOGNAME and SHELL itself).
CLEAN_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
# A message with a tracking pixel (Mailgun open tracker) from editors@news.example.
MESSAGE=$repo/corpus/mailgun-newsletter.eml
SENDER_DOMAIN=news.example

passed=0
work=$(e2e_tmpdir deb-install)
statoverride_added=
milter_pid=
runuser_pid=

ok() {
  passed=$((passed + 1))
  printf 'ok %d - %s\n' "$passed" "$*"
}

# fail MSG: the failing check, on stderr; exits (the EXIT trap purges the package).
fail() {
  printf 'deb_install: check failed: %s\n' "$*" >&2
  exit 1
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  [[ "$2" == "$3" ]] || fail "$1: expected '$3', got '$2'"
}

# as_trackless CMD...: runs CMD as the service user in a clean environment.
as_trackless() {
  "${CLEAN_ENV[@]}" runuser -u trackless -- "$@"
}

installed() {
  dpkg-query -W -f='${Status}' trackless 2>/dev/null | grep -q '^install ok installed$'
}

purge_package() {
  if dpkg-query -W -f='${Status}' trackless >/dev/null 2>&1; then
    dpkg --purge trackless >"$work/purge-cleanup.log" 2>&1 || {
      cat "$work/purge-cleanup.log" >&2
      return 1
    }
  fi
}

# Runs first on exit (e2e_on_exit); lib.sh then stops what e2e_spawn started.
cleanup() {
  if [[ -n "$statoverride_added" ]]; then
    dpkg-statoverride --remove "$CONFIG" >/dev/null 2>&1 || true
  fi
  if installed || dpkg-query -W -f='${Status}' trackless >/dev/null 2>&1; then
    e2e_log "purging the trackless package"
    # A milter of this test still running as trackless would make deluser fail.
    [[ -z "$milter_pid" ]] || e2e_kill "$milter_pid"
    [[ -z "$runuser_pid" ]] || e2e_kill "$runuser_pid"
    purge_package || e2e_die "dpkg --purge trackless failed; the machine is not clean"
  fi
}
e2e_on_exit cleanup

# --- install --------------------------------------------------------------------------------
# Postfix first (its group postfix is what the sockets' directory is made for), and man-db for
# man -w.
E2E_PACKAGES+=(man-db)
e2e_install_packages
ok "packages installed: ${E2E_PACKAGES[*]}"

if dpkg-query -W -f='${Status}' trackless >/dev/null 2>&1; then
  e2e_log "a trackless package is already on this machine (a previous run?): purging it first"
  purge_package || fail "could not purge the trackless package installed before the test"
fi
for what in "getent passwd trackless" "getent group trackless"; do
  if $what >/dev/null; then
    e2e_log "warning: '$what' exists before the package is installed"
  fi
done

t0=$(e2e_now)
if ! dpkg -i "$deb" >"$work/install.log" 2>&1; then
  cat "$work/install.log" >&2
  fail "dpkg -i $deb failed (log: $work/install.log)"
fi
installed || fail "dpkg -i succeeded but trackless is not 'install ok installed'"
if grep -Ei 'warning|error' "$work/install.log" >&2; then
  fail "dpkg -i printed warnings or errors (above; log: $work/install.log)"
fi
ok "dpkg -i $(basename "$deb") ($(e2e_elapsed "$t0")s)"

# --- the binary and the shipped configuration -----------------------------------------------
version=$(dpkg-query -W -f='${Version}' trackless)
out=$(/usr/bin/trackless --version) || fail "/usr/bin/trackless --version failed"
[[ "$out" == "trackless ${version%-*}" ]] ||
  fail "/usr/bin/trackless --version printed '$out', expected 'trackless ${version%-*}'"
ok "/usr/bin/trackless --version: $out"

# As root with an empty home: the default lookup must find /etc/trackless/trackless.toml.
mkdir -p "$work/home"
if ! out=$(env HOME="$work/home" /usr/bin/trackless check-config 2>"$work/check-root.err"); then
  cat "$work/check-root.err" >&2
  fail "trackless check-config (root) exited non-zero with the installed $CONFIG"
fi
grep -qF "# $CONFIG is valid" <<<"$out" ||
  fail "trackless check-config (root) did not say '$CONFIG is valid'; it printed: $out"
[[ ! -s "$work/check-root.err" ]] || fail "check-config warned: $(cat "$work/check-root.err")"
# The effective settings are the shipped ones.
grep -qx 'listen = "unix:/var/spool/postfix/trackless/milter.sock"' <<<"$out" ||
  fail "check-config does not show the shipped [milter] listen: $out"
grep -qx 'path = "/var/lib/trackless/log.sqlite"' <<<"$out" ||
  fail "check-config does not show the shipped [log] path: $out"
ok "trackless check-config (root): $CONFIG is valid"

if ! out=$(as_trackless /usr/bin/trackless check-config 2>"$work/check-user.err"); then
  cat "$work/check-user.err" >&2
  fail "runuser -u trackless -- trackless check-config failed: the service user cannot use its configuration"
fi
grep -qF "# $CONFIG is valid" <<<"$out" ||
  fail "check-config as trackless did not say '$CONFIG is valid'; it printed: $out"
ok "runuser -u trackless -- trackless check-config: valid"

# Nobody else can read it (it may hold a PostgreSQL password).
if runuser -u nobody -- cat "$CONFIG" >/dev/null 2>&1; then
  fail "user nobody can read $CONFIG"
fi
ok "user nobody cannot read $CONFIG"

# …and still gets a working trackless (built-in defaults), e.g. from procmail.
if ! out=$(runuser -u nobody -- env HOME=/nonexistent /usr/bin/trackless --no-log filter <"$MESSAGE" 2>"$work/nobody.err"); then
  cat "$work/nobody.err" >&2
  fail "trackless filter as user nobody failed"
fi
grep -q '^X-Trackless: ' <<<"$out" ||
  fail "trackless filter as user nobody did not rewrite the message: $(cat "$work/nobody.err")"
ok "user nobody can run trackless filter (the unreadable system config is skipped)"

# --- account, directories, permissions ------------------------------------------------------
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd trackless) ||
  fail "user trackless does not exist"
getent group trackless >/dev/null || fail "group trackless does not exist"
expect_eq "primary group of trackless" "$(id -gn trackless)" trackless
expect_eq "home of trackless" "$home" "$STATE"
expect_eq "shell of trackless" "$shell" /usr/sbin/nologin
((uid < 1000)) || fail "user trackless has uid $uid: not a system user"
((gid < 1000)) || fail "group trackless has gid $gid: not a system group"
if getent group postfix >/dev/null; then
  id -nG trackless | tr ' ' '\n' | grep -qx postfix ||
    fail "user trackless is not in group postfix (groups: $(id -nG trackless))"
fi
ok "system user and group trackless (uid $uid, gid $gid, home $home, groups: $(id -nG trackless))"

[[ -d "$STATE" ]] || fail "$STATE does not exist"
expect_eq "owner and mode of $STATE" "$(stat -c '%U:%G %a' "$STATE")" "trackless:trackless 750"
expect_eq "owner and mode of $CONFIG" "$(stat -c '%U:%G %a' "$CONFIG")" "root:trackless 640"
ok "$STATE trackless:trackless 0750, $CONFIG root:trackless 0640"

conffiles=$(dpkg-query -W -f='${Conffiles}' trackless)
grep -q "^ $CONFIG [0-9a-f]\{32\}$" <<<"$conffiles" ||
  fail "$CONFIG is not a conffile; Conffiles: '$conffiles'"
cmp -s "$CONFIG" "$repo/packaging/trackless.toml" ||
  fail "$CONFIG differs from packaging/trackless.toml"
ok "$CONFIG is a conffile, as packaged"

# --- documentation, completions, units ------------------------------------------------------
expect_eq "man -w trackless" "$(man -w trackless)" /usr/share/man/man1/trackless.1.gz
expect_eq "man -w trackless.toml" "$(man -w trackless.toml)" /usr/share/man/man5/trackless.toml.5.gz
expect_eq "man -w trackless-milter" "$(man -w trackless-milter)" /usr/share/man/man1/trackless-milter.1.gz
warnings=$(man --warnings 5 trackless.toml 2>&1 >/dev/null) || fail "man 5 trackless.toml failed: $warnings"
[[ -z "$warnings" ]] || fail "man 5 trackless.toml renders with warnings: $warnings"
man 5 trackless.toml 2>/dev/null | grep -q 'require_dkim' || fail "man 5 trackless.toml lacks require_dkim"
ok "man pages: trackless(1), trackless-milter(1), trackless.toml(5)"

for f in /usr/share/bash-completion/completions/trackless \
  /usr/share/zsh/vendor-completions/_trackless \
  /usr/share/fish/vendor_completions.d/trackless.fish \
  /usr/share/doc/trackless/postfix/main.cf.milter \
  /usr/share/doc/trackless/postfix/master.cf.content-filter \
  /usr/share/doc/trackless/dovecot/README.md \
  /usr/share/doc/trackless/dovecot/trackless-filter \
  /usr/share/doc/trackless/dovecot/trackless-inspect \
  /usr/share/doc/trackless/dovecot/90-sieve-extprograms.conf \
  /usr/share/doc/trackless/README.md \
  /usr/share/doc/trackless/copyright; do
  [[ -s "$f" ]] || fail "$f is missing or empty"
done
bash -c 'source /usr/share/bash-completion/completions/trackless && complete -p trackless' >/dev/null ||
  fail "the bash completion does not define a completion for trackless"
ok "completions (bash, zsh, fish), Postfix snippets, README and copyright installed"

for u in "${UNITS[@]}"; do
  [[ -f "/lib/systemd/system/$u.service" ]] || fail "/lib/systemd/system/$u.service missing"
  cmp -s "/lib/systemd/system/$u.service" "$repo/packaging/systemd/$u.service" ||
    fail "/lib/systemd/system/$u.service differs from packaging/systemd/$u.service"
  if compgen -G "/etc/systemd/system/*.wants/$u.service" >/dev/null; then
    fail "$u.service was enabled on install: $(ls /etc/systemd/system/*.wants/"$u".service)"
  fi
done
ok "units installed in /lib/systemd/system, none enabled"

# `trackless imap watch`: a template for the administrator and one for users.
for pair in "/lib/systemd/system/trackless-imap@.service packaging/systemd/trackless-imap@.service" \
  "/usr/lib/systemd/user/trackless-imap@.service packaging/systemd/user/trackless-imap@.service"; do
  read -r installed shipped <<<"$pair"
  cmp -s "$installed" "$repo/$shipped" || fail "$installed missing or differs from $shipped"
done
trackless imap watch --help >/dev/null || fail "trackless imap watch (the units' command) is unknown"
ok "trackless-imap@ units installed (system and user)"

if command -v systemd-analyze >/dev/null; then
  # Offline: no running systemd is needed. Unknown units named in After= are fine.
  if ! systemd-analyze verify "${UNITS[@]/%/.service}" >"$work/verify.log" 2>&1 ||
    grep -v -e 'dovecot.service' -e 'postfix.service' "$work/verify.log" | grep -q .; then
    cat "$work/verify.log" >&2
    fail "systemd-analyze verify found problems in the units"
  fi
  ok "systemd-analyze verify ${UNITS[*]}"
else
  e2e_log "systemd-analyze not installed: units not verified (no systemd on this machine)"
fi

# --- reinstall over itself: the upgrade path --------------------------------------------------
# An edit of the conffile, and a mode an administrator set with dpkg-statoverride, are kept.
echo '# edited by deb_install.sh' >>"$CONFIG"
dpkg-statoverride --add root trackless 0600 "$CONFIG"
statoverride_added=1
chmod 0600 "$CONFIG"
t0=$(e2e_now)
if ! dpkg -i "$deb" >"$work/reinstall.log" 2>&1; then
  cat "$work/reinstall.log" >&2
  fail "reinstalling (dpkg -i over the installed package) failed"
fi
tail -n 1 "$CONFIG" | grep -qx '# edited by deb_install.sh' || fail "reinstalling lost the edit of $CONFIG"
expect_eq "owner and mode of $CONFIG under a statoverride" "$(stat -c '%U:%G %a' "$CONFIG")" "root:trackless 600"
dpkg-statoverride --remove "$CONFIG"
statoverride_added=
# And without the override, postinst restores root:trackless 0640.
if ! dpkg -i "$deb" >"$work/reinstall2.log" 2>&1; then
  cat "$work/reinstall2.log" >&2
  fail "reinstalling a second time failed"
fi
expect_eq "owner and mode of $CONFIG after reinstall" "$(stat -c '%U:%G %a' "$CONFIG")" "root:trackless 640"
expect_eq "owner and mode of $STATE after reinstall" "$(stat -c '%U:%G %a' "$STATE")" "trackless:trackless 750"
as_trackless /usr/bin/trackless check-config >/dev/null 2>&1 || fail "check-config as trackless fails after reinstall"
ok "reinstall keeps the edited conffile and a statoverride, restores 0640 without one ($(e2e_elapsed "$t0")s)"

# --- the milter, as its unit runs it --------------------------------------------------------
unit=/lib/systemd/system/trackless-milter.service
pre=$(sed -n 's/^ExecStartPre=+//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
umask_=$(sed -n 's/^UMask=//p' "$unit")
[[ -n "$pre" && -n "$start" && -n "$umask_" ]] || fail "cannot read ExecStartPre=+, ExecStart= and UMask= of $unit"
rm -rf "$SPOOL"
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
$pre || fail "the unit's ExecStartPre ($pre) failed"
expect_eq "owner and mode of $SPOOL" "$(stat -c '%U:%G %a' "$SPOOL")" "trackless:postfix 2750"

sock=$SPOOL/milter.sock
# shellcheck disable=SC2086
e2e_spawn "$work/milter.log" bash -c "umask $umask_ && exec ${CLEAN_ENV[*]} runuser -u trackless -- $start"
runuser_pid=$E2E_LAST_PID
e2e_wait_socket "$sock" 20 || {
  cat "$work/milter.log" >&2
  fail "the milter did not create $sock"
}
expect_eq "owner, group and mode of $sock" "$(stat -c '%U:%G %a' "$sock")" "trackless:postfix 660"
milter_pid=$(pgrep -u trackless -P "$runuser_pid" -x trackless) ||
  fail "no trackless process under runuser (pid $runuser_pid)"
# Postfix (user postfix) can connect; others cannot even reach the directory.
# shellcheck disable=SC2016 # perl code
connect='use IO::Socket::UNIX; IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "$!\n"'
runuser -u postfix -- perl -e "$connect" "$sock" || fail "user postfix cannot connect to $sock"
if runuser -u nobody -- perl -e "$connect" "$sock" 2>/dev/null; then
  fail "user nobody can connect to $sock"
fi
ok "milter ($start, as trackless) listens on $sock, trackless:postfix 0660; postfix can connect, nobody cannot"

# Mail through a Postfix configured with the installed snippet, as the README says: the
# snippet names the socket relative to the queue directory (unix:trackless/milter.sock), so
# the test instance's queue directory gets the system one's trackless directory.
pdir=$(e2e_tmpdir deb-postfix)
e2e_postfix_start "$pdir" /usr/share/doc/trackless/postfix/main.cf.milter ||
  fail "Postfix with /usr/share/doc/trackless/postfix/main.cf.milter did not start"
ln -s "$SPOOL" "$pdir/spool/trackless"
e2e_send "$MESSAGE" || fail "Postfix refused the message"
e2e_wait_delivered "$pdir" "${E2E_RCPT%@*}" 1 30 || fail "the message was not delivered through the milter"
delivered=$(e2e_delivered_files "$pdir" "${E2E_RCPT%@*}" | head -n 1)
grep -qi '^X-Trackless:.*pixels=1' "$delivered" ||
  fail "the message delivered through Postfix and the installed milter was not rewritten"
! grep -q 'email.mg.news.example/o/' "$delivered" ||
  fail "the tracking pixel is still in the message delivered through the milter"
e2e_postfix_stop "$pdir"
ok "Postfix with the installed main.cf.milter snippet: message delivered with the pixel removed"

kill -TERM "$milter_pid"
rc=0
wait "$runuser_pid" || rc=$?
((rc == 0)) || {
  cat "$work/milter.log" >&2
  fail "the milter exited with status $rc after SIGTERM"
}
[[ ! -e "$sock" ]] || fail "the milter left $sock behind"
# It logs that it is ready, that it finishes on SIGTERM and that it stopped, all at level INFO;
# nothing else is expected (no warning, no error, no stray output).
unexpected=$(grep -Ev '^[0-9T:.-]+Z +INFO ' "$work/milter.log" || true)
[[ -z "$unexpected" ]] || {
  cat "$work/milter.log" >&2
  fail "the milter wrote unexpected lines: $unexpected"
}
grep -q 'trackless milter ready' "$work/milter.log" || fail "the milter did not log 'trackless milter ready'"
grep -q 'stopped$' "$work/milter.log" || fail "the milter did not log 'stopped'"
ok "SIGTERM: the milter exits 0, removes its socket, logs nothing but INFO lines"

# What the milter logged is in the report, read as the README says.
if ! report=$(as_trackless /usr/bin/trackless report --format csv 2>"$work/report-milter.err"); then
  cat "$work/report-milter.err" >&2
  fail "trackless report (as trackless) after the milter run failed"
fi
grep -q "^$SENDER_DOMAIN,1," <<<"$report" ||
  fail "the report does not show the one message the milter filtered from $SENDER_DOMAIN: $report"
ok "sudo -u trackless trackless report: the milter's message from $SENDER_DOMAIN is there"

# root using the shipped config (sudo trackless filter / batch / report) must not take the
# daemons' log away from them: files root creates there go to the directory's owner.
mv "$STATE/log.sqlite" "$work/log.sqlite.milter"
"${CLEAN_ENV[@]}" /usr/bin/trackless filter <"$MESSAGE" >/dev/null 2>"$work/root-filter.err" ||
  fail "trackless filter as root failed: $(cat "$work/root-filter.err")"
# (filter spools its record beside the log; report, as root too, moves it into the log)
expect_eq "owner and mode of $STATE/log.sqlite.spool created by root" \
  "$(stat -c '%U:%G %a' "$STATE/log.sqlite.spool")" "trackless:trackless 600"
"${CLEAN_ENV[@]}" /usr/bin/trackless report >/dev/null 2>"$work/root-report.err" ||
  fail "trackless report as root failed: $(cat "$work/root-report.err")"
expect_eq "owner and mode of $STATE/log.sqlite created by root" \
  "$(stat -c '%U:%G %a' "$STATE/log.sqlite")" "trackless:trackless 600"
leftover=$(find "$STATE" -user root | head -n 1)
[[ -z "$leftover" ]] || fail "root left $leftover in $STATE"
rm -f "$STATE/log.sqlite" "$STATE/log.sqlite.spool"
mv "$work/log.sqlite.milter" "$STATE/log.sqlite"
ok "root running trackless with the shipped config leaves the log owned by trackless"

# --- filter and report as the service user, with the shipped configuration ------------------
rc=0
as_trackless /usr/bin/trackless filter <"$MESSAGE" >"$work/filtered.eml" 2>"$work/filter.err" || rc=$?
((rc == 0)) || {
  cat "$work/filter.err" >&2
  fail "trackless filter (as trackless) exited $rc"
}
[[ ! -s "$work/filter.err" ]] || fail "trackless filter wrote on stderr: $(cat "$work/filter.err")"
grep -qi '^X-Trackless:.*pixels=1' "$work/filtered.eml" ||
  fail "the filtered message has no 'X-Trackless: pixels=1' header"
! grep -q 'email.mg.news.example/o/' "$work/filtered.eml" ||
  fail "the tracking pixel is still in the filtered message"
[[ -f "$STATE/log.sqlite.spool" ]] || fail "trackless filter did not spool its record to $STATE/log.sqlite.spool"
expect_eq "owner and mode of $STATE/log.sqlite.spool" "$(stat -c '%U:%G %a' "$STATE/log.sqlite.spool")" "trackless:trackless 600"
ok "trackless filter (as trackless) removed the pixel and spooled its record beside $STATE/log.sqlite"

if ! report=$(as_trackless /usr/bin/trackless report 2>"$work/report.err"); then
  cat "$work/report.err" >&2
  fail "trackless report (as trackless) failed"
fi
grep -q "^$SENDER_DOMAIN " <<<"$report" || fail "trackless report does not show $SENDER_DOMAIN: $report"
ok "trackless report (as trackless) shows $SENDER_DOMAIN"

# --- remove, then purge ---------------------------------------------------------------------
if ! dpkg --remove trackless >"$work/remove.log" 2>&1; then
  cat "$work/remove.log" >&2
  fail "dpkg --remove trackless failed"
fi
[[ ! -e /usr/bin/trackless ]] || fail "/usr/bin/trackless is still there after remove"
[[ -f "$CONFIG" ]] || fail "remove deleted $CONFIG (only purge may)"
getent passwd trackless >/dev/null || fail "remove deleted the user trackless (only purge may)"
ok "dpkg --remove: binary gone; configuration, log and user kept"

if ! dpkg --purge trackless >"$work/purge.log" 2>&1; then
  cat "$work/purge.log" >&2
  fail "dpkg --purge trackless failed"
fi
! dpkg-query -W -f='${Status}' trackless >/dev/null 2>&1 || fail "dpkg still knows trackless after purge"
! getent passwd trackless >/dev/null || fail "user trackless still exists after purge"
! getent group trackless >/dev/null || fail "group trackless still exists after purge"
for d in "$STATE" /etc/trackless "$SPOOL"; do
  [[ ! -e "$d" ]] || fail "$d still exists after purge"
done
# No mask, enable link or deb-systemd-helper state of the units is left either.
left=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
  /var/lib/systemd/deb-systemd-helper-masked -name 'trackless-*' 2>/dev/null || true)
[[ -z "$left" ]] || fail "unit files or links left after purge: $left"
ok "dpkg --purge: user, group, $STATE, /etc/trackless and $SPOOL gone"

printf 'deb_install: %d passed, 0 failed\n' "$passed"
