#pragma once
// Internal to the checkpoint codec: strict readers of JSON fields (a missing field or a wrong type
// is DataLoss naming where it is), the on-disk spelling of times, and the hex checksum.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/checkpoint/checkpoint.h"

namespace accel_dra::checkpoint::format {

using Json = nlohmann::json;

// 8 lowercase hex digits.
std::string Hex32(uint32_t v);

// RFC 3339 in UTC with milliseconds: 2025-06-01T12:34:56.789Z.
std::string FormatTime(TimePoint tp);
// Accepts what FormatTime writes, with 0 to 9 fractional digits (kept to milliseconds); nullopt
// also for a time a TimePoint cannot hold (outside about 1677-09-21 .. 2262-04-11).
std::optional<TimePoint> ParseTime(const std::string& s);

// Errors, as "<where>: missing field "<key>"" and "<where>: field "<key>" is not <want>".
Status Missing(const std::string& where, std::string_view key);
Status WrongType(const std::string& where, std::string_view key, std::string_view want);

// `obj[key]`, or nullptr when absent (JSON null counts as present).
const Json* Find(const Json& obj, std::string_view key);
// Required fields.
Status GetField(const Json& obj, std::string_view key, const std::string& where, const Json** out);
Status GetString(const Json& obj, std::string_view key, const std::string& where, std::string* out);
Status GetStringList(const Json& obj, std::string_view key, const std::string& where,
                     std::vector<std::string>* out);
Status GetBool(const Json& obj, std::string_view key, const std::string& where, bool* out);
// An integer in [min, max].
Status GetInt(const Json& obj, std::string_view key, const std::string& where, int min, int max,
              int* out);
Status GetTime(const Json& obj, std::string_view key, const std::string& where, TimePoint* out);

}  // namespace accel_dra::checkpoint::format
