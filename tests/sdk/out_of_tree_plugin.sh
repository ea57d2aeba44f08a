#!/usr/bin/env bash
# Installs sink into a clean prefix, builds examples/output-plugin out of tree
# against that install, runs it through the real build/sink with a YAML
# config next to the jsonl output, and checks the SQLite rows.
# Usage: out_of_tree_plugin.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
. "$src/tests/sdk/sdk_lib.sh"
build_example output-plugin sqlite.so

# The walk-throughs in docs/plugins.md (an output, an analyzer) build as printed.
mkdir "$work/walkthrough"
python3 - "$src/docs/plugins.md" "$work/walkthrough" <<'PY'
import re, sys
blocks = re.findall(r"```(cmake|cpp)\n(.*?)```", open(sys.argv[1]).read(), re.S)
assert [b[0] for b in blocks] == ["cmake", "cpp", "cpp"], [b[0] for b in blocks]
open(sys.argv[2] + "/CMakeLists.txt", "w").write(blocks[0][1] + "sink_add_plugin(first_byte SOURCES first_byte.cpp)\n")
open(sys.argv[2] + "/count.cpp", "w").write(blocks[1][1])
open(sys.argv[2] + "/first_byte.cpp", "w").write(blocks[2][1])
PY
cmake -S "$work/walkthrough" -B "$work/walkthrough/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/walkthrough/build" >/dev/null || fail "docs/plugins.md walk-through does not build"

cd "$work"
cat >sink.yaml <<YAML
log: {path: sink.log}
groups:
  - name: sdk
    listen: 127.0.0.1
    ports: 0
    timeout: 10s
    capture_bytes: 8
analyzers:
  - plugin: $work/walkthrough/build/first_byte.so
outputs:
  - plugin: $work/plugin/sqlite.so
    path: records.db
  - plugin: jsonl
    path: records.jsonl
  - plugin: $work/walkthrough/build/count.so
YAML
"$build/sink" --config sink.yaml &
pid=$!
for _ in $(seq 100); do grep -q "listening on" sink.log 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' sink.log)
[ -n "$port" ] || fail "sink did not start: $(cat sink.log)"

python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
for payload in (b"hello sqlite", bytes([0, 255, 1, 254]), b""):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(payload)
    s.close()
PY
for _ in $(seq 200); do [ "$(wc -l <records.jsonl 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.05; done
kill -TERM "$pid"
wait "$pid" || fail "sink exited with $?"
pid=""

rows=$(sqlite3 records.db "SELECT hex(payload), captured_len, payload_len, truncated, grp, transport, local_ip,
  remote_ip, close_reason FROM connections ORDER BY payload_len DESC")
expected="68656C6C6F207371|8|12|1|sdk|tcp|127.0.0.1|127.0.0.1|client_fin
00FF01FE|4|4|0|sdk|tcp|127.0.0.1|127.0.0.1|client_fin
|0|0|0|sdk|tcp|127.0.0.1|127.0.0.1|client_fin"
[ "$rows" = "$expected" ] || fail "rows were:
$rows
expected:
$expected"

# Every connection is in both outputs, with the same ports and times.
db=$(sqlite3 records.db "SELECT remote_port || ' ' || ts_ms || ' ' || local_port FROM connections ORDER BY remote_port")
js=$(python3 -c '
import json
for r in sorted((json.loads(l) for l in open("records.jsonl")), key=lambda r: r["remote_port"]):
    print(r["remote_port"], r["ts_ms"], r["local_port"])')
[ "$db" = "$js" ] || fail "sqlite and jsonl disagree:
$db
---
$js"
# The walk-through analyzer's extras reached both outputs.
firsts=$(python3 -c '
import json
for r in sorted((json.loads(l) for l in open("records.jsonl")), key=lambda r: r["payload_len"]):
    print(r["extra"].get("first_byte"), r["extra"].get("first_byte_printable"))')
[ "$firsts" = "None None
0 False
104 True" ] || fail "first_byte extras were: $firsts"
[ "$(sqlite3 records.db "SELECT count(*) FROM extras WHERE key = 'first_byte'")" = 2 ] || fail "first_byte not in sqlite"
ids=$(sqlite3 records.db "SELECT count(DISTINCT record_id) FROM connections WHERE length(record_id) = 36")
[ "$ids" = 3 ] || fail "expected 3 distinct record ids, got $ids"
echo "ok: 3 rows in SQLite match the jsonl records"
