#pragma once
// One finished connection, owned. It outlives the connection and crosses to
// the output thread; outputs see it through a borrowed sink_record view.
#include <sink/plugin.h>

#include <string>
#include <utility>
#include <vector>

#include "Endpoint.h"

namespace sink {

struct Record {
  int64_t accept_unix_ns = 0;
  int64_t duration_ns = 0;
  const std::string *group = nullptr; // owned by the config, which outlives records
  const char *transport = nullptr;    // the plugin's name: plugins are never unloaded
  Endpoint local;
  Endpoint remote;
  std::vector<uint8_t> payload; // the first capture_bytes of the stream
  uint64_t total_bytes = 0;
  sink_close_reason close_reason = SINK_CLOSE_ERROR;
  std::string close_detail;
  std::vector<std::pair<std::string, std::string>> extras;

  // A view valid while both this record and `scratch` live unchanged.
  sink_record view(std::vector<sink_extra> &scratch) const {
    scratch.clear();
    for (const auto &[k, v] : extras)
      scratch.push_back({k.c_str(), v.c_str()});
    sink_record r{};
    r.struct_size = sizeof r;
    r.accept_unix_ns = accept_unix_ns;
    r.duration_ns = duration_ns;
    r.group = group->c_str();
    r.transport = transport;
    r.local_ip = local.ip.c_str();
    r.local_port = local.port;
    r.remote_ip = remote.ip.c_str();
    r.remote_port = remote.port;
    r.payload = payload.data();
    r.captured_len = payload.size();
    r.total_bytes = total_bytes;
    r.close_reason = close_reason;
    r.close_detail = close_detail.c_str();
    r.extras = scratch.data();
    r.extras_count = scratch.size();
    return r;
  }
};

} // namespace sink
