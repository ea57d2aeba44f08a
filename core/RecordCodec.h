#pragma once
// The journal's encoding of one Record. Little-endian, length-prefixed, every
// field of the record including typed extras, so a record read back after a
// restart is the record that was written. Versioned by the journal's
// segment header (kRecordCodecVersion).
#include <cstdint>
#include <string>

#include "Record.h"
#include "StringInterner.h"

namespace sink {

inline constexpr uint32_t kRecordCodecVersion = 1;

// Appends the encoding of r to out.
void encode_record(const Record &r, std::string &out);

// Decodes n bytes into r (its strings interned in strings). False when the
// bytes are not a whole, well-formed encoding.
bool decode_record(const uint8_t *p, size_t n, Record &r, StringInterner &strings);

} // namespace sink
