#pragma once
// The inverse of the JSONL encoding (support/RecordFormat: jsonl_line): the
// collector rebuilds each record it reads from a stream, so its outputs get
// the record the sensor had, field for field. The text comes from the
// network: every field is checked against the schema (type, range, size)
// and a line that fails is refused whole, never stored cut or wrapped.
#include <string>
#include <string_view>

#include "Record.h"
#include "StringInterner.h"

namespace sink {

// Schema limits beyond the types: what a sensor can produce, with room.
inline constexpr size_t kMaxJsonlNameBytes = 1024;  // group, transport
inline constexpr size_t kMaxJsonlSensorBytes = 253; // as the `sensor:` key
inline constexpr size_t kMaxJsonlDetailBytes = 4096;
inline constexpr size_t kMaxJsonlExtraKeyBytes = 256;

// A record that owns the text its group, sensor and transport point to, so
// names from the network are freed with the record (nothing interned
// forever). Never copied or moved: the pointers point into it.
struct OwnedTextRecord : Record {
  OwnedTextRecord() = default;
  OwnedTextRecord(const OwnedTextRecord &) = delete;
  OwnedTextRecord &operator=(const OwnedTextRecord &) = delete;
  std::string group_text, sensor_text, transport_text;
};

// False (and *why) when text is not a valid JSONL record of schema_version 2.
bool record_from_jsonl(std::string_view text, OwnedTextRecord &r, std::string *why);
// The same, with the names interned (a bounded set: the journal's own).
bool record_from_jsonl(std::string_view text, Record &r, StringInterner &strings, std::string *why);

} // namespace sink
