#pragma once
// Pure encoders from a sink_record to the bytes our outputs write. Kept
// apart from the plugins so unit tests can check them byte for byte.
#include <sink/plugin.h>

#include <string>
#include <vector>

#include "TextEncoding.h"

namespace sink::format {

// "2026-11-28T02:45:57.123Z"
std::string rfc3339_utc_ms(int64_t unix_ns);

// Quotes a CSV field the way Go's encoding/csv does (RFC 4180).
std::string csv_field(const std::string &field);

// The original's CSV header line, with "\n".
const std::string &csv_header();

// One CSV row, with "\n":
// ts,localIP,localPort,remoteIP,remotePort,truncatedPayload,len,duration
std::string csv_row(const sink_record &r);
// The same, appended to line.
void csv_row_to(std::string &line, const sink_record &r);

// A CSV column of the `columns:` option: one of the original's eight, another
// record field, or "extra:KEY".
struct CsvColumn {
  std::string name; // as written in the option and the header
};
// Checks names; *why says which one is unknown and what is allowed.
bool valid_csv_column(const std::string &name, std::string *why);
std::string csv_header(const std::vector<CsvColumn> &columns);
std::string csv_row(const sink_record &r, const std::vector<CsvColumn> &columns);

// One JSON object and "\n". `extra` holds the typed extras (ABI 1.1) with
// their JSON types: strings as strings, booleans and numbers as such, bytes
// as base64 strings. A record without typed extras (value_size 0) shows the
// ABI 1.0 text extras.
std::string jsonl_line(const sink_record &r);

// The extras as one JSON object (no newline) that PostgreSQL's jsonb accepts:
// like jsonl_line's `extra`, except that a string holding a NUL byte (jsonb
// cannot store \u0000) is written as the base64 of its bytes, like a bytes
// value, and invalid UTF-8 (only possible in ABI 1.0 text extras) is
// replaced by U+FFFD.
std::string extras_jsonb(const sink_record &r);

} // namespace sink::format
