#include <gtest/gtest.h>

#include "ConfigErrorOf.h"
#include "ConfigError.h"
#include "YamlConfig.h"

using namespace std::chrono_literals;
using sink::parse_yaml_config;

namespace {

const char *kTwoGroups = R"(log: {path: sink.log, level: debug}
plugin_path: [./build/plugins]
groups:
  - name: web
    transport: tcp
    listen: 127.0.0.1
    ports: "8080,9000-9002"
    timeout: 5s
    idle_timeout: 2s
    capture_bytes: 100
  - name: all
    listen: ["::1", 127.0.0.2]
    ports: [22, "2222-2223", 8080]
outputs:
  - plugin: csv
    path: records.csv
    header: true
  - plugin: jsonl
    path: 'records.jsonl'
    flush: false
)";

std::string error_of(const std::string &text) { return sinktest::config_error_of(text); }

std::string with(const std::string &groups_body) {
  return "groups:\n" + groups_body + "outputs:\n  - plugin: csv\n";
}

} // namespace

TEST(YamlConfig, ReadsEveryKey) {
  auto c = parse_yaml_config(kTwoGroups, "t.yaml");
  EXPECT_EQ(c.log.path, "sink.log");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.plugin_path, std::vector<std::string>{"./build/plugins"});
  ASSERT_EQ(c.groups.size(), 2u);
  const auto &web = c.groups[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.line, 4);
  EXPECT_EQ(web.listen, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(web.ports, (std::vector<uint16_t>{8080, 9000, 9001, 9002}));
  EXPECT_EQ(web.timeout, 5s);
  EXPECT_EQ(web.idle_timeout, 2s);
  EXPECT_EQ(web.capture_bytes, 100u);
  const auto &all = c.groups[1];
  EXPECT_EQ(all.transport, "tcp");
  EXPECT_EQ(all.listen, (std::vector<std::string>{"::1", "127.0.0.2"}));
  EXPECT_EQ(all.ports, (std::vector<uint16_t>{22, 2222, 2223, 8080}));
  EXPECT_EQ(all.timeout, 60s);
  EXPECT_EQ(all.capture_bytes, 2048u);
  ASSERT_EQ(c.outputs.size(), 2u);
  EXPECT_EQ(c.outputs[0].options, (nlohmann::json{{"path", "records.csv"}, {"header", true}}));
  EXPECT_EQ(c.outputs[1].options, (nlohmann::json{{"path", "records.jsonl"}, {"flush", false}}));
}

TEST(YamlConfig, RoundTripsThroughRender) {
  auto c = parse_yaml_config(kTwoGroups, "t.yaml");
  auto back = parse_yaml_config(sink::render_yaml_config(c), "rendered");
  ASSERT_EQ(back.groups.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.groups[i].ports, c.groups[i].ports);
    EXPECT_EQ(back.groups[i].listen, c.groups[i].listen);
    EXPECT_EQ(back.groups[i].timeout, c.groups[i].timeout);
    EXPECT_EQ(back.groups[i].idle_timeout, c.groups[i].idle_timeout);
  }
  EXPECT_EQ(back.outputs[1].options, c.outputs[1].options);
}

