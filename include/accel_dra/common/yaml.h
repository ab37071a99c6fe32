#pragma once
// JSON → YAML for human-facing output. Strings that YAML would read back as another type
// ("80", "true", "1.5", "") are quoted, so the output round-trips to the same JSON.

#include <nlohmann/json.hpp>
#include <string>

namespace accel_dra {

std::string JsonToYaml(const nlohmann::json& value);

}  // namespace accel_dra
