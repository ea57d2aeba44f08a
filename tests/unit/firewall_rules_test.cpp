// The text of the generated firewall rules: what they redirect, exclude and
// drop. That the text loads and works is tested in tests/netns (real nft).
#include <gtest/gtest.h>

#include <sstream>

#include "ConfigError.h"
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

namespace {
// Lines of text that are neither empty nor comments.
std::vector<std::string> rule_lines(const std::string &text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find_first_not_of('\t');
    if (start != std::string::npos && line[start] != '#') out.push_back(line.substr(start));
  }
  return out;
}
const std::string kEvilName =
    "x\\\"; }\\ntable ip evil { chain c { type filter hook input priority 0; policy drop; } }\\n#{;";
} // namespace

TEST(FirewallRules, ConfigTextNeverReachesRuleTextUnescaped) {
  // The group name and the config path carry a quote, newlines, braces,
  // semicolons and '#': they may appear in comments, escaped, and nowhere else.
  const auto c =
      sink::parse_yaml_config("groups:\n  - name: \"" + kEvilName +
                                  "\"\n    ports: 5555\n    redirect_from: 1000-2000\n"
                                  "  - name: \"tp\\\"\\n{;#\"\n    ports: 7777\n    transparent: true\n"
                                  "    redirect_from: 3000\noutputs:\n  - plugin: csv\n",
                              "dir\n}table ip evil2 {\"#;/fw.yaml");
  ASSERT_NE(c.groups[0].name.find('\n'), std::string::npos) << "the name is what the issue describes";
  for (const std::string &text : {nft_script(c), iptables_script(c)}) {
    for (const auto &line : rule_lines(text))
      EXPECT_EQ(line.find("evil"), std::string::npos) << line << "\n---\n" << text;
    EXPECT_NE(text.find("groups[0] \"x\\x22\\x3b \\x7d\\x0atable ip evil"), std::string::npos) << text;
    EXPECT_NE(text.find("dir\\x0a\\x7dtable ip evil2 \\x7b\\x22\\x23\\x3b/fw.yaml"), std::string::npos)
        << text;
  }
  const std::string nft = nft_script(c);
  for (const auto &line : rule_lines(nft)) {
    if (line.rfind("table", 0) == 0 || line.rfind("delete table", 0) == 0) {
      EXPECT_NE(line.find("table inet sink"), std::string::npos) << line;
    }
  }
  for (const auto &line : rule_lines(iptables_script(c)))
    EXPECT_TRUE(line == "COMMIT" || line[0] == '*' || line[0] == ':' || line.rfind("-A ", 0) == 0) << line;
  EXPECT_EQ(comment_text("a\"\n{;#\\"), "a\\x22\\x0a\\x7b\\x3b\\x23\\x5c");
}

TEST(FirewallRules, ValuesAreWrittenFromTheirParsedForm) {
  auto c = load("  - name: a\n    listen: [\"2001:DB8:0:0::10\", 192.0.2.10]\n    ports: 12345\n"
                "    redirect_from: 1000-2000\n",
                "firewall: {sources: [\"2001:DB8::0/32\", 198.51.100.0/24]}\n");
  const std::string s = nft_script(c);
  EXPECT_NE(s.find("dnat ip6 to [2001:db8::10]:12345"), std::string::npos) << s;
  EXPECT_NE(s.find("elements = { 2001:db8::/32 }"), std::string::npos) << s;
  EXPECT_NE(iptables_script(c).find("-s 2001:db8::/32 -p tcp --dport 1000:2000 -j DNAT --to-destination "
                                    "[2001:db8::10]:12345"),
            std::string::npos)
      << iptables_script(c);
  // A value the YAML reader would refuse, set by hand: refused, not written.
  c.firewall.sources.push_back("1.2.3.4 } table ip evil {");
  EXPECT_THROW(plan_rules(c), sink::ConfigError);
  c.firewall.sources.pop_back();
  c.firewall.interfaces.push_back("eth0\"; drop");
  EXPECT_THROW(plan_rules(c), sink::ConfigError);
}

