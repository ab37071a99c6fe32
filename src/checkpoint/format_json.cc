#include "format_json.h"

#include <cinttypes>
#include <cstdio>

namespace accel_dra::checkpoint::format {

std::string Hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08" PRIx32, v);
  return buf;
}

std::string FormatTime(TimePoint tp) {
  using namespace std::chrono;
  auto ms = floor<milliseconds>(tp);
  auto day = floor<days>(ms);
  year_month_day ymd{day};
  hh_mm_ss hms{ms - day};
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

std::optional<TimePoint> ParseTime(const std::string& s) {
  using namespace std::chrono;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) !=
          6 ||
      consumed != 19) {
    return std::nullopt;
  }
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return std::nullopt;
  std::string_view rest = std::string_view(s).substr(19);
  int64_t millis = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 3) millis = millis * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    if (digits == 0 || digits > 9) return std::nullopt;
    for (int i = digits; i < 3; ++i) millis *= 10;
  }
  if (rest != "Z") return std::nullopt;
  // In milliseconds (years -999..9999 fit easily), then checked against what a TimePoint holds
  // (system_clock counts nanoseconds in 64 bits: about 1677-09-21 to 2262-04-11): a converted
  // out-of-range time would overflow.
  const sys_time<milliseconds> ms =
      sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{millis};
  if (ms < time_point_cast<milliseconds>(TimePoint::min()) ||
      ms > time_point_cast<milliseconds>(TimePoint::max())) {
    return std::nullopt;
  }
  return time_point_cast<TimePoint::duration>(ms);
}

Status Missing(const std::string& where, std::string_view key) {
  return DataLoss(where + ": missing field \"" + std::string(key) + "\"");
}

Status WrongType(const std::string& where, std::string_view key, std::string_view want) {
  return DataLoss(where + ": field \"" + std::string(key) + "\" is not " + std::string(want));
}

const Json* Find(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

Status GetField(const Json& obj, std::string_view key, const std::string& where, const Json** out) {
  *out = Find(obj, key);
  return *out == nullptr ? Missing(where, key) : Status::Ok();
}

Status GetString(const Json& obj, std::string_view key, const std::string& where,
                 std::string* out) {
  const Json* v = nullptr;
  RETURN_IF_ERROR(GetField(obj, key, where, &v));
  if (!v->is_string()) return WrongType(where, key, "a string");
  *out = v->get<std::string>();
  return Status::Ok();
}

Status GetStringList(const Json& obj, std::string_view key, const std::string& where,
                     std::vector<std::string>* out) {
  const Json* v = nullptr;
  RETURN_IF_ERROR(GetField(obj, key, where, &v));
  if (!v->is_array()) return WrongType(where, key, "an array of strings");
  out->clear();
  for (const auto& e : *v) {
    if (!e.is_string()) return WrongType(where, key, "an array of strings");
    out->push_back(e.get<std::string>());
  }
  return Status::Ok();
}

Status GetBool(const Json& obj, std::string_view key, const std::string& where, bool* out) {
  const Json* v = nullptr;
  RETURN_IF_ERROR(GetField(obj, key, where, &v));
  if (!v->is_boolean()) return WrongType(where, key, "a boolean");
  *out = v->get<bool>();
  return Status::Ok();
}

Status GetInt(const Json& obj, std::string_view key, const std::string& where, int min, int max,
              int* out) {
  const Json* v = nullptr;
  RETURN_IF_ERROR(GetField(obj, key, where, &v));
  const std::string want = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v->is_number_integer()) return WrongType(where, key, want);
  // Compare as 64-bit (unsigned values above INT64_MAX are out of range anyway).
  const int64_t n =
      v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX ? INT64_MAX : v->get<int64_t>();
  if (n < min || n > max) return WrongType(where, key, want);
  *out = static_cast<int>(n);
  return Status::Ok();
}

Status GetTime(const Json& obj, std::string_view key, const std::string& where, TimePoint* out) {
  std::string s;
  RETURN_IF_ERROR(GetString(obj, key, where, &s));
  auto tp = ParseTime(s);
  if (!tp) {
    return WrongType(where, key,
                     "an RFC 3339 UTC time within the representable range (years 1678 to 2261)");
  }
  *out = *tp;
  return Status::Ok();
}

}  // namespace accel_dra::checkpoint::format
