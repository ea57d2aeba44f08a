#pragma once
// What the kernel knows about a connection that the bytes do not say: the
// client's SYN as it arrived (TCP_SAVE_SYN / TCP_SAVED_SYN: TTL, IP ID, DF,
// window, TCP options in order) and, at close, TCP_INFO (RTT,
// retransmissions, segments in). Injected or probing traffic differs from
// the real client's stack in exactly these. Raw fields, no fingerprint hash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "Record.h"

namespace sink {

struct SynFacts {
  bool saved = false; // false: the kernel kept no SYN (SYN cookies were in use)
  bool v6 = false;
  uint8_t ttl = 0;     // IPv6: hop limit
  uint16_t ip_id = 0;  // IPv4 only
  bool df = false;     // IPv4 only
  uint16_t window = 0; // as sent (unscaled)
  int32_t mss = -1;    // -1: no MSS option
  int16_t wscale = -1; // -1: no window scale option
  uint8_t option_count = 0;
  uint8_t options[20] = {}; // kinds in order (a TCP header holds at most 40 option bytes)
};

// Parses a saved SYN (IP header then TCP header, as TCP_SAVED_SYN returns
// it). False when it is not one.
bool parse_saved_syn(const uint8_t *data, size_t len, SynFacts *out);

// "mss,sok,ts,nop,ws": option kinds by name (eol, nop, mss, ws, sok, sack,
// ts; others as their number).
std::string syn_option_names(const SynFacts &f);
// The same into out, which holds kSynOptionNamesMax bytes (20 options of at
// most 4 characters, and the commas); returns the length.
constexpr size_t kSynOptionNamesMax = 128;
size_t syn_option_names_to(const SynFacts &f, char *out);

// Asks the kernel to keep each client's SYN on a listening socket.
void enable_saved_syn(int listen_fd);

// Reads (and so frees) the SYN the kernel saved for an accepted socket.
SynFacts read_saved_syn(int fd);

// Adds tcp.syn_* extras (or tcp.syn_saved=false).
void add_syn_extras(const SynFacts &f, ExtraCollector &extras);

// One TCP_INFO reading: the record's tcp.* extras, and enough to tell that
// every byte before the peer's FIN has been read.
struct TcpInfoFacts {
  bool ok = false;       // false: the socket had no TCP_INFO
  bool peer_fin = false; // state CLOSE_WAIT: the peer's FIN is in
  bool has_bytes_received = false;
  uint64_t bytes_received = 0; // in-order sequence space taken in: payload, plus one for a FIN
  uint32_t rtt_us = 0;
  uint32_t retrans = 0;
  bool has_segs_in = false;
  uint32_t segs_in = 0;
};
TcpInfoFacts read_tcp_info(int fd);

// True when the kernel holds nothing more to read: the peer's FIN is in and
// it came right after the `bytes_read` bytes read (an urgent byte or any
// unread data breaks the equality).
bool all_read_before_fin(const TcpInfoFacts &info, uint64_t bytes_read);

// Adds tcp.rtt_us, tcp.retrans, tcp.segs_in, if the socket had TCP_INFO.
// tcp.rtt_us only when syn.saved: a connection that came through a SYN
// cookie left the kernel no SYN-ACK to time, and its first RTT sample
// (13-63 ms on loopback) measures nothing about the path.
void add_tcp_info_extras(const TcpInfoFacts &info, const SynFacts &syn, ExtraCollector &extras);

} // namespace sink
