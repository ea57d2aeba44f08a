// sink: accept connections, never answer, record everything that arrives.
#include <sys/resource.h>

#include <pthread.h>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include "CommandLine.h"
#include "ConfigPaths.h"
#include "ConfigValidation.h"
#include "NewFiles.h"
#include "FirewallCommand.h"
#include "Collector.h"
#include "CrashReporter.h"
#include "Journal.h"
#include "MetricsServer.h"
#include "SensorMetrics.h"
#include "Privileges.h"
#include "OutputDispatcher.h"
#include "PluginLoader.h"
#include "Server.h"
#include "YamlConfig.h"

namespace {

// Exit codes: 2 for anything the user must fix in flags/config/plugins,
// 1 when the environment refused (bind, I/O).
constexpr int kExitUsage = 2;
constexpr int kExitRuntime = 1;

// During the final drain: stop after the record in hand, then flush and exit.
void on_second_signal(int) { sink::OutputDispatcher::abandon(); }

// Connections are descriptors: take all the kernel allows this process.
std::string raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return "";
  const rlim_t before = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return "";
  return "raised the open-file limit from " + std::to_string(before) + " to " + std::to_string(rl.rlim_cur);
}

// `sink collect --config FILE`: records from a JetStream stream to the outputs.
int run_collect(const std::vector<std::string> &args) {
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &a = args[i];
    if ((a == "--config" || a == "-config") && i + 1 < args.size()) {
      path = args[++i];
    } else if (a.rfind("--config=", 0) == 0 || a.rfind("-config=", 0) == 0) {
      path = a.substr(a.find('=') + 1);
    } else if (a == "-h" || a == "--help") {
      std::puts("usage: sink collect --config central.yaml\n"
                "Reads records from a NATS JetStream stream (the collect: block) and hands each to the\n"
                "outputs: block, acknowledging a message once every output confirmed it.");
      return 0;
    } else {
      std::fprintf(stderr, "sink collect: unexpected argument \"%s\" (usage: sink collect --config FILE)\n",
                   a.c_str());
      return kExitUsage;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "sink collect: --config FILE is required\n");
    return kExitUsage;
  }
  sink::Config config;
  try {
    config = sink::load_yaml_config(path);
  } catch (const sink::ConfigError &e) {
    std::fprintf(stderr, "sink: %s\n", e.what());
    return kExitUsage;
  }
  if (!config.collect.enabled) {
    std::fprintf(stderr, "sink: %s: sink collect needs a collect: block (servers, stream, durable, ...)\n",
                 path.c_str());
    return kExitUsage;
  }
  sink::resolve_config_paths(config);
  auto logger = std::make_unique<sink::Logger>(config.log.path, sink::Logger::parse_level(config.log.level));
  std::vector<std::string> search = config.plugin_path;
  for (const auto &d : sink::PluginLoader::default_search_path())
    search.push_back(d);
  sink::PluginLoader loader(search);
  try {
    sink::Collector collector(config, loader, *logger);
    logger->open();
    sink::install_crash_reporter(logger->fd());
    const bool clean = collector.run();
    if (!clean) {
      logger->error("an output is stuck in a plugin call; exiting without destroying it");
      std::fflush(nullptr);
      std::_Exit(0);
    }
    return 0;
  } catch (const sink::PluginError &e) {
    std::fprintf(stderr, "sink: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "sink: %s\n", e.what());
    return kExitRuntime;
  }
}

