#include <gtest/gtest.h>

#include "CommandLine.h"
#include "YamlConfig.h"

using namespace std::chrono_literals;
using sink::CommandLine;
using sink::parse_command_line;

namespace {
CommandLine parse(std::vector<std::string> args) { return parse_command_line(args); }

std::string error_of(std::vector<std::string> args) {
  try {
    parse_command_line(args);
  } catch (const sink::ConfigError &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST(LegacyFlags, DefaultsAreTheOriginals) {
  auto cl = parse({});
  EXPECT_EQ(cl.action, CommandLine::Action::kRun);
  const auto &c = cl.config;
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.groups[0].transport, "tcp");
  EXPECT_TRUE(c.groups[0].listen.empty());
  EXPECT_EQ(c.groups[0].ports, std::vector<uint16_t>{12345});
  EXPECT_EQ(c.groups[0].timeout, 60s);
  EXPECT_EQ(c.groups[0].idle_timeout, 0s);
  EXPECT_EQ(c.groups[0].capture_bytes, 2048u);
  EXPECT_TRUE(c.log.connections);
  EXPECT_EQ(c.log.path, "");
  ASSERT_EQ(c.outputs.size(), 1u);
  EXPECT_EQ(c.outputs[0].plugin, "csv");
  EXPECT_EQ(c.outputs[0].options, (nlohmann::json{{"path", "-"}, {"header", false}, {"flush", true}}));
}

TEST(LegacyFlags, EveryFlagInEverySyntax) {
  auto c = parse({"-ip", "127.0.0.1", "--p", "3000,4000-4002", "-timeout=5s", "-buffSize", "16",
                  "-flush=false", "-header", "-out", "o.csv", "--log=l.txt"})
               .config;
  const auto &g = c.groups[0];
  EXPECT_EQ(g.listen, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(g.ports, (std::vector<uint16_t>{3000, 4000, 4001, 4002}));
  EXPECT_EQ(g.timeout, 5s);
  EXPECT_EQ(g.capture_bytes, 16u);
  EXPECT_EQ(c.log.path, "l.txt");
  EXPECT_EQ(c.outputs[0].options, (nlohmann::json{{"path", "o.csv"}, {"header", true}, {"flush", false}}));
}

TEST(LegacyFlags, BooleansByPresenceOrGoValues) {
  EXPECT_EQ(parse({"-header=true"}).config.outputs[0].options["header"], true);
  EXPECT_EQ(parse({"-header=1"}).config.outputs[0].options["header"], true);
  EXPECT_EQ(parse({"-flush=F"}).config.outputs[0].options["flush"], false);
  EXPECT_EQ(parse({"-header", "-header=false"}).config.outputs[0].options["header"], false);
}

TEST(LegacyFlags, TlsFlagsSelectTheTlsTransport) {
  auto g = parse({"-tls", "-tlsCert", "c.pem", "-tlsKey=k.pem"}).config.groups[0];
  EXPECT_EQ(g.transport, "tls");
  EXPECT_EQ(g.transport_options["cert"], "c.pem");
  EXPECT_EQ(g.transport_options["key"], "k.pem");
  auto d = parse({"-tls"}).config.groups[0];
  EXPECT_EQ(d.transport_options["cert"], "server.crt");
  EXPECT_EQ(d.transport_options["key"], "server.key");
}

TEST(LegacyFlags, HelpAndPrintConfig) {
  EXPECT_EQ(parse({"-h"}).action, CommandLine::Action::kHelp);
  EXPECT_EQ(parse({"--help"}).action, CommandLine::Action::kHelp);
  EXPECT_EQ(parse({"-p", "80", "--print-config"}).action, CommandLine::Action::kPrintConfig);
}

TEST(LegacyFlags, UsageTextHasEveryOriginalOption) {
  auto u = sink::usage_text("./sink");
  for (const char *flag :
       {"-buffSize int", "-flush\n", "-header\n", "-ip string", "-log string", "-out string", "-p string",
        "-timeout duration", "-tls\n", "-tlsCert string", "-tlsKey string"})
    EXPECT_NE(u.find(flag), std::string::npos) << flag;
  EXPECT_NE(u.find("(default 1m0s)"), std::string::npos);
  EXPECT_NE(u.find("(default \"12345\")"), std::string::npos);
}

TEST(LegacyFlags, BadFlagsAreNamed) {
  EXPECT_EQ(error_of({"-bogus"}), "flag provided but not defined: -bogus");
  EXPECT_EQ(error_of({"-p"}), "flag needs an argument: -p");
  EXPECT_NE(error_of({"-p", "70000"}).find("-p"), std::string::npos);
  EXPECT_NE(error_of({"-p", "70000"}).find("70000"), std::string::npos);
  EXPECT_NE(error_of({"-p", "5-3"}).find("5-3"), std::string::npos);
  EXPECT_NE(error_of({"-p", "abc"}).find("abc"), std::string::npos);
  EXPECT_NE(error_of({"-timeout", "5"}).find("-timeout"), std::string::npos);
  EXPECT_NE(error_of({"-timeout", "-1s"}).find("negative"), std::string::npos);
  EXPECT_NE(error_of({"-buffSize", "x"}).find("-buffSize"), std::string::npos);
  EXPECT_NE(error_of({"-flush=maybe"}).find("-flush"), std::string::npos);
  EXPECT_NE(error_of({"-ip", "localhost"}).find("localhost"), std::string::npos);
  EXPECT_NE(error_of({"---p", "1"}).find("bad flag syntax"), std::string::npos);
}

TEST(LegacyFlags, StrayArgumentsAreRefusedNotIgnored) {
  // Go would stop parsing at "false" and silently ignore "-p 80".
  auto e = error_of({"-flush", "false", "-p", "80"});
  EXPECT_NE(e.find("\"false\""), std::string::npos);
  EXPECT_NE(e.find("-flush=false"), std::string::npos);
}

TEST(LegacyFlags, ConfigCannotMixWithLegacyFlags) {
  EXPECT_NE(error_of({"-config", "x.yaml", "-p", "80"}).find("-p"), std::string::npos);
}

TEST(LegacyFlags, PrintedConfigLoadsBackToTheSame) {
  auto c = parse({"-ip", "::1", "-p", "3000,4000-4002", "-timeout", "90s", "-buffSize", "100", "-out",
                  "x.csv", "-header"})
               .config;
  auto back = sink::parse_yaml_config(sink::render_yaml_config(c), "printed");
  ASSERT_EQ(back.groups.size(), 1u);
  EXPECT_EQ(back.groups[0].listen, c.groups[0].listen);
  EXPECT_EQ(back.groups[0].ports, c.groups[0].ports);
  EXPECT_EQ(back.groups[0].timeout, c.groups[0].timeout);
  EXPECT_EQ(back.groups[0].capture_bytes, c.groups[0].capture_bytes);
  EXPECT_EQ(back.log.connections, true);
  EXPECT_EQ(back.outputs[0].plugin, "csv");
  EXPECT_EQ(back.outputs[0].options, c.outputs[0].options);
}
