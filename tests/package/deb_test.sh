#!/usr/bin/env bash
# Builds the .deb packages with cpack, checks their contents and conffiles,
# extracts the runtime package to a temporary root and runs its binary from
# there (it must find its plugins relative to itself), verifies the systemd
# unit where systemd-analyze exists, checks that `cmake --install
# --prefix DIR` writes nothing outside DIR, and runs the package's life with
# dpkg (lifecycle_test.sh: install, upgrade, remove, purge).
# Usage: deb_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
  return 0
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
arch=$(dpkg --print-architecture)
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1) ||
  fail "cpack: $(tail -20 "$work/cpack.log")"
deb="$work/out/sink_${version}_${arch}.deb"
dev="$work/out/sink-dev_${version}_${arch}.deb"
[ -f "$deb" ] || fail "no $deb: $(ls "$work/out")"
[ -f "$dev" ] || fail "no $dev"
dbgsym="$work/out/sink-dbgsym_${version}_${arch}.ddeb"
[ -f "$dbgsym" ] || fail "no $dbgsym (the binaries' debug information): $(ls "$work/out")"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/sink ./usr/lib/sink/plugins/tcp.so ./usr/lib/sink/plugins/tls.so ./usr/lib/sink/plugins/csv.so \
  ./usr/lib/sink/plugins/jsonl.so ./etc/sink/sink.yaml ./lib/systemd/system/sink.service ./etc/logrotate.d/sink \
  ./usr/share/man/man1/sink.1.gz ./usr/share/man/man5/sink.yaml.5.gz ./usr/share/doc/sink/examples/basic.yaml \
  ./usr/share/doc/sink/copyright ./usr/share/doc/sink/README.md ./usr/share/doc/sink/analyzers.md \
  ./usr/share/doc/sink/outputs.md; do
  grep -qx "$f" <<<"$contents" || fail "$f missing from $deb"
done
grep -q "include/sink/plugin.h" <<<"$contents" && fail "the SDK header belongs to sink-dev"
grep -q "/usr/lib/debug/.build-id/.*\.debug$" <<<"$(dpkg-deb -c "$dbgsym")" || fail "no debug files in $dbgsym"
dev_contents=$(dpkg-deb -c "$dev" | awk '{print $6}')
for f in ./usr/include/sink/plugin.h ./usr/lib/cmake/sink/sinkConfig.cmake ./usr/lib/pkgconfig/sink-plugin.pc \
  ./usr/share/doc/sink/plugins.md; do
  grep -qx "$f" <<<"$dev_contents" || fail "$f missing from $dev"
done
# Each file in one package only, or the two cannot be installed together.
both=$(comm -12 <(grep -v "/$" <<<"$contents" | sort) <(grep -v "/$" <<<"$dev_contents" | sort))
[ -z "$both" ] || fail "in both sink and sink-dev: $both"

mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
[ "$(cat "$work/control/conffiles")" = "/etc/sink/sink.yaml
/etc/logrotate.d/sink" ] || fail "conffiles: $(cat "$work/control/conffiles")"
grep -q "adduser --system" "$work/control/postinst" || fail "postinst does not create the sink user"
[ -x "$work/control/prerm" ] || fail "no prerm: removing the package would leave the service running"
maintainer=$(sed -n 's/^Maintainer: //p' "$work/control/control")
grep -q "@localhost" <<<"$maintainer" && fail "Maintainer: $maintainer"
grep -q "^Depends:.*libevent" "$work/control/control" || fail "no shared-library dependencies: $(cat "$work/control/control")"

# The packaged config is valid and uses absolute paths under /var.
root="$work/root"
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/sink" --config "$root/etc/sink/sink.yaml" --print-config >/dev/null || fail "packaged sink.yaml is invalid"
# Stripped binaries (the symbols are in sink-dbgsym), man pages gzip -9n:
# no name or time stamp inside.
for f in "$root/usr/bin/sink" "$root"/usr/lib/sink/plugins/*.so; do
  readelf -S "$f" | grep -q -e "\.symtab" -e "\.debug_info" && fail "$f is not stripped"
done
for f in "$root"/usr/share/man/man*/*.gz; do
  gzip -t "$f" || fail "$f is not gzip"
  [ "$(od -An -tu1 -j3 -N5 "$f" | tr -s ' ')" = " 0 0 0 0 0" ] || fail "$f carries a name or a time stamp"
done
grep -q "/var/lib/sink/" "$root/etc/sink/sink.yaml" || fail "sink.yaml does not write under /var/lib/sink"
grep -q "/var/log/sink/" "$root/etc/sink/sink.yaml" || fail "sink.yaml does not log under /var/log/sink"
"$root/usr/bin/sink" --version | grep -q "plugin ABI 1.1" || fail "--version: $("$root/usr/bin/sink" --version)"
"$root/usr/bin/sink" firewall --config "$root/etc/sink/sink.yaml" | grep -q "redirect to :12345" ||
  fail "sink firewall on the packaged config"

# The extracted binary runs and finds its bundled plugins beside itself.
cd "$work"
cat >run.yaml <<YAML
log: {path: $work/sink.log}
groups: [{name: pkg, listen: 127.0.0.1, ports: 0, timeout: 5s}]
outputs: [{plugin: jsonl, path: $work/out.jsonl}]
YAML
"$root/usr/bin/sink" --config run.yaml &
pid=$!
for _ in $(seq 100); do grep -q "listening on" sink.log 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' sink.log)
[ -n "$port" ] || fail "packaged sink did not start: $(cat sink.log)"
grep -q "from $root/usr/lib/sink/plugins/jsonl.so" sink.log || fail "plugins not found beside the binary: $(cat sink.log)"
python3 -c "import socket; s=socket.create_connection(('127.0.0.1', $port)); s.sendall(b'from the deb'); s.close()"
for _ in $(seq 100); do [ -s out.jsonl ] && break; sleep 0.05; done
kill -TERM "$pid"; wait "$pid"; pid=""
grep -q '"payload_hex":"66726f6d2074686520646562"' out.jsonl || fail "record: $(cat out.jsonl)"

if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/bin/sink#$root/usr/bin/sink#g" "$root/lib/systemd/system/sink.service" >"$work/sink.service"
  systemd-analyze verify --man=no "$work/sink.service" || fail "systemd-analyze verify sink.service"
else
  echo "systemd-analyze not found: unit not verified"
fi

# A plain install into a prefix never writes outside it.
cmake --install "$build" --prefix "$work/prefix" >/dev/null
outside=$(grep -v "^$work/prefix/" "$build/install_manifest.txt" || true)
[ -z "$outside" ] || fail "cmake --install wrote outside the prefix: $outside"
[ ! -e "$work/prefix/etc" ] || true

set +e
"$here/lifecycle_test.sh" "$deb"
rc=$?
set -e
[ "$rc" = 0 ] || [ "$rc" = 77 ] || fail "package lifecycle (above)"
echo "ok: sink and sink-dev packages built, checked, extracted and run"
