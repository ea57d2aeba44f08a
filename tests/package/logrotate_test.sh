#!/usr/bin/env bash
# The packaged logrotate snippet, run by logrotate itself on a copy of
# /var/log/sink and /var/lib/sink: logs rotate, record files are neither
# renamed nor deleted however often it runs, and the reload that makes sink
# reopen its files runs once per rotation, not once per file.
# Usage: logrotate_test.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
command -v logrotate >/dev/null || {
  [ -n "${CI:-}" ] && { echo "FAIL: logrotate is not installed (scripts/bootstrap installs it)" >&2; exit 1; }
  echo "SKIP: logrotate is not installed"; exit 77
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

logs=$work/log/sink records=$work/lib/sink
mkdir -p "$logs" "$records" "$work/bin"
# A stand-in systemctl: records each call, one line per call.
cat >"$work/bin/systemctl" <<STUB
#!/bin/sh
echo "\$*" >>"$work/systemctl.calls"
STUB
chmod +x "$work/bin/systemctl"
sed -e "s#/var/log/sink#$logs#g" -e "s#/var/lib/sink#$records#g" \
  -e "s#su sink sink#su $(id -un) $(id -gn)#" "$src/packaging/logrotate" >"$work/sink.conf"
grep -q "$logs/\*.log" "$work/sink.conf" || fail "the snippet does not rotate /var/log/sink/*.log"

for f in sink.log collector.log other.log; do echo "a line of $f" >"$logs/$f"; done
for f in records.jsonl records.csv all-sensors.jsonl; do echo "a record in $f" >"$records/$f"; done
chmod 0750 "$logs" "$records"
for round in 1 2 3 4 5; do
  for f in sink.log collector.log other.log; do echo "round $round" >>"$logs/$f"; done
  PATH="$work/bin:$PATH" logrotate -f -s "$work/state" "$work/sink.conf" ||
    fail "logrotate round $round failed"
done

for f in records.jsonl records.csv all-sensors.jsonl; do
  [ "$(cat "$records/$f")" = "a record in $f" ] || fail "$f was changed or removed by logrotate"
done
[ "$(ls "$records")" = "all-sensors.jsonl
records.csv
records.jsonl" ] || fail "logrotate made files beside the records: $(ls "$records")"
[ -e "$logs/sink.log.1" ] || fail "sink.log was not rotated: $(ls "$logs")"
calls=$(cat "$work/systemctl.calls")
[ "$(wc -l <<<"$calls")" = 5 ] || fail "postrotate ran $(wc -l <<<"$calls") times in 5 rotations of 3 logs: $calls"
grep -qv "^reload sink\*.service$" <<<"$calls" && fail "postrotate called: $calls"
echo "ok: logs rotated, record files untouched, one reload per rotation"
