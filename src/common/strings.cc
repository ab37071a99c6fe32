#include "accel_dra/common/strings.h"

#include <cctype>
#include <nlohmann/json.hpp>

namespace accel_dra {

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

std::string Trim(std::string_view s) { return std::string(TrimView(s)); }

namespace {
template <typename Items>
std::string JoinImpl(const Items& items, std::string_view sep) {
  std::string out;
  bool first = true;
  for (const auto& i : items) {
    if (!first) out += sep;
    out += i;
    first = false;
  }
  return out;
}
}  // namespace

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  return JoinImpl(items, sep);
}

std::string Join(std::initializer_list<std::string_view> items, std::string_view sep) {
  return JoinImpl(items, sep);
}

std::string Quote(std::string_view s) {
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace accel_dra