TEST(FirewallRules, IptablesTproxyHonoursTheFirewallSettings) {
  // The issue's config: a transparent IPv4 group taking dialed ports 1-1000.
  auto c = sink::parse_yaml_config("metrics: {listen: 0.0.0.0:900}\n"
                                   "firewall: {exclude_ports: [22], sources: [192.0.2.0/24]}\n"
                                   "groups:\n  - {name: tp, listen: 0.0.0.0, ports: 12345, transparent: true,"
                                   " redirect_from: \"1-1000\"}\noutputs:\n  - plugin: csv\n",
                                   "fw.yaml");
  exclude_metrics_port(c);
  const std::string text = iptables_script(c);
  const auto split = text.find("# --- ip6tables-restore");
  const std::string v4 = text.substr(0, split), v6 = text.substr(split);
  EXPECT_NE(v4.find("-A SINK_TPROXY -p tcp --dport 22 -j RETURN"), std::string::npos) << v4;
  EXPECT_NE(v4.find("-A SINK_TPROXY -p tcp --dport 900 -j RETURN"), std::string::npos) << v4;
  EXPECT_NE(v4.find("-A SINK_TPROXY -s 192.0.2.0/24 -p tcp --dport 1:1000 -j TPROXY --on-port 12345"),
            std::string::npos)
      << v4;
  EXPECT_EQ(v4.find("-A SINK_TPROXY -p tcp --dport 1:1000"), std::string::npos) << "no rule without -s\n"
                                                                                << v4;
  EXPECT_NE(v4.find("-m connmark --mark 0x534b --tcp-flags RST RST -j DROP"), std::string::npos) << v4;
  EXPECT_EQ(v6.find("TPROXY --on-port"), std::string::npos) << "an IPv4-only group\n" << v6;
  // nftables: the same decisions.
  const std::string nft = nft_script(c);
  EXPECT_NE(nft.find("meta nfproto ipv4 ip saddr @sources_v4 tcp dport { 1-1000 } tproxy ip to :12345"),
            std::string::npos)
      << nft;
  EXPECT_EQ(nft.find("tproxy ip6"), std::string::npos) << nft;
  EXPECT_NE(nft.find("elements = { 22, 900 }"), std::string::npos) << nft;
}

TEST(FirewallRules, OnePlanForBothBackEnds) {
  // Family per listen list: none or "::" both, "0.0.0.0" IPv4 only; a
  // specific address is a DNAT (or TPROXY) target.
  const auto plan = plan_rules(load("  - {name: both, ports: 1, redirect_from: 100}\n"
                                    "  - {name: v4, listen: 0.0.0.0, ports: 2, redirect_from: 200}\n"
                                    "  - {name: dual, listen: \"::\", ports: 3, redirect_from: 300}\n"
                                    "  - {name: v6, listen: \"2001:db8::1\", ports: 4, redirect_from: 400}\n"
                                    "  - {name: tp, listen: 192.0.2.1, ports: 5, transparent: true,"
                                    " redirect_from: 500}\n"));
  ASSERT_EQ(plan.redirects.size(), 5u);
  EXPECT_EQ(plan.redirects[0].family, Family::kBoth);
  EXPECT_EQ(plan.redirects[1].family, Family::kIPv4);
  EXPECT_EQ(plan.redirects[2].family, Family::kBoth);
  EXPECT_EQ(plan.redirects[3].action, Action::kDnat);
  EXPECT_EQ(plan.redirects[3].to_address, "2001:db8::1");
  EXPECT_EQ(plan.redirects[4].action, Action::kTproxy);
  EXPECT_EQ(plan.redirects[4].to_address, "192.0.2.1");
  const std::string v4 = iptables_script(plan).substr(0, iptables_script(plan).find("# --- ip6tables"));
  const std::string v6 = iptables_script(plan).substr(iptables_script(plan).find("# --- ip6tables"));
  for (const char *port : {"100 ", "200 ", "300 ", "500 "})
    EXPECT_NE(v4.find(std::string("--dport ") + port), std::string::npos) << port << "\n" << v4;
  for (const char *port : {"100 ", "300 ", "400 "})
    EXPECT_NE(v6.find(std::string("--dport ") + port), std::string::npos) << port << "\n" << v6;
  EXPECT_EQ(v6.find("--dport 200 "), std::string::npos) << v6;
  EXPECT_NE(v4.find("-j TPROXY --on-port 5 --on-ip 192.0.2.1 --tproxy-mark 0x534b/0xffffffff"),
            std::string::npos)
      << v4;
  const std::string nft = nft_script(plan);
  EXPECT_NE(nft.find("\t\ttcp dport { 100 } redirect to :1\n"), std::string::npos) << nft;
  EXPECT_NE(nft.find("meta nfproto ipv4 tcp dport { 200 } redirect to :2\n"), std::string::npos) << nft;
  EXPECT_NE(nft.find("meta nfproto ipv6 tcp dport { 400 } dnat ip6 to [2001:db8::1]:4\n"), std::string::npos)
      << nft;
  EXPECT_NE(nft.find("tproxy ip to 192.0.2.1:5 meta mark"), std::string::npos) << nft;
}

