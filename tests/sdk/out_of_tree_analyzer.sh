#!/usr/bin/env bash
# Installs sink into a clean prefix, builds examples/analyzer-plugin out of
# tree against that install, runs it through the real build/sink beside the
# bundled fet analyzer and checks its extras in the jsonl output.
# Usage: out_of_tree_analyzer.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
. "$src/tests/sdk/sdk_lib.sh"
[ -f "$work/prefix/share/doc/sink/plugin-examples/analyzer-plugin/payload_entropy.cpp" ] ||
  fail "the analyzer example is not installed with the SDK"
build_example analyzer-plugin payload_entropy.so

cd "$work"
# A bad option is refused at start, naming it.
cat >bad.yaml <<YAML
groups: [{name: sdk, listen: 127.0.0.1, ports: 0}]
analyzers: [{plugin: $work/plugin/payload_entropy.so, min_byte: 3}]
outputs: [{plugin: jsonl, path: bad.jsonl}]
YAML
set +e
err=$("$build/sink" --config bad.yaml 2>&1 >/dev/null)
rc=$?
set -e
[ "$rc" = 2 ] || fail "bad option: exit $rc, wanted 2: $err"
grep -q 'bad.yaml:2: analyzers\[0\] (.*payload_entropy.so): unknown option "min_byte"' <<<"$err" || fail "bad option message: $err"

cat >sink.yaml <<YAML
log: {path: sink.log}
groups:
  - {name: sdk, listen: 127.0.0.1, ports: 0, timeout: 10s}
analyzers:
  - plugin: fet
  - plugin: $work/plugin/payload_entropy.so
    min_bytes: 2
outputs:
  - {plugin: jsonl, path: records.jsonl}
YAML
"$build/sink" --config sink.yaml &
pid=$!
for _ in $(seq 100); do grep -q "listening on" sink.log 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' sink.log)
[ -n "$port" ] || fail "sink did not start: $(cat sink.log)"

python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
for payload in (b"aaaa", bytes(range(256)), b"ab" * 8, b"abcd", b"x", b""):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(payload)
    s.close()
PY
for _ in $(seq 200); do [ "$(wc -l <records.jsonl 2>/dev/null || echo 0)" -ge 6 ] && break; sleep 0.05; done
kill -TERM "$pid"
wait "$pid" || fail "sink exited with $?"
pid=""
grep -q "plugin payload_entropy 1.0.0 (needs ABI 1.1, host ABI 1.1)" sink.log || fail "not loaded: $(cat sink.log)"

got=$(python3 -c '
import json
for r in sorted((json.loads(l) for l in open("records.jsonl")), key=lambda r: (r["payload_len"], r["payload_hex"])):
    x = r["extra"]
    print(r["payload_len"], x.get("entropy.bits_per_byte"), x.get("entropy.bytes"), "fet" if "fet.exempt" in x else "-")')
want="0 None None -
1 None None fet
4 0.0 4 fet
4 2.0 4 fet
16 1.0 16 fet
256 8.0 256 fet"
[ "$got" = "$want" ] || fail "extras were:
$got
expected:
$want"
echo "ok: payload_entropy built out of tree and ran beside fet"
