# Shared by the out-of-tree SDK tests (sourced): a scratch directory removed
# at exit (KEEP=1 keeps it), a sink started there stopped at exit, fail(),
# and the SDK installed into "$work/prefix".
# Needs: src (source dir), build (build dir).
set -euo pipefail
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
  return 0
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null

# build_example DIR PLUGIN.so: builds examples/DIR against the installed SDK
# into $work/plugin and checks the plugin exports exactly the entry symbol.
build_example() {
  cmake -S "$src/examples/$1" -B "$work/plugin" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
  cmake --build "$work/plugin" 2>&1 | tee "$work/build.log" >/dev/null
  ! grep -q "warning:" "$work/build.log" || fail "warnings building examples/$1: $(cat "$work/build.log")"
  local exports
  exports=$(nm -D --defined-only "$work/plugin/$2" | awk '{print $3}')
  [ "$exports" = "sink_plugin_entry" ] || fail "plugin exports: $exports"
}