TEST(FirewallRules, Interfaces) {
  auto c = load(kShared + "  - {name: tp, ports: 7777, transparent: true, redirect_from: 5000}\n",
                "firewall: {interfaces: [eth0, ens3.100]}\n");
  EXPECT_EQ(c.firewall.interfaces, (std::vector<std::string>{"eth0", "ens3.100"}));
  const std::string nft = nft_script(c);
  EXPECT_NE(nft.find("iifname { \"eth0\", \"ens3.100\" } tcp dport { 10000-65000 } redirect to :12345"),
            std::string::npos)
      << nft;
  EXPECT_NE(nft.find("meta nfproto ipv4 iifname { \"eth0\", \"ens3.100\" } tcp dport { 5000 } tproxy"),
            std::string::npos)
      << nft;
  const std::string ipt = iptables_script(c);
  EXPECT_NE(ipt.find("-A SINK_PREROUTING -i eth0 -p tcp --dport 10000:65000 -j REDIRECT"), std::string::npos);
  EXPECT_NE(ipt.find("-A SINK_PREROUTING -i ens3.100 -p tcp --dport 10000:65000 -j REDIRECT"),
            std::string::npos);
  EXPECT_NE(ipt.find("-A SINK_TPROXY -i ens3.100 -p tcp --dport 5000 -j TPROXY"), std::string::npos) << ipt;
  EXPECT_NE(sink::render_yaml_config(c).find("interfaces: [\"eth0\", \"ens3.100\"]"), std::string::npos);
  // Bad names: the file, the line of the entry, the key and what is expected.
  const auto error = [](const std::string &fw) {
    try {
      load(kShared, fw);
    } catch (const sink::ConfigError &e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error("firewall:\n  interfaces:\n    - eth0\n    - \"eth0\\\"; drop\"\n"),
            "fw.yaml:4: firewall.interfaces: \"eth0\"; drop\" is not an interface name (expected letters, "
            "digits, '_', '.' and '-', such as eth0)");
  EXPECT_EQ(error("firewall: {interfaces: averyveryverylongname}\n"),
            "fw.yaml:1: firewall.interfaces: \"averyveryverylongname\" must be 1 to 15 characters long");
  EXPECT_EQ(
      error("firewall: {interfaces: []}\n"),
      "fw.yaml:1: firewall.interfaces: an empty list is not allowed (leave the key out for the default)");
}

TEST(FirewallRules, IptablesRemovalText) {
  const std::string s = iptables_removal_script();
  EXPECT_NE(
      s.find(
          "*nat\n-D PREROUTING -p tcp -j SINK_PREROUTING\n-F SINK_PREROUTING\n-X SINK_PREROUTING\nCOMMIT\n"),
      std::string::npos)
      << s;
  EXPECT_NE(s.find("*filter\n-D OUTPUT -j SINK_OUTPUT\n-F SINK_OUTPUT\n-X SINK_OUTPUT\nCOMMIT\n"),
            std::string::npos);
  EXPECT_NE(s.find("# --- ip6tables-restore --noflush ---\n"), std::string::npos);
}

TEST(FirewallRules, SshGuardFollowsThePlan) {
  // An IPv4-only group does not redirect an IPv6 session, nor one of a
  // source outside firewall.sources.
  auto c = load("  - {name: g, listen: 0.0.0.0, ports: 5555, redirect_from: 1-1000}\n",
                "firewall: {exclude_ports: [], sources: [192.0.2.0/24]}\n");
  EXPECT_NE(redirects_ssh_session(c, "192.0.2.5 50000 10.0.0.1 22")
                .find("groups[0] \"g\" redirects dialed port 22"),
            std::string::npos);
  EXPECT_NE(redirects_ssh_session(c, "::ffff:192.0.2.5 50000 ::ffff:10.0.0.1 22"), "");
  EXPECT_EQ(redirects_ssh_session(c, "198.51.100.1 50000 10.0.0.1 22"), "");
  EXPECT_EQ(redirects_ssh_session(c, "2001:db8::5 50000 2001:db8::1 22"), "");
}
