#include "KernelFacts.h"

#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/socket.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace sink {

bool parse_saved_syn(const uint8_t *p, size_t len, SynFacts *out) {
  SynFacts f;
  if (len < 1) return false;
  size_t ip_len = 0;
  const int version = p[0] >> 4;
  if (version == 4) {
    ip_len = static_cast<size_t>(p[0] & 0x0f) * 4;
    if (ip_len < 20 || len < ip_len) return false;
    f.ttl = p[8];
    f.ip_id = static_cast<uint16_t>(p[4] << 8 | p[5]);
    f.df = p[6] & 0x40;
  } else if (version == 6) {
    // Extension headers before TCP are not expected on a SYN to us; the
    // next header must be TCP.
    ip_len = 40;
    if (len < ip_len || p[6] != IPPROTO_TCP) return false;
    f.v6 = true;
    f.ttl = p[7];
  } else {
    return false;
  }
  const uint8_t *t = p + ip_len;
  const size_t tcp_avail = len - ip_len;
  if (tcp_avail < 20) return false;
  const size_t tcp_len = static_cast<size_t>(t[12] >> 4) * 4;
  if (tcp_len < 20 || tcp_len > tcp_avail) return false;
  f.window = static_cast<uint16_t>(t[14] << 8 | t[15]);
  for (size_t i = 20; i < tcp_len;) {
    const uint8_t kind = t[i];
    if (f.option_count < sizeof f.options) f.options[f.option_count++] = kind;
    if (kind == 0) break; // end of options
    if (kind == 1) {      // one-byte NOP
      ++i;
      continue;
    }
    if (i + 1 >= tcp_len) break;
    const uint8_t olen = t[i + 1];
    if (olen < 2 || i + olen > tcp_len) break; // malformed: stop, keep what was read
    if (kind == 2 && olen == 4) f.mss = t[i + 2] << 8 | t[i + 3];
    if (kind == 3 && olen == 3) f.wscale = t[i + 2];
    i += olen;
  }
  f.saved = true;
  *out = f;
  return true;
}

size_t syn_option_names_to(const SynFacts &f, char *out) {
  char *p = out;
  for (uint8_t i = 0; i < f.option_count; ++i) {
    if (p != out) *p++ = ',';
    const char *name = nullptr;
    switch (f.options[i]) {
    case 0: name = "eol"; break;
    case 1: name = "nop"; break;
    case 2: name = "mss"; break;
    case 3: name = "ws"; break;
    case 4: name = "sok"; break;
    case 5: name = "sack"; break;
    case 8: name = "ts"; break;
    default: p = std::to_chars(p, p + 3, f.options[i]).ptr; continue;
    }
    const size_t n = std::strlen(name);
    std::memcpy(p, name, n);
    p += n;
  }
  return static_cast<size_t>(p - out);
}

std::string syn_option_names(const SynFacts &f) {
  char buf[kSynOptionNamesMax];
  return std::string(buf, syn_option_names_to(f, buf));
}

void enable_saved_syn(int listen_fd) {
  int one = 1;
  setsockopt(listen_fd, IPPROTO_TCP, TCP_SAVE_SYN, &one, sizeof one);
}

SynFacts read_saved_syn(int fd) {
  // IPv6 + TCP with options fits in 40 + 60 bytes.
  uint8_t buf[128];
  socklen_t len = sizeof buf;
  SynFacts f;
  if (getsockopt(fd, IPPROTO_TCP, TCP_SAVED_SYN, buf, &len) == 0 && len > 0) parse_saved_syn(buf, len, &f);
  return f;
}

void add_syn_extras(const SynFacts &f, ExtraCollector &extras) {
  auto add_int = [&](const char *key, int64_t v) { extras.add_typed(key, SINK_VALUE_INT, &v, sizeof v); };
  const uint8_t saved = f.saved;
  extras.add_typed("tcp.syn_saved", SINK_VALUE_BOOL, &saved, 1);
  if (!f.saved) return;
  add_int("tcp.syn_ttl", f.ttl);
  if (!f.v6) {
    add_int("tcp.syn_ipid", f.ip_id);
    const uint8_t df = f.df;
    extras.add_typed("tcp.syn_df", SINK_VALUE_BOOL, &df, 1);
  }
  add_int("tcp.syn_window", f.window);
  char options[kSynOptionNamesMax]; // no allocation per connection
  extras.add_typed("tcp.syn_options", SINK_VALUE_STRING, options, syn_option_names_to(f, options));
  if (f.mss >= 0) add_int("tcp.syn_mss", f.mss);
  if (f.wscale >= 0) add_int("tcp.syn_wscale", f.wscale);
}

namespace {
// TCP_CLOSE_WAIT in the kernel's tcp_states.h; <netinet/tcp.h>, which names
// it, clashes with <linux/tcp.h>, whose tcp_info is the complete one.
constexpr uint8_t kTcpCloseWait = 8;
} // namespace

TcpInfoFacts read_tcp_info(int fd) {
  struct tcp_info info {};
  socklen_t len = sizeof info;
  TcpInfoFacts f;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return f;
  f.ok = true;
  f.peer_fin = info.tcpi_state == kTcpCloseWait;
  f.rtt_us = info.tcpi_rtt;
  f.retrans = info.tcpi_total_retrans;
  // Older kernels fill less of the struct.
  if (len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received) {
    f.has_bytes_received = true;
    f.bytes_received = info.tcpi_bytes_received;
  }
  if (len >= offsetof(struct tcp_info, tcpi_segs_in) + sizeof info.tcpi_segs_in) {
    f.has_segs_in = true;
    f.segs_in = info.tcpi_segs_in;
  }
  return f;
}

bool all_read_before_fin(const TcpInfoFacts &info, uint64_t bytes_read) {
  return info.ok && info.peer_fin && info.has_bytes_received && info.bytes_received == bytes_read + 1;
}

void add_tcp_info_extras(const TcpInfoFacts &info, const SynFacts &syn, ExtraCollector &extras) {
  if (!info.ok) return;
  auto add_int = [&](const char *key, int64_t v) { extras.add_typed(key, SINK_VALUE_INT, &v, sizeof v); };
  if (syn.saved) add_int("tcp.rtt_us", info.rtt_us);
  add_int("tcp.retrans", info.retrans);
  if (info.has_segs_in) add_int("tcp.segs_in", info.segs_in);
}

} // namespace sink