int run(sink::Config config) {
  if (config.collect.enabled) {
    std::fprintf(stderr,
                 "sink: %s: this is a collector config (collect:); run it with: sink collect --config %s\n",
                 config.source.c_str(), config.source.c_str());
    return kExitUsage;
  }
  if (config.config_dir.empty()) {
    std::error_code ec;
    config.config_dir = std::filesystem::current_path(ec).string();
  }
  sink::resolve_config_paths(config);
  if (config.journal.enabled && config.journal.dir.empty()) {
    // The service's state directory (systemd's StateDirectory=), else here.
    const char *state = std::getenv("STATE_DIRECTORY");
    std::string dir = state && *state
                          ? std::string(state).substr(0, std::string(state).find(':')) + "/journal"
                          : std::filesystem::current_path().string() + "/sink-journal";
    config.journal.dir = dir;
  }
  if (config.sensor.empty()) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) config.sensor = host;
    // The same characters a configured name may use.
    for (auto &ch : config.sensor)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '-';
  }
  const std::string raised = raise_open_file_limit();
  // The log file is created only once everything that can refuse to start
  // has been checked (logger->open() below).
  auto logger = std::make_unique<sink::Logger>(config.log.path, sink::Logger::parse_level(config.log.level));
  // Configured directories first, then beside the binary and the install dir.
  std::vector<std::string> search = config.plugin_path;
  for (const auto &d : sink::PluginLoader::default_search_path())
    search.push_back(d);
  sink::PluginLoader loader(search);
  // The files this run writes: the log, each output's path, each analyzer's state_path.
  std::vector<std::string> files{config.log.path};
  for (const auto &o : config.outputs)
    if (o.options.contains("path") && o.options["path"].is_string())
      files.push_back(sink::resolve_path(config.config_dir, o.options["path"].get<std::string>()));
  for (const auto &a : config.analyzers) // replay saves its table even when the start is refused
    if (a.options.contains("state_path") && a.options["state_path"].is_string())
      files.push_back(sink::resolve_path(config.config_dir, a.options["state_path"].get<std::string>()));
  // Those this start created are removed again if start-up fails.
  sink::NewFiles created;
  for (const auto &f : files)
    created.watch(f);
  // Start-up errors go to stderr once; to the log file as well when there is one.
  auto fail = [&](int code, const std::string &what) {
    std::fprintf(stderr, "sink: %s\n", what.c_str());
    if (!config.log.path.empty()) logger->error(what);
    return code;
  };
  sink::RecordQueue queue(config.record_queue);
  if (!raised.empty()) logger->info(raised);
  // What the journal directory held before this start: never given to the user.
  std::optional<sink::FoundEntries> journal_found(std::in_place,
                                                  config.journal.enabled ? config.journal.dir : "");
  try {
    // Before anything is created or bound: the user can write everywhere it will.
    if (!config.user.empty())
      sink::check_user_access(config.user, sink::planned_writes(config, *journal_found));
    // Every plugin is loaded and checked, and every transport (with its
    // certificates) created, before any output or log file is created.
    for (size_t i = 0; i < config.outputs.size(); ++i)
      loader.load_for(
          sink::plugin_location(config, config.outputs[i].line, "outputs", i, config.outputs[i].plugin),
          config.outputs[i].plugin, SINK_PLUGIN_OUTPUT);
    for (size_t i = 0; i < config.analyzers.size(); ++i)
      loader.load_for(
          sink::plugin_location(config, config.analyzers[i].line, "analyzers", i, config.analyzers[i].plugin),
          config.analyzers[i].plugin, SINK_PLUGIN_ANALYZER);
    // Outputs are declared first so they outlive the server, whose last
    // connections still produce records on the way down.
    std::unique_ptr<sink::Journal> journal;
    std::unique_ptr<sink::OutputDispatcher> outputs_owner;
    sink::Server server(config, loader, *logger, queue);
    if (config.journal.enabled) {
      created.watch_tree(config.journal.dir);
      try {
        journal = std::make_unique<sink::Journal>(config.journal.dir, config.journal.max_bytes, *logger);
      } catch (const sink::JournalError &e) {
        throw sink::BindError(
            config.source +
            (config.journal.line ? ":" + std::to_string(config.journal.line) : std::string()) + ": " +
            e.what());
      }
    }
    outputs_owner = std::make_unique<sink::OutputDispatcher>(config, loader, *logger, queue, journal.get());
    sink::OutputDispatcher &outputs = *outputs_owner;
    if (!config.user.empty() && journal)
      sink::check_user_access(config.user, sink::journal_needs(config, journal->own_paths(), *journal_found));
    try {
      logger->open();
    } catch (const std::exception &e) {
      throw sink::PluginError(config.source + ": log.path: " + e.what());
    }
    sink::install_crash_reporter(logger->fd());
    server.bind_all();
    std::unique_ptr<sink::MetricsServer> metrics;
    if (!config.metrics.listen.empty()) {
      metrics = std::make_unique<sink::MetricsServer>(
          server.base(), config.metrics.listen,
          [&] { return sink::sensor_metrics(server, *outputs_owner, journal.get(), config.sensor); },
          [&] { return sink::sensor_health(*outputs_owner, config.metrics); });
      logger->info("metrics on http://" + config.metrics.listen + "/metrics and /healthz");
    }
    if (!config.user.empty()) {
      // Everything privileged is done: listeners bound, files open, and
      // every place the user writes checked above. The journal keeps
      // creating segments: the user gets what this start created there.
      if (journal) sink::hand_over(journal->own_paths(), *journal_found, config.user);
      journal_found.reset();
      sink::become_user(config.user);
      logger->info("running as user " + config.user + " (uid " + std::to_string(getuid()) +
                   "), no capabilities");
    } else if (geteuid() == 0) {
      logger->warn("running as root: set user: (or --user NAME) to drop privileges once the ports are bound");
    }
    created.keep(); // started: what was created stays
    outputs.release_unconfigured_outputs();
    for (const auto &[file, p] : loader.loaded())
      logger->info("plugin " + std::string(p.descriptor->name) + " " +
                   (p.descriptor->version ? p.descriptor->version : "") + " (needs ABI " +
                   std::to_string(p.descriptor->abi_major) + "." + std::to_string(p.descriptor->abi_minor) +
                   ", host ABI " + std::to_string(SINK_ABI_MAJOR) + "." + std::to_string(SINK_ABI_MINOR) +
                   ") from " + file);
    server.set_stats_extra([&] { return outputs.stats(); });
    server.set_backpressure([&] { return outputs.every_output_full(); });
    logger->info("accepting up to " + std::to_string(server.max_connections()) + " connections at once on " +
                 std::to_string(server.workers()) + " network thread" + (server.workers() == 1 ? "" : "s"));
    outputs.start();
    server.run([&] {
      if (!logger->reopen()) logger->error("cannot reopen log file " + config.log.path);
      outputs.request_reopen();
    });
    // Every connection is closed by now; write their records while the
    // groups they point into still exist. A second signal cuts this short.
    std::signal(SIGINT, on_second_signal);
    std::signal(SIGTERM, on_second_signal);
    const bool clean = outputs.stop();
    logger->info("final " + server.stats_line());
    if (!clean) {
      // An output thread is still inside its plugin: destructors would wait
      // for it (or free what it uses). Leave now; the kernel closes the rest.
      logger->error("an output is stuck in a plugin call; exiting without destroying it");
      std::fflush(nullptr);
      std::_Exit(0);
    }
    return 0;
  } catch (const sink::PluginError &e) {
    return fail(kExitUsage, e.what());
  } catch (const sink::BindError &e) {
    return fail(kExitRuntime, e.what());
  } catch (const sink::UserAccessError &e) {
    return fail(kExitUsage, e.what());
  } catch (const sink::PrivilegeError &e) {
    return fail(kExitRuntime, e.what());
  } catch (const std::exception &e) {
    return fail(kExitRuntime, e.what());
  }
}

} // namespace

