#include "PluginLoader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

namespace sink {
namespace fs = std::filesystem;

namespace {

// The smallest descriptor / ops tables an ABI 1.x plugin can have.
constexpr size_t kMinDescriptorSize = offsetof(sink_plugin_descriptor, transport) + sizeof(void *);
constexpr size_t kMinOutputOpsSize = offsetof(sink_output_ops, destroy) + sizeof(void *);
constexpr size_t kMinTransportOpsSize = offsetof(sink_transport_ops, reads_plain_socket) + sizeof(int);
// Analyzers arrived with ABI 1.1: their descriptor must reach that far.
constexpr size_t kMinAnalyzerDescriptorSize = offsetof(sink_plugin_descriptor, analyzer) + sizeof(void *);
constexpr size_t kMinAnalyzerOpsSize = offsetof(sink_analyzer_ops, destroy) + sizeof(void *);

std::string abi_text(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

const char *kind_name(sink_plugin_kind k) {
  return k == SINK_PLUGIN_OUTPUT      ? "an output"
         : k == SINK_PLUGIN_TRANSPORT ? "a transport"
         : k == SINK_PLUGIN_ANALYZER  ? "an analyzer"
                                      : "an unknown kind of";
}

} // namespace

PluginLoader::PluginLoader(std::vector<std::string> search_path) : search_path_(std::move(search_path)) {}

std::vector<std::string> PluginLoader::default_search_path() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {"plugins"};
  fs::path dir = exe.parent_path();
  return {(dir / "plugins").string(), (dir / SINK_PLUGIN_DIR_FROM_BINDIR).lexically_normal().string()};
}

std::string PluginLoader::resolve(const std::string &name) const {
  if (name.find('/') != std::string::npos || fs::path(name).extension() == ".so") {
    std::error_code ec;
    if (!fs::exists(name, ec))
      throw PluginError(
          name + (ec ? ": cannot look at the plugin file: " + ec.message() : ": plugin file does not exist"));
    return name;
  }
  std::string looked;
  for (const auto &dir : search_path_) {
    fs::path candidate = fs::path(dir) / (name + ".so");
    std::error_code ec;
    if (fs::exists(candidate, ec)) return candidate.string();
    // A directory we may not search (e.g. after a user switch) is said, not thrown.
    if (ec) throw PluginError(candidate.string() + ": cannot look at the plugin file: " + ec.message());
    looked += (looked.empty() ? "" : ", ") + candidate.string();
  }
  throw PluginError("unknown plugin \"" + name + "\" (looked for " + looked + ")");
}

const LoadedPlugin &PluginLoader::load_for(const std::string &where, const std::string &name_or_path,
                                           sink_plugin_kind kind) {
  try {
    return load(name_or_path, kind);
  } catch (const PluginError &e) {
    throw PluginError(where + ": " + e.what());
  }
}

const LoadedPlugin &PluginLoader::load(const std::string &name_or_path, sink_plugin_kind kind) {
  const std::string file = resolve(name_or_path);
  std::error_code ec;
  std::string canonical = fs::canonical(file, ec).string();
  if (ec) canonical = file;
  auto found = by_file_.find(canonical);
  if (found == by_file_.end()) {
    // RTLD_LOCAL: plugins never see each other's symbols. Never dlclose:
    // thread-local and atexit destructors inside a plugin outlive any unload.
    void *handle = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw PluginError(file + ": not a loadable plugin: " + dlerror());
    auto entry = reinterpret_cast<sink_plugin_entry_fn>(dlsym(handle, SINK_PLUGIN_ENTRY_SYMBOL));
    if (!entry) throw PluginError(file + ": not a sink plugin: it does not export " SINK_PLUGIN_ENTRY_SYMBOL);
    const sink_plugin_descriptor *d = entry();
    if (!d) throw PluginError(file + ": " SINK_PLUGIN_ENTRY_SYMBOL " returned no descriptor");
    const std::string host_abi = abi_text(SINK_ABI_MAJOR, SINK_ABI_MINOR);
    if (d->abi_major != SINK_ABI_MAJOR)
      throw PluginError(file + ": built for plugin ABI " + abi_text(d->abi_major, d->abi_minor) +
                        ", this sink supports ABI " + host_abi +
                        " (rebuild the plugin against this sink's SDK)");
    if (d->abi_minor > SINK_ABI_MINOR)
      throw PluginError(file + ": needs plugin ABI " + abi_text(d->abi_major, d->abi_minor) +
                        " or newer, this sink provides ABI " + host_abi + " (upgrade sink)");
    if (d->struct_size < kMinDescriptorSize)
      throw PluginError(file + ": descriptor is " + std::to_string(d->struct_size) +
                        " bytes, smaller than ABI " + std::to_string(SINK_ABI_MAJOR) + ".0 requires");
    if (!d->name || !*d->name) throw PluginError(file + ": descriptor has no name");
    if (d->kind == SINK_PLUGIN_OUTPUT) {
      const auto *o = d->output;
      if (!o || o->struct_size < kMinOutputOpsSize || !o->create || !o->write || !o->flush || !o->destroy)
        throw PluginError(file + ": output plugin \"" + d->name +
                          "\" has an incomplete sink_output_ops table");
    } else if (d->kind == SINK_PLUGIN_TRANSPORT) {
      const auto *t = d->transport;
      if (!t || t->struct_size < kMinTransportOpsSize || !t->create || !t->accept || !t->destroy)
        throw PluginError(file + ": transport plugin \"" + d->name +
                          "\" has an incomplete sink_transport_ops table");
    } else if (d->kind == SINK_PLUGIN_ANALYZER) {
      if (d->abi_minor < 1 || d->struct_size < kMinAnalyzerDescriptorSize)
        throw PluginError(file + ": analyzer plugin \"" + d->name +
                          "\" must ask for ABI 1.1 or newer (it asks for " +
                          abi_text(d->abi_major, d->abi_minor) + ")");
      const auto *a = d->analyzer;
      if (!a || a->struct_size < kMinAnalyzerOpsSize || !a->create || !a->analyze || !a->destroy)
        throw PluginError(file + ": analyzer plugin \"" + d->name +
                          "\" has an incomplete sink_analyzer_ops table");
    } else {
      throw PluginError(file + ": descriptor has unknown plugin kind " + std::to_string(d->kind));
    }
    if (auto dup = by_name_.find(d->name); dup != by_name_.end())
      throw PluginError(file + ": plugin name \"" + d->name + "\" is already taken by " + dup->second);
    by_name_[d->name] = canonical;

    found = by_file_.emplace(canonical, LoadedPlugin{file, d}).first;
  }
  const LoadedPlugin &p = found->second;
  if (p.descriptor->kind != kind)
    throw PluginError(p.file + ": \"" + p.descriptor->name + "\" is " + kind_name(p.descriptor->kind) +
                      " plugin, not " + kind_name(kind) + " plugin");
  return p;
}

} // namespace sink
