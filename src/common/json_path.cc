#include "accel_dra/common/json_path.h"

namespace accel_dra {
namespace {
template <typename J>
J* Walk(J& j, JsonPath path) {
  J* cur = &j;
  for (std::string_view key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}
}  // namespace

const nlohmann::json* JsonAt(const nlohmann::json& j, JsonPath path) { return Walk(j, path); }
nlohmann::json* JsonAt(nlohmann::json& j, JsonPath path) { return Walk(j, path); }

const nlohmann::json& JsonOrNull(const nlohmann::json& j, JsonPath path) {
  static const nlohmann::json kNull;
  const nlohmann::json* v = Walk(j, path);
  return v != nullptr ? *v : kNull;
}

std::string JsonString(const nlohmann::json& j, JsonPath path) {
  const nlohmann::json* v = Walk(j, path);
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

bool JsonBool(const nlohmann::json& j, JsonPath path) {
  const nlohmann::json* v = Walk(j, path);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

}  // namespace accel_dra
