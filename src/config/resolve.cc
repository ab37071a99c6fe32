// Effective DeviceConfig per allocation-result request.

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>

#include "accel_dra/config/device_config.h"

namespace accel_dra::config {
namespace {

using Json = nlohmann::json;

enum class Match { kNone = -1, kAll = 0, kBase = 1, kExact = 2 };

struct Candidate {
  int source_rank = 0;  // 0 FromClass, 1 FromClaim
  size_t index = 0;     // position in config[]
  std::vector<std::string> requests;
  DeviceConfig config;
};

Match MatchRequest(const Candidate& c, const std::string& request) {
  if (c.requests.empty()) return Match::kAll;
  auto slash = request.find('/');
  Match best = Match::kNone;
  for (const auto& r : c.requests) {
    if (r == request) return Match::kExact;
    if (slash != std::string::npos && r.size() == slash && request.compare(0, slash, r) == 0) {
      best = Match::kBase;
    }
  }
  return best;
}

// Where the config entries are: an allocation's (prepare; entries carry a source) or a claim
// spec's (admission; no source).
struct ConfigList {
  std::string_view path;  // "status.allocation.devices.config", "spec.devices.config", ...
  bool with_source = true;
};

constexpr ConfigList kAllocationConfigs{"status.allocation.devices.config", true};

std::string Describe(const ConfigList& list, size_t index, std::string_view source,
                     const std::vector<std::string>& reqs) {
  std::string where = std::string(list.path) + "[" + std::to_string(index) + "]";
  std::string origin = !list.with_source       ? ""
                       : source == "FromClass" ? "from the DeviceClass, "
                       : source == "FromClaim" ? "from the ResourceClaim, "
                                               : "source " + std::string(source) + ", ";
  std::string r;
  for (const auto& q : reqs) r += (r.empty() ? "" : ",") + q;
  return where + " (" + origin + "requests: " + (r.empty() ? "all" : r) + ")";
}

Expected<std::vector<Candidate>> CollectCandidates(const Json& configs, std::string_view driver,
                                                   const ConfigList& list = kAllocationConfigs) {
  std::vector<Candidate> out;
  if (configs.is_null()) return out;
  if (!configs.is_array()) {
    return InvalidArgument(std::string(list.path) + " must be an array, got " +
                           std::string(configs.type_name()));
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    const Json& entry = configs[i];
    std::string where = std::string(list.path) + "[" + std::to_string(i) + "]";
    if (!entry.is_object()) return InvalidArgument(where + " must be an object");
    if (!entry.contains("opaque") || entry.at("opaque").is_null()) continue;  // not opaque
    const Json& opaque = entry.at("opaque");
    if (!opaque.is_object()) return InvalidArgument(where + ".opaque must be an object");
    if (!opaque.contains("driver") || !opaque.at("driver").is_string() ||
        opaque.at("driver").get_ref<const std::string&>() != driver) {
      continue;  // another driver's config
    }

    Candidate c;
    c.index = i;
    std::string source;
    if (entry.contains("source") && entry.at("source").is_string()) {
      source = entry.at("source").get<std::string>();
    }
    if (entry.contains("requests") && !entry.at("requests").is_null()) {
      const Json& reqs = entry.at("requests");
      if (!reqs.is_array()) return InvalidArgument(where + ".requests must be an array of names");
      for (const auto& r : reqs) {
        if (!r.is_string()) return InvalidArgument(where + ".requests must be an array of names");
        c.requests.push_back(r.get<std::string>());
      }
    }
    std::string described = Describe(list, i, source, c.requests);
    if (source == "FromClass" || !list.with_source) {
      c.source_rank = 0;
    } else if (source == "FromClaim") {
      c.source_rank = 1;
    } else {
      return InvalidArgument("invalid config for driver " + std::string(driver) + " in " +
                             described + ": source must be FromClass or FromClaim");
    }
    const Json params = opaque.contains("parameters") ? opaque.at("parameters") : Json();
    auto parsed = ParseDeviceConfig(params);
    if (!parsed.ok()) {
      return parsed.status().WithContext("invalid config for driver " + std::string(driver) +
                                         " in " + described);
    }
    c.config = *parsed;
    out.push_back(std::move(c));
  }
  return out;
}

Expected<std::map<std::string, DeviceConfig>> Resolve(const Json& configs,
                                                      const std::vector<std::string>& requests,
                                                      std::string_view driver) {
  ASSIGN_OR_RETURN(std::vector<Candidate> candidates, CollectCandidates(configs, driver));
  std::map<std::string, DeviceConfig> out;
  for (const auto& request : requests) {
    const Candidate* best = nullptr;
    std::tuple<int, int, size_t> best_key{};
    for (const auto& c : candidates) {
      Match m = MatchRequest(c, request);
      if (m == Match::kNone) continue;
      std::tuple<int, int, size_t> key{c.source_rank, static_cast<int>(m), c.index};
      if (best == nullptr || key > best_key) {
        best = &c;
        best_key = key;
      }
    }
    out[request] = best != nullptr ? best->config : DeviceConfig{};
  }
  return out;
}

}  // namespace

Expected<std::map<std::string, DeviceConfig>> ResolveDeviceConfigs(
    const Json& configs, const std::vector<std::string>& request_names,
    std::string_view driver_name) {
  try {
    return Resolve(configs, request_names, driver_name);
  } catch (const std::exception& e) {
    return Internal(std::string("resolving device configs: ") + e.what());
  }
}

Expected<std::map<std::string, DeviceConfig>> ResolveAllocationConfigs(
    const Json& allocation_devices, std::string_view driver_name) {
  try {
    if (!allocation_devices.is_object()) {
      return InvalidArgument("status.allocation.devices must be an object");
    }
    std::vector<std::string> requests;
    if (allocation_devices.contains("results") && !allocation_devices.at("results").is_null()) {
      const Json& results = allocation_devices.at("results");
      if (!results.is_array()) {
        return InvalidArgument("status.allocation.devices.results must be an array");
      }
      for (size_t i = 0; i < results.size(); ++i) {
        const Json& r = results[i];
        std::string where = "status.allocation.devices.results[" + std::to_string(i) + "]";
        if (!r.is_object()) return InvalidArgument(where + " must be an object");
        if (!r.contains("driver") || !r.at("driver").is_string() ||
            r.at("driver").get_ref<const std::string&>() != driver_name) {
          continue;
        }
        if (!r.contains("request") || !r.at("request").is_string()) {
          return InvalidArgument(where + ".request must be a string");
        }
        std::string name = r.at("request").get<std::string>();
        if (std::find(requests.begin(), requests.end(), name) == requests.end()) {
          requests.push_back(std::move(name));
        }
      }
    }
    Json none;
    const Json& configs =
        allocation_devices.contains("config") ? allocation_devices.at("config") : none;
    return Resolve(configs, requests, driver_name);
  } catch (const std::exception& e) {
    return Internal(std::string("resolving device configs: ") + e.what());
  }
}

Status ValidateSpecConfigs(const Json& configs, std::string_view driver_name,
                           std::string_view path) {
  try {
    return CollectCandidates(configs, driver_name, ConfigList{path, false}).status();
  } catch (const std::exception& e) {
    return Internal(std::string("validating device configs: ") + e.what());
  }
}

}  // namespace accel_dra::config
