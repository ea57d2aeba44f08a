// The text of the generated firewall rules: what they redirect, exclude and
// drop. That the text loads and works is tested in tests/netns (real nft).
#include <gtest/gtest.h>

#include "FirewallRules.h"
#include "YamlConfig.h"

using namespace sink::firewall;

namespace {
sink::Config load(const std::string &extra_groups, const std::string &top = "") {
  return sink::parse_yaml_config(top + "groups:\n" + extra_groups + "outputs:\n  - plugin: csv\n", "fw.yaml");
}
const std::string kShared =
    "  - name: tls\n    transport: tls\n    ports: 12345\n    redirect_from: \"443,8443\"\n"
    "  - name: rest\n    ports: 12345\n    redirect_from: \"10000-65000\"\n"
    "  - name: web\n    ports: 80\n";
} // namespace

TEST(FirewallRules, PortRangesCompress) {
  EXPECT_EQ(port_ranges({5, 1, 2, 3, 9, 10, 3}),
            (std::vector<std::pair<uint16_t, uint16_t>>{{1, 3}, {5, 5}, {9, 10}}));
  EXPECT_TRUE(port_ranges({}).empty());
}

TEST(FirewallRules, NftScriptReplacesOneTableAndRedirectsEachGroup) {
  const std::string s = nft_script(load(kShared));
  // Idempotent replacement in one transaction.
  EXPECT_NE(s.find("\ntable inet sink {}\ndelete table inet sink\ntable inet sink {\n"), std::string::npos)
      << s;
  EXPECT_NE(s.find("tcp dport { 443, 8443 } redirect to :12345"), std::string::npos) << s;
  EXPECT_NE(s.find("tcp dport { 10000-65000 } redirect to :12345"), std::string::npos) << s;
  EXPECT_NE(s.find("elements = { 22 }"), std::string::npos) << "SSH excluded by default\n" << s;
  EXPECT_NE(s.find("tcp dport @exclude_ports return"), std::string::npos);
  // RSTs matched by listener ports, never by the dialed range.
  EXPECT_NE(s.find("tcp sport { 80, 12345 } tcp flags & rst == rst drop"), std::string::npos) << s;
  EXPECT_EQ(s.find("tcp sport { 10000"), std::string::npos);
  EXPECT_NE(s.find("icmp code { port-unreachable, admin-prohibited } drop"), std::string::npos);
  EXPECT_EQ(s.find("frag-needed"), std::string::npos) << "path MTU discovery keeps working";
  EXPECT_EQ(s.find("tproxy"), std::string::npos);
  EXPECT_GE(std::count(s.begin(), s.end(), '#'), 8);
}

TEST(FirewallRules, SourcesSpecificAddressesAndTransparentGroups) {
  const std::string s =
      nft_script(load("  - name: a\n    listen: 192.0.2.10\n    ports: 12345\n    redirect_from: 1000-2000\n"
                      "  - name: tp\n    ports: 7777\n    transparent: true\n    redirect_from: 5000\n",
                      "firewall: {sources: [198.51.100.0/24]}\n"));
  EXPECT_NE(s.find("set sources_v4"), std::string::npos) << s;
  EXPECT_EQ(s.find("set sources_v6"), std::string::npos) << s;
  EXPECT_NE(
      s.find("meta nfproto ipv4 ip saddr @sources_v4 tcp dport { 1000-2000 } dnat ip to 192.0.2.10:12345"),
      std::string::npos)
      << s;
  EXPECT_NE(s.find("tproxy ip to :7777 meta mark set 0x534b ct mark set 0x534b accept"), std::string::npos)
      << s;
  EXPECT_EQ(s.find("tproxy ip6"), std::string::npos) << "no IPv6 sources, no IPv6 tproxy\n" << s;
  EXPECT_NE(s.find("ct mark 0x534b tcp flags & rst == rst drop"), std::string::npos) << s;
  EXPECT_TRUE(needs_policy_routing(load("  - name: tp\n    ports: 7777\n    transparent: true\n"
                                        "    redirect_from: 5000\n")));
  EXPECT_FALSE(needs_policy_routing(load(kShared)));
}

TEST(FirewallRules, IptablesText) {
  const std::string s = iptables_script(load(kShared));
  EXPECT_NE(s.find("-A SINK_PREROUTING -p tcp --dport 22 -j RETURN"), std::string::npos) << s;
  EXPECT_NE(s.find("-A SINK_PREROUTING -p tcp --dport 10000:65000 -j REDIRECT --to-ports 12345"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("-A SINK_OUTPUT -p tcp --sport 12345 --tcp-flags RST RST -j DROP"), std::string::npos)
      << s;
  size_t tables = 0;
  for (size_t at = 0; (at = s.find("\n*", at)) != std::string::npos; ++at)
    ++tables;
  EXPECT_EQ(tables, 6u) << "nat, mangle, filter for each family";
  EXPECT_EQ(s.find(" #"), std::string::npos) << "iptables-restore takes comments on lines of their own";
}

TEST(FirewallRules, SshSessionGuard) {
  auto c = load(kShared, "firewall: {exclude_ports: [22, 20022]}\n");
  EXPECT_NE(redirects_ssh_session(c, "203.0.113.5 51000 192.0.2.1 10022").find("dialed port 10022"),
            std::string::npos);
  EXPECT_EQ(redirects_ssh_session(c, "203.0.113.5 51000 192.0.2.1 20022"), "") << "excluded";
  EXPECT_EQ(redirects_ssh_session(c, "203.0.113.5 51000 192.0.2.1 22"), "") << "not redirected";
  EXPECT_EQ(redirects_ssh_session(c, "garbage"), "");
  auto only = load(kShared, "firewall: {sources: [198.51.100.0/24]}\n");
  EXPECT_EQ(redirects_ssh_session(only, "203.0.113.5 51000 192.0.2.1 10022"), "") << "source not redirected";
  EXPECT_NE(redirects_ssh_session(only, "198.51.100.9 51000 192.0.2.1 10022"), "");
}

TEST(FirewallRules, TheMetricsPortIsNeverRedirected) {
  auto c = sink::parse_yaml_config("metrics: {listen: 0.0.0.0:9464}\n"
                                   "groups:\n  - {name: g, ports: 8000, redirect_from: 1-65535}\n"
                                   "outputs:\n  - plugin: csv\n",
                                   "fw.yaml");
  sink::firewall::exclude_metrics_port(c);
  EXPECT_EQ(c.firewall.exclude_ports, (std::vector<uint16_t>{22, 9464}));
  EXPECT_NE(sink::firewall::nft_script(c).find("elements = { 22, 9464 }"), std::string::npos)
      << sink::firewall::nft_script(c);
}
