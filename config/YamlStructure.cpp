#include "YamlStructure.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <sstream>
#include <vector>

#include "ConfigError.h"

namespace sink {
namespace {

// Deeper than any sink config needs; far below what overflows a stack.
constexpr size_t kMaxDepth = 64;

class StructureCheck : public YAML::EventHandler {
public:
  explicit StructureCheck(std::string source) : source_(std::move(source)) {}

  void OnDocumentStart(const YAML::Mark &) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &mark, YAML::anchor_t) override { value(mark, "~"); }
  void OnAlias(const YAML::Mark &mark, YAML::anchor_t) override {
    fail(mark, "aliases (*name) are not supported in sink configs; write the value out");
  }
  void OnScalar(const YAML::Mark &mark, const std::string &, YAML::anchor_t, const std::string &v) override {
    value(mark, v);
  }
  void OnSequenceStart(const YAML::Mark &mark, const std::string &, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    open(mark, false);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark &mark, const std::string &, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    open(mark, true);
  }
  void OnMapEnd() override { close(); }

private:
  struct Frame {
    bool map = false;
    bool expecting_key = true; // maps: the next node is a key
    std::set<std::string> keys;
    std::string key;  // maps: the current key
    size_t index = 0; // sequences: the current index
  };

  [[noreturn]] void fail(const YAML::Mark &mark, const std::string &what) const {
    std::string where = source_;
    if (mark.line >= 0) where += ":" + std::to_string(mark.line + 1);
    const std::string key = path();
    throw ConfigError(where + ": " + (key.empty() ? "(top level)" : key) + ": " + what);
  }
  std::string path() const {
    std::string p;
    for (const auto &f : stack_) {
      if (f.map) {
        if (!f.key.empty()) p += (p.empty() ? "" : ".") + f.key;
      } else {
        p += "[" + std::to_string(f.index) + "]";
      }
    }
    return p;
  }
  // A node in value position is done: maps expect a key again, sequences move on.
  void finished_value() {
    if (stack_.empty()) return;
    Frame &f = stack_.back();
    if (f.map)
      f.expecting_key = true;
    else
      ++f.index;
  }
  void value(const YAML::Mark &mark, const std::string &v) {
    if (!stack_.empty() && stack_.back().map && stack_.back().expecting_key) {
      Frame &f = stack_.back();
      if (!f.keys.insert(v).second) {
        f.key = v;
        fail(mark, "duplicate key (it appears earlier in the same mapping; each key may appear once)");
      }
      f.key = v;
      f.expecting_key = false;
      return;
    }
    finished_value();
  }
  void open(const YAML::Mark &mark, bool map) {
    if (!stack_.empty() && stack_.back().map && stack_.back().expecting_key)
      fail(mark,
           std::string("a ") + (map ? "mapping" : "list") + " used as a key (keys must be plain names)");
    if (stack_.size() >= kMaxDepth)
      fail(mark, "nested more than " + std::to_string(kMaxDepth) + " levels deep");
    Frame f;
    f.map = map;
    stack_.push_back(std::move(f));
  }
  void close() {
    stack_.pop_back();
    finished_value();
  }

  std::string source_;
  std::vector<Frame> stack_;
};

} // namespace

void check_yaml_structure(const std::string &text, const std::string &source) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  StructureCheck check(source);
  try {
    // One document, as YAML::Load reads. (Looping "while there are more"
    // never ends on some malformed input, e.g. ",#e": yaml-cpp keeps
    // reporting empty documents.)
    parser.HandleNextDocument(check);
  } catch (const YAML::ParserException &e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
}

} // namespace sink