int main(int argc, char **argv) {
  // We never write to peers, but a closed stdout must be an error, not death.
  std::signal(SIGPIPE, SIG_IGN);
  const std::string program = argc > 0 ? argv[0] : "sink";
  if (argc > 1 && std::string(argv[1]) == "collect")
    return run_collect(std::vector<std::string>(argv + 2, argv + argc));
  if (argc > 1 && std::string(argv[1]) == "firewall")
    return sink::firewall::run_firewall_command(std::vector<std::string>(argv + 2, argv + argc));
  sink::CommandLine cl;
  try {
    cl = sink::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const sink::UsageError &e) {
    std::fprintf(stderr, "%s\n%s", e.what(), sink::usage_text(program).c_str());
    return kExitUsage;
  } catch (const sink::ConfigError &e) {
    std::fprintf(stderr, "sink: %s\n", e.what());
    return kExitUsage;
  }
  switch (cl.action) {
  case sink::CommandLine::Action::kHelp: std::fputs(sink::usage_text(program).c_str(), stdout); return 0;
  case sink::CommandLine::Action::kPrintConfig:
    std::fputs(sink::render_yaml_config(cl.config).c_str(), stdout);
    return 0;
  case sink::CommandLine::Action::kVersion:
    std::printf("sink %s\nplugin ABI %d.%d\nlibevent %s\n%s\n", SINK_VERSION, SINK_ABI_MAJOR, SINK_ABI_MINOR,
                event_get_version(), OpenSSL_version(OPENSSL_VERSION));
    return 0;
  case sink::CommandLine::Action::kRun: break;
  }
  // A signal during start-up must not kill the process half-way: hold them
  // until the event loop watches for them (Server::run), then act on what
  // arrived. Threads started meanwhile inherit the mask, so signals always
  // reach the main thread.
  sigset_t held;
  sigemptyset(&held);
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaddset(&held, sig);
  pthread_sigmask(SIG_BLOCK, &held, nullptr);
  return run(cl.config);
}
