// Config rules for vantage points: groups sharing a listener by dialed port,
// transparent listeners, public_ip, firewall keys, user.
#include <gtest/gtest.h>

#include <chrono>

#include "ConfigErrorOf.h"
#include "ConfigError.h"
#include "YamlConfig.h"

using sink::parse_yaml_config;

namespace {

std::string error_of(const std::string &text) { return sinktest::config_error_of(text); }

std::string with(const std::string &groups_body, const std::string &top = "") {
  return top + "groups:\n" + groups_body + "outputs:\n  - plugin: csv\n";
}

const std::string kShared =
    "  - name: tls\n    transport: tls\n    ports: 12345\n    redirect_from: \"443,8443\"\n"
    "  - name: rest\n    ports: 12345\n    redirect_from: \"10000-65000\"\n"
    "  - name: direct\n    ports: 12345\n";

} // namespace

TEST(VantageConfig, GroupsShareOneListenerByDialedPort) {
  EXPECT_EQ(error_of(with(kShared)), "");
  auto c = parse_yaml_config(with(kShared), "t.yaml");
  ASSERT_EQ(c.groups.size(), 3u);
  EXPECT_EQ(c.groups[0].redirect_from, (std::vector<uint16_t>{443, 8443}));
  EXPECT_EQ(c.groups[1].redirect_from.size(), 55001u);
  EXPECT_TRUE(c.groups[2].redirect_from.empty());
  auto back = parse_yaml_config(sink::render_yaml_config(c), "rendered");
  EXPECT_EQ(back.groups[1].redirect_from, c.groups[1].redirect_from);
}

TEST(VantageConfig, SharedListenerMistakesNameTheKeyAndLine) {
  EXPECT_EQ(
      error_of(with("  - name: a\n    ports: 12345\n    redirect_from: \"1000-2000\"\n"
                    "  - name: b\n    ports: 12345\n    redirect_from: \"2000-3000\"\n")),
      "t.yaml:5: groups[1].redirect_from: dialed port 2000 is also claimed by group \"a\" (line 2) on the "
      "same listener (port 12345); redirect_from ranges on one listener must not overlap");
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 12345\n  - name: b\n    ports: 12345\n"
                    "  - name: c\n    ports: 12345\n    redirect_from: 80\n"))
          .find("groups[1].ports: port 12345 on all addresses is already taken by group \"a\" (line 2)"),
      std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 12345\n    redirect_from: 80\n"
                          "  - name: b\n    ports: 12345\n  - name: c\n    ports: 12345\n"))
                .find("already taken by group \"b\""),
            std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 12345\n    redirect_from: 80\n"
                          "  - name: b\n    ports: 12345\n    transparent: true\n"))
                .find("groups[1].transparent: group \"a\" (line 2) shares this listener"),
            std::string::npos);
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: \"12345,12346\"\n    redirect_from: 80\n"))
          .find(
              "t.yaml:3: groups[0].ports: a group with redirect_from needs exactly one fixed listener port"),
      std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 0\n    redirect_from: 80\n")).find("exactly one fixed"),
            std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 1\n    redirect_from: \"70000\"\n"))
                .find("groups[0].redirect_from"),
            std::string::npos);
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 1\n    redirect_from: 0\n")).find("port 0 cannot be dialed"),
      std::string::npos);
  // Different listen lists may not overlap on a port, even with redirect_from.
  EXPECT_NE(error_of(with("  - name: a\n    ports: 12345\n    redirect_from: 80\n"
                          "  - name: b\n    listen: 127.0.0.1\n    ports: 12345\n    redirect_from: 81\n"))
                .find("is already taken by group \"a\""),
            std::string::npos);
}

TEST(VantageConfig, AddressesAreComparedParsed) {
  EXPECT_NE(error_of(with("  - name: a\n    listen: \"::1\"\n    ports: 80\n"
                          "  - name: b\n    listen: \"0:0:0:0:0:0:0:1\"\n    ports: 80\n"))
                .find("already taken"),
            std::string::npos);
  // Written differently, still one listener to share.
  EXPECT_EQ(error_of(with("  - name: a\n    listen: \"fd00::1\"\n    ports: 80\n    redirect_from: 1000\n"
                          "  - name: b\n    listen: \"fd00:0::1\"\n    ports: 80\n")),
            "");
  EXPECT_NE(error_of(with("  - name: a\n    listen: \"::ffff:127.0.0.1\"\n    ports: 80\n"))
                .find("groups[0].listen: \"::ffff:127.0.0.1\" is an IPv4-mapped IPv6 address"),
            std::string::npos);
}

TEST(VantageConfig, DialedPortsGoToOneListenerAndStealNoListenerPort) {
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 24000\n    redirect_from: 5000-5100\n"
                    "  - name: b\n    ports: 24001\n    redirect_from: 5100-5200\n"))
          .find("t.yaml:5: groups[1].redirect_from: dialed port 5100 is also redirected by group \"a\""),
      std::string::npos);
  // Different families may split a dialed range between two listeners.
  EXPECT_EQ(error_of(with(
                "  - name: a\n    listen: 0.0.0.0\n    ports: 24000\n    redirect_from: 5000-5100\n"
                "  - name: b\n    listen: \"fd00::1\"\n    ports: 24001\n    redirect_from: 5000-5100\n")),
            "");
  EXPECT_NE(error_of(with("  - name: a\n    ports: 12345\n    redirect_from: 400-500\n"
                          "  - name: b\n    ports: 443\n"))
                .find("dialed port 443 is the listening port of group \"b\""),
            std::string::npos);
  EXPECT_NE(
      error_of(with("  - name: a\n    listen: 127.0.0.1\n    ports: 12345\n    redirect_from: 400-500\n"))
          .find("is a loopback address, which redirected traffic from outside cannot reach"),
      std::string::npos);
}

