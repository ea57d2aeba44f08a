#pragma once
#include <string>
#include <vector>

#include "Config.h"

namespace sink {

// Checks what no single key can: at least one group and output, unique group
// names, no two groups on the same address and port, valid addresses.
// Throws ConfigError. Used for YAML and legacy flags alike.
void validate_config(const Config &config);

// An address in its canonical text form ("0::1" -> "::1"); other text as is.
std::string canonical_address(const std::string &addr);
// "192.0.2.0/24", "2001:db8::/32" or a bare address; *why says what is wrong.
bool valid_cidr(const std::string &cidr, std::string *why);

// What is wrong with a top-level key ("key: what"), or "" when nothing is.
std::string user_problem(const std::string &user);
std::string public_ip_problem(const std::vector<std::string> &ips);
std::string sources_problem(const std::vector<std::string> &sources);
// firewall.interfaces: "eth0", 1 to 15 letters, digits, '_', '.' or '-' (a
// Linux interface name without what either firewall back end must quote);
// *why says what is wrong.
bool valid_interface_name(const std::string &name, std::string *why);
std::string interfaces_problem(const std::vector<std::string> &interfaces);

// "127.0.0.1:9464" or "[::1]:9464" split into address and port; false when
// it is neither (a host name is not accepted: the listener binds it).
bool split_host_port(const std::string &text, std::string *addr, uint16_t *port);
// What is wrong with metrics.listen, or "".
std::string metrics_listen_problem(const std::string &listen);

// Where a message about group i should point: "file:line: groups[i].key".
std::string group_location(const Config &config, size_t index, const char *key);
// "file:line: section[i] (plugin)", for messages about a plugin.
std::string plugin_location(const Config &config, int line, const char *section, size_t index,
                            const std::string &plugin);

} // namespace sink
