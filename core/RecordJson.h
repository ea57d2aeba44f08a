#pragma once
// The inverse of the JSONL encoding (support/RecordFormat: jsonl_line): the
// collector rebuilds each record it reads from a stream, so its outputs get
// the record the sensor had, field for field.
#include <string>
#include <string_view>

#include "Record.h"
#include "StringInterner.h"

namespace sink {

// False (and *why) when text is not a JSONL record of schema_version 2.
bool record_from_jsonl(std::string_view text, Record &r, StringInterner &strings, std::string *why);

} // namespace sink