TEST(YamlConfig, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string text, expected;
  } cases[] = {
      {with("  - name: a\n    ports: 70000\n"),
       "t.yaml:3: groups[0].ports: port 70000 is out of range 0-65535"},
      {with("  - name: a\n    ports: 5-3\n"), "t.yaml:3: groups[0].ports: range 5-3"},
      {with("  - name: a\n    ports: abc\n"), "t.yaml:3: groups[0].ports: \"abc\""},
      {with("  - name: a\n    ports: 80\n    timeout: 5\n"),
       "t.yaml:4: groups[0].timeout: invalid duration \"5\""},
      {with("  - name: a\n    ports: 80\n    timout: 5s\n"), "t.yaml:4: groups[0].timout: unknown key"},
      {with("  - name: a\n"), "t.yaml:2: groups[0].ports: missing required key"},
      {with("  - ports: 80\n"), "t.yaml:2: groups[0].name: missing required key"},
      {with("  - name: a\n    ports: 80\n    capture_bytes: -1\n"), "t.yaml:4: groups[0].capture_bytes"},
      {with("  - name: a\n    ports: 80\n    listen: nowhere\n"), "t.yaml:2: groups[0].listen: \"nowhere\""},
      {with("  - name: a\n    ports: 80\n  - name: b\n    ports: 80\n"),
       "t.yaml:4: groups[1].ports: port 80"},
      {with("  - name: a\n    ports: 80\n  - name: a\n    ports: 81\n"), "t.yaml:4: groups[1].name"},
      {"groups: [{name: a, ports: 80}]\n", "t.yaml:1: outputs: missing required key"},
      {"groups: [{name: a, ports: 80}]\noutputs: [{path: x}]\n",
       "t.yaml:2: outputs[0].plugin: missing required key"},
      {"bogus: 1\n" + with("  - name: a\n    ports: 80\n"), "t.yaml:1: bogus: unknown key"},
      {"log: {level: loud}\n" + with("  - name: a\n    ports: 80\n"), "t.yaml: log.level: \"loud\""},
      {"groups: [\n", "t.yaml:2: invalid YAML"},
      {"", "t.yaml: the file is empty"},
  };
  for (const auto &c : cases) {
    std::string e = error_of(c.text);
    EXPECT_EQ(e.rfind(c.expected, 0), 0u) << "got: " << e << "\nwanted prefix: " << c.expected;
  }
}

TEST(YamlConfig, OverlappingAddressesConflict) {
  // A wildcard group takes the port on every address.
  EXPECT_NE(error_of(with("  - name: a\n    ports: 80\n  - name: b\n    listen: 127.0.0.1\n    ports: 80\n")),
            "");
  EXPECT_NE(
      error_of(with("  - name: a\n    listen: 0.0.0.0\n    ports: 80\n  - name: b\n    listen: 127.0.0.1\n"
                    "    ports: 80\n")),
      "");
  // Different addresses, or different families, may share a port.
  EXPECT_EQ(
      error_of(with("  - name: a\n    listen: 127.0.0.1\n    ports: 80\n  - name: b\n    listen: 127.0.0.2\n"
                    "    ports: 80\n")),
      "");
  EXPECT_EQ(
      error_of(with("  - name: a\n    listen: 0.0.0.0\n    ports: 80\n  - name: b\n    listen: \"::1\"\n"
                    "    ports: 80\n")),
      "");
  // Ephemeral ports never collide.
  EXPECT_EQ(error_of(with("  - name: a\n    ports: 0\n  - name: b\n    ports: 0\n")), "");
}

TEST(YamlConfig, TransportOptionsBlockNamedAfterTransport) {
  auto c =
      parse_yaml_config(with("  - name: a\n    transport: tls\n    ports: 443\n    tls: {cert: c.pem, key: "
                             "k.pem}\n"),
                        "t.yaml");
  EXPECT_EQ(c.groups[0].transport_options, (nlohmann::json{{"cert", "c.pem"}, {"key", "k.pem"}}));
  EXPECT_NE(error_of(with("  - name: a\n    ports: 443\n    tls: {cert: c.pem}\n")), "");
}

TEST(YamlConfig, ScalarsKeepTheirTypesForPlugins) {
  auto c = parse_yaml_config(
      "groups: [{name: a, ports: 1}]\noutputs:\n  - plugin: x\n    n: 5\n    f: 1.5\n    b: "
      "false\n    s: '5'\n    t: text\n",
      "t.yaml");
  EXPECT_EQ(c.outputs[0].options,
            (nlohmann::json{{"n", 5}, {"f", 1.5}, {"b", false}, {"s", "5"}, {"t", "text"}}));
}
