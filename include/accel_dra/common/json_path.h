#pragma once
// Reading nested JSON objects (Kubernetes objects as the apiserver sends them) without throwing,
// whatever shape the document has.

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace accel_dra {

using JsonPath = std::initializer_list<std::string_view>;

// The value at `path` (object keys only), or nullptr when a step is missing or not an object.
const nlohmann::json* JsonAt(const nlohmann::json& j, JsonPath path);
nlohmann::json* JsonAt(nlohmann::json& j, JsonPath path);
// The value at `path`, or a null value.
const nlohmann::json& JsonOrNull(const nlohmann::json& j, JsonPath path);
// The string at `path`; "" when missing or not a string.
std::string JsonString(const nlohmann::json& j, JsonPath path);
// The boolean at `path`; false when missing or not a boolean.
bool JsonBool(const nlohmann::json& j, JsonPath path);

}  // namespace accel_dra
