#include "FirewallCommand.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "ConfigError.h"
#include "FirewallRules.h"
#include "YamlConfig.h"

extern char **environ;

namespace sink::firewall {

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitRuntime = 1;

const char *const kUsage = "usage: sink firewall --config FILE [--iptables] [--apply | --remove]\n"
                           "  prints the nftables rules FILE needs (--iptables: iptables-restore input);\n"
                           "  --apply loads them atomically with nft, --remove deletes them again;\n"
                           "  --iptables --remove prints the iptables-restore input that removes them.\n";

struct Result {
  int status = -1; // exit status, -1 if it could not run
  std::string err;
};

// Finds a program in PATH and the usual sbin directories (sudo may drop them).
std::string find_program(const std::string &name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      const std::string candidate = dir + "/" + name;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return "";
}

// Runs argv with `input` on stdin; collects stderr.
Result run(const std::vector<std::string> &argv, const std::string &input) {
  int in[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return {};
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return {};
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char *> args;
  for (const auto &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(err[1]);
  Result r;
  if (rc == 0) {
    size_t done = 0;
    while (done < input.size()) {
      ssize_t n = write(in[1], input.data() + done, input.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
  }
  close(in[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(err[0], buf, sizeof buf)) > 0)
    r.err.append(buf, static_cast<size_t>(n));
  close(err[0]);
  if (rc != 0) {
    r.err = std::strerror(rc);
    return r;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// ip rule / ip route for TPROXY: marked packets are delivered locally.
// Removal first, so applying twice never duplicates a rule. Returns how
// many policy rules were there.
int remove_policy_routing(const std::string &ip) {
  const std::string mark = std::to_string(kMark), table = std::to_string(kRouteTable);
  int removed = 0;
  for (const char *fam : {"-4", "-6"}) {
    for (int i = 0; i < 16; ++i, ++removed) // one rule per apply, but be thorough
      if (run({ip, fam, "rule", "del", "fwmark", mark, "lookup", table}, "").status != 0) break;
    run({ip, fam, "route", "flush", "table", table}, "");
  }
  return removed;
}

// `--remove`: the table and the policy routing, saying what was there.
int remove_rules(const std::string &nft, const std::string &ip) {
  Result r = run({nft, "delete", "table", "inet", "sink"}, "");
  const int routing = ip.empty() ? 0 : remove_policy_routing(ip);
  const bool table_missing = r.status != 0 && r.err.find("No such file") != std::string::npos;
  if (r.status != 0 && !table_missing) {
    std::fprintf(stderr, "sink firewall: nft delete table inet sink: %s", r.err.c_str());
    return kExitRuntime;
  }
  if (table_missing && routing == 0)
    std::fprintf(stderr, "sink firewall: nothing to remove: table inet sink was not loaded\n");
  else if (table_missing)
    std::fprintf(stderr,
                 "sink firewall: removed the TPROXY policy routing (table inet sink was not loaded)\n");
  else
    std::fprintf(stderr, "sink firewall: removed table inet sink%s\n",
                 routing ? " and the TPROXY policy routing" : "");
  return 0;
}

std::string add_policy_routing(const std::string &ip) {
  const std::string mark = std::to_string(kMark), table = std::to_string(kRouteTable);
  remove_policy_routing(ip);
  const std::vector<std::vector<std::string>> steps = {
      {ip, "-4", "rule", "add", "fwmark", mark, "lookup", table},
      {ip, "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", table},
      {ip, "-6", "rule", "add", "fwmark", mark, "lookup", table},
      {ip, "-6", "route", "add", "local", "::/0", "dev", "lo", "table", table},
  };
  for (const auto &s : steps) {
    Result r = run(s, "");
    if (r.status != 0) {
      remove_policy_routing(ip); // all or nothing
      std::string cmd;
      for (size_t i = 1; i < s.size(); ++i)
        cmd += " " + s[i];
      return "ip" + cmd + ": " + r.err;
    }
  }
  return "";
}

} // namespace

int run_firewall_command(const std::vector<std::string> &args) {
  std::string config_path;
  bool iptables = false, apply = false, remove = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (a == "--config" || a == "-config") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "sink firewall: %s needs a file\n%s", a.c_str(), kUsage);
        return kExitUsage;
      }
      config_path = args[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (a == "--iptables") {
      iptables = true;
    } else if (a == "--apply") {
      apply = true;
    } else if (a == "--remove") {
      remove = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "sink firewall: unknown argument \"%s\"\n%s", a.c_str(), kUsage);
      return kExitUsage;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "sink firewall: --config FILE is required\n%s", kUsage);
    return kExitUsage;
  }
  if (apply && remove) {
    std::fprintf(stderr, "sink firewall: --apply and --remove exclude each other\n%s", kUsage);
    return kExitUsage;
  }
  if (iptables && apply) {
    std::fprintf(
        stderr, "sink firewall: --iptables only prints (load it with iptables-restore); --apply uses nft\n%s",
        kUsage);
    return kExitUsage;
  }
  Config config;
  try {
    config = load_yaml_config(config_path);
  } catch (const ConfigError &e) {
    std::fprintf(stderr, "sink firewall: %s\n", e.what());
    return kExitUsage;
  }
  if (config.collect.enabled) {
    std::fprintf(stderr,
                 "sink firewall: %s is a collector config: a collector has no listeners to redirect to\n",
                 config_path.c_str());
    return kExitUsage;
  }
  // The metrics port is never redirected to the sink's listeners.
  exclude_metrics_port(config);
  RulePlan plan;
  try {
    plan = plan_rules(config);
  } catch (const ConfigError &e) {
    std::fprintf(stderr, "sink firewall: %s\n", e.what());
    return kExitUsage;
  }
  if (iptables || (!apply && !remove)) {
    const std::string text = !iptables ? nft_script(plan)
                             : remove  ? iptables_removal_script()
                                       : iptables_script(plan);
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  const std::string nft = find_program("nft");
  if (nft.empty()) {
    std::fprintf(stderr, "sink firewall: nft not found (install the nftables package)\n");
    return kExitRuntime;
  }
  const std::string ip = find_program("ip");
  if (remove) return remove_rules(nft, ip);
  if (const char *ssh = std::getenv("SSH_CONNECTION")) {
    const std::string hit = redirects_ssh_session(plan, ssh);
    if (!hit.empty()) {
      std::fprintf(stderr,
                   "sink firewall: refusing to apply: %s, so this session would be cut off (add the port to "
                   "firewall.exclude_ports)\n",
                   hit.c_str());
      return kExitUsage;
    }
  }
  Result r = run({nft, "-f", "-"}, nft_script(plan));
  if (r.status != 0) {
    std::fprintf(stderr, "sink firewall: nft refused the rules (nothing was changed): %s", r.err.c_str());
    return kExitRuntime;
  }
  if (needs_policy_routing(config)) {
    const std::string why = ip.empty() ? "ip not found (install iproute2)" : add_policy_routing(ip);
    if (!why.empty()) {
      run({nft, "delete", "table", "inet", "sink"}, ""); // all or nothing
      std::fprintf(stderr, "sink firewall: cannot add the TPROXY policy routing, rules removed again: %s\n",
                   why.c_str());
      return kExitRuntime;
    }
  }
  std::fprintf(stderr, "sink firewall: applied table inet sink for %s%s\n", comment_text(config_path).c_str(),
               needs_policy_routing(config) ? " (and TPROXY policy routing)" : "");
  return 0;
}

} // namespace sink::firewall
