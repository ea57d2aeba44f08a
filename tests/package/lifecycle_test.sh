#!/usr/bin/env bash
# The sink package's life with the real dpkg and its maintainer scripts:
# install -> upgrade -> remove -> purge, then install -> remove without
# systemd. CI has no systemd, so systemctl, deb-systemd-invoke and
# deb-systemd-helper are stand-ins on PATH that record their calls, and the
# calls are checked. Everything happens in a private mount and network
# namespace, in a chroot onto an overlay of / whose changes are thrown away:
# the host's dpkg database, users, files and firewall stay untouched.
# Needs root; skips (77) without it, fails under CI=true.
# Usage: lifecycle_test.sh SINK_DEB
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  [ -n "${CI:-}" ] && fail "the package lifecycle test needs root (CI runs as root)"
  echo "SKIP: the package lifecycle test needs root"
  exit 77
fi
if [ -z "${SINK_LIFECYCLE_IN_NS:-}" ]; then
  exec unshare -m -n env SINK_LIFECYCLE_IN_NS=1 "$0" "$@"
fi

deb=$(realpath "$1")
work=$(mktemp -d)
root=$work/root
# The chroot holds the host's /dev: never delete through a mount point.
cleanup() {
  umount -R "$root" 2>/dev/null || true
  if mountpoint -q "$root"; then echo "left $work: $root is still mounted" >&2; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work/upper" "$work/ovl" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/ovl" "$root"
mount --bind /proc "$root/proc"
mount --bind /dev "$root/dev"
# man-db's trigger would rebuild the whole index after every step.
rm -f "$root/var/lib/man-db/auto-update"
# Never mind a sink installed on the host: this root starts without one.
if chroot "$root" dpkg-query -W sink >/dev/null 2>&1; then chroot "$root" dpkg --purge sink >/dev/null 2>&1; fi

# The stand-ins: one line per call ("NAME ARGS"); was-enabled answers yes,
# as deb-systemd-helper does for a unit it has never seen.
mkdir -p "$root/stub"
for tool in systemctl deb-systemd-invoke deb-systemd-helper; do
  cat >"$root/stub/$tool" <<'STUB'
#!/bin/sh
echo "$(basename "$0") $*" >>/calls
exit 0
STUB
  chmod 755 "$root/stub/$tool"
done

in_root() { chroot "$root" env -i PATH=/stub:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
# Runs one dpkg step with an empty call log; its output is kept in $work/STEP.log.
step() {
  local name=$1
  shift
  : >"$root/calls"
  in_root dpkg "$@" >"$work/$name.log" 2>&1 || fail "dpkg $*: $(cat "$work/$name.log")"
}
calls() { cat "$root/calls"; }
expect_calls() {
  local name=$1 want=$2
  [ "$(calls)" = "$want" ] || fail "$name: maintainer scripts called
$(calls)
expected
$want"
}
tables() { in_root nft list tables; }

version=$(dpkg-deb -f "$deb" Version)
newer="$version+upgrade1"
mkdir -p "$root/pkg"
cp "$deb" "$root/pkg/sink-old.deb"
dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: $newer/" "$work/repack/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/repack" "$root/pkg/sink-new.deb" >/dev/null

mkdir -p "$root/run/systemd/system" # "systemd is running"

# Install: the unit is enabled, not started; the operator is told why.
step install -i /pkg/sink-old.deb
expect_calls install "deb-systemd-helper unmask sink.service
deb-systemd-helper --quiet was-enabled sink.service
deb-systemd-helper enable sink.service
systemctl --system daemon-reload"
grep -q "enabled, but not started" "$work/install.log" || fail "no install message: $(cat "$work/install.log")"
grep -q "systemctl start sink" "$work/install.log" || fail "the install message does not say how to start"
in_root getent passwd sink >/dev/null || fail "postinst did not create the user sink"
for d in /var/lib/sink /var/log/sink; do
  [ "$(in_root stat -c '%U:%G %a' "$d")" = "sink:sink 750" ] || fail "$d: $(in_root stat -c '%U:%G %a' "$d")"
done
grep -qx "UMask=0027" "$root/lib/systemd/system/sink.service" || fail "the unit sets no UMask=0027"
grep -q "^ExecStopPost=-+/usr/bin/sink firewall --config /etc/sink/sink.yaml --remove" \
  "$root/lib/systemd/system/sink.service" || fail "the unit does not remove the firewall table when it stops"

# The service ran: its firewall table, records, a journal, a log.
in_root /usr/bin/sink firewall --config /etc/sink/sink.yaml --apply 2>/dev/null || fail "sink firewall --apply"
tables | grep -qx "table inet sink" || fail "no table inet sink after --apply: $(tables)"
echo '{"id":"kept"}' >"$root/var/lib/sink/records.jsonl"
mkdir -p "$root/var/lib/sink/journal" && echo segment >"$root/var/lib/sink/journal/0000000001.seg"
echo "a log line" >"$root/var/log/sink/sink.log"
echo "# the operator's edit" >>"$root/etc/sink/sink.yaml"

# The installed logrotate snippet, as installed (su sink sink, real paths):
# the log rotates, the records stay, one reload.
if in_root sh -c "command -v logrotate" >/dev/null; then
  : >"$root/calls"
  in_root logrotate -f -s /var/tmp/sink-logrotate.state /etc/logrotate.d/sink >"$work/logrotate.log" 2>&1 ||
    fail "logrotate /etc/logrotate.d/sink: $(cat "$work/logrotate.log")"
  [ -f "$root/var/log/sink/sink.log.1" ] || fail "logrotate did not rotate sink.log: $(ls "$root/var/log/sink")"
  [ "$(ls "$root/var/lib/sink")" = "journal
records.jsonl" ] || fail "logrotate touched /var/lib/sink: $(ls "$root/var/lib/sink")"
  expect_calls logrotate "systemctl reload sink*.service"
else
  [ -n "${CI:-}" ] && fail "logrotate is not installed (scripts/bootstrap installs it)"
  echo "logrotate not installed: the installed snippet is not run"
fi

# Upgrade: nothing stopped, a running service restarted on the new binary.
step upgrade -i /pkg/sink-new.deb
expect_calls upgrade "deb-systemd-helper unmask sink.service
deb-systemd-helper --quiet was-enabled sink.service
deb-systemd-helper enable sink.service
systemctl --system daemon-reload
deb-systemd-invoke try-restart sink.service"
grep -q "not started" "$work/upgrade.log" && fail "the first-install message is repeated on upgrade"
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
[ "$(in_root dpkg-query -W -f '${Version}' sink)" = "$newer" ] || fail "the upgrade did not install $newer"
grep -q "the operator's edit" "$root/etc/sink/sink.yaml" || fail "the upgrade replaced the edited conffile"
tables | grep -qx "table inet sink" || fail "the upgrade removed the firewall table of a running service"

# Remove: stopped, masked, firewall table gone; data and config stay.
step remove -r sink
expect_calls remove "deb-systemd-invoke stop sink.service
deb-systemd-helper mask sink.service
systemctl --system daemon-reload"
tables | grep -q "inet sink" && fail "table inet sink is still loaded after dpkg -r: $(tables)"
[ ! -e "$root/usr/bin/sink" ] || fail "/usr/bin/sink is still there after dpkg -r"
[ -f "$root/etc/sink/sink.yaml" ] || fail "dpkg -r removed the conffile"
[ -n "$(ls "$root/var/log/sink")" ] || fail "dpkg -r removed the logs"

# Purge: unit state and logs go; records and journal stay, with their owner.
step purge -P sink
expect_calls purge "deb-systemd-helper purge sink.service
deb-systemd-helper unmask sink.service
systemctl --system daemon-reload"
[ "$(cat "$root/var/lib/sink/records.jsonl")" = '{"id":"kept"}' ] || fail "purge touched the records"
[ -f "$root/var/lib/sink/journal/0000000001.seg" ] || fail "purge removed the journal"
[ ! -e "$root/var/log/sink" ] || fail "purge left /var/log/sink"
[ ! -e "$root/etc/sink" ] || fail "purge left /etc/sink: $(ls -la "$root/etc/sink")"
in_root getent passwd sink >/dev/null || fail "purge removed the user owning the records kept"
grep -q "kept in /var/lib/sink" "$work/purge.log" || fail "purge does not say the records are kept"

# Without systemd: no systemctl or deb-systemd-invoke call, and a table
# loaded by hand goes even when the config no longer loads.
rm -r "$root/run/systemd/system" "$root/var/lib/sink"
step install-nosystemd -i /pkg/sink-new.deb
calls | grep -q -e "^systemctl" -e "^deb-systemd-invoke" && fail "install without systemd called: $(calls)"
echo "this is: [not yaml" >>"$root/etc/sink/sink.yaml"
in_root nft add table inet sink
step remove-nosystemd -r sink
expect_calls remove-nosystemd "deb-systemd-helper mask sink.service"
tables | grep -q "inet sink" && fail "table inet sink is still loaded after dpkg -r (config refused): $(tables)"
# Purge with no data left: what postinst made goes, the user too.
rm -f "$root/etc/sink/sink.yaml"
step purge-nodata -P sink
[ ! -e "$root/var/lib/sink" ] || fail "purge left an empty /var/lib/sink"
in_root getent passwd sink >/dev/null && fail "purge kept the user sink though it owns nothing any more"
in_root getent group sink >/dev/null && fail "purge kept the group sink"
echo "ok: install, upgrade, remove and purge call what they should; no table inet sink after remove"