TEST(VantageConfig, HostKeys) {
  EXPECT_EQ(error_of(with("  - name: a\n    ports: 80\n",
                          "public_ip: [203.0.113.7, \"2001:db8::7\"]\nfirewall: {exclude_ports: [22, 2222], "
                          "sources: [192.0.2.0/24, \"2001:db8::/32\", 198.51.100.1]}\n")),
            "");
  EXPECT_NE(error_of(with("  - name: a\n    ports: 80\n", "public_ip: [203.0.113.7, 203.0.113.8]\n"))
                .find("t.yaml:1: public_ip: at most one IPv4 and one IPv6"),
            std::string::npos);
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 80\n", "public_ip: example.org\n")).find("not an IPv4 or IPv6"),
      std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 80\n", "firewall: {sources: [192.0.2.0/33]}\n"))
                .find("t.yaml:1: firewall.sources: \"192.0.2.0/33\" has a bad prefix length"),
            std::string::npos);
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 80\n", "firewall: {exclude: [22]}\n")).find("firewall.exclude"),
      std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 80\n", "user: no-such-user-xyz\n"))
                .find("t.yaml:1: user: no such user \"no-such-user-xyz\""),
            std::string::npos);
  auto c = parse_yaml_config(with("  - name: a\n    ports: 80\n", "firewall: {exclude_ports: []}\n"), "t");
  EXPECT_TRUE(c.firewall.exclude_ports.empty()) << "an explicit empty list means: exclude nothing";
  auto d = parse_yaml_config(with("  - name: a\n    ports: 80\n"), "t");
  EXPECT_EQ(d.firewall.exclude_ports, std::vector<uint16_t>{22}) << "SSH is excluded by default";
}

TEST(VantageConfig, FullPortRangeOnThreeAddressesValidatesFast) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of(with("  - name: a\n    listen: [127.0.0.1, 127.0.0.2, \"::1\"]\n    ports: 1-65535\n")),
            "");
  // Not a timing assertion (benchmarks time things); a hang here would be the old quadratic check.
  (void)t0;
}

TEST(ConfigRules, DuplicatesAliasesAndOddShapesAreRefusedWithTheirLine) {
  EXPECT_EQ(
      error_of("groups: [{name: a, ports: 1}]\ngroups: [{name: b, ports: 2}]\noutputs: [{plugin: csv}]\n"),
      "t.yaml:2: groups: duplicate key (it appears earlier in the same mapping; each key may appear once)");
  EXPECT_NE(error_of(with("  - name: a\n    ports: 1\n    timeout: 5s\n    timeout: 10s\n"))
                .find("t.yaml:5: groups[0].timeout: duplicate key"),
            std::string::npos);
  EXPECT_NE(error_of("groups: [{name: a, ports: 1}]\noutputs:\n  - plugin: csv\n    path: a\n    path: b\n")
                .find("t.yaml:5: outputs[0].path: duplicate key"),
            std::string::npos);
  // An alias bomb is refused before anything expands it.
  std::string bomb = "      a: &a [x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'i'; ++c)
    bomb += std::string("      ") + c + ": &" + c + " [*" + char(c - 1) + ", *" + char(c - 1) + ", *" +
            char(c - 1) + "]\n";
  EXPECT_NE(error_of("groups: [{name: a, ports: 1}]\noutputs:\n  - plugin: csv\n    junk:\n" + bomb)
                .find("t.yaml:6: outputs[0].junk.b[0]: aliases (*name) are not supported"),
            std::string::npos)
      << error_of("groups: [{name: a, ports: 1}]\noutputs:\n  - plugin: csv\n    junk:\n" + bomb);
  EXPECT_NE(error_of("? [a]\n: 1\n").find("a list used as a key"), std::string::npos);
}

TEST(ConfigRules, OneRuleForBooleansDurationsAndLists) {
  EXPECT_EQ(error_of(with("  - name: a\n    ports: 1\n", "log: {connections: TRUE}\n")), "");
  EXPECT_NE(error_of(with("  - name: a\n    ports: 1\n", "log: {connections: yes}\n"))
                .find("expected true or false"),
            std::string::npos);
  auto c = parse_yaml_config(
      "groups: [{name: a, ports: 1}]\noutputs: [{plugin: csv, header: True, flush: FALSE}]\n", "t");
  EXPECT_EQ(c.outputs[0].options["header"], true) << "plugin options follow the same rule";
  EXPECT_EQ(c.outputs[0].options["flush"], false);
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 1\n", "stats_interval: 1us\n")).find("must be at least 1s"),
      std::string::npos);
  EXPECT_EQ(error_of(with("  - name: a\n    ports: 1\n", "stats_interval: 0\n")), "");
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 1\n    idle_timeout: 500ns\n")).find("must be at least 1ms"),
      std::string::npos);
  EXPECT_NE(
      error_of(with("  - name: a\n    ports: 1\n    listen: []\n")).find("an empty list is not allowed"),
      std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: []\n")).find("groups[0].ports"), std::string::npos);
  EXPECT_NE(error_of(with("  - name: a\n    ports: 1\n", "plugin_path: []\n")).find("plugin_path"),
            std::string::npos);
}
