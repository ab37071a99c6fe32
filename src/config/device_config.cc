// Strict parsing of the DeviceConfig opaque parameters.

#include "accel_dra/config/device_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "accel_dra/common/strings.h"

namespace accel_dra::config {
namespace {

using Json = nlohmann::json;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The closest of `candidates` to `given` when it is plausibly a typo, else "".
std::string Suggest(std::string_view given, std::initializer_list<std::string_view> candidates) {
  std::string lower = Lower(given);
  std::string best;
  size_t best_distance = 3;  // accept at most 2 edits
  for (auto c : candidates) {
    size_t d = Lower(c) == lower ? 0 : EditDistance(lower, Lower(c));
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best;
}

// A short rendering of a JSON value for messages.
std::string Show(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 64) s = s.substr(0, 61) + "...";
  return s;
}

std::string Path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

Status FieldError(std::string_view path, std::string_view what) {
  return InvalidArgument(std::string(path) + ": " + std::string(what));
}

Status CheckFields(const Json& obj, std::string_view path,
                   std::initializer_list<std::string_view> known) {
  for (const auto& item : obj.items()) {
    if (std::find(known.begin(), known.end(), item.key()) != known.end()) continue;
    std::string msg = "unknown field";
    std::string hint = Suggest(item.key(), known);
    if (!hint.empty()) msg += "; did you mean " + hint + "?";
    msg += " (known fields" + (path.empty() ? std::string() : " of " + std::string(path)) + ": " +
           Join(known, ", ") + ")";
    return FieldError(Path(path, item.key()), msg);
  }
  return Status::Ok();
}

bool IsSet(const Json& obj, const char* key) { return obj.contains(key) && !obj.at(key).is_null(); }

Status RequireObject(const Json& v, std::string_view path) {
  if (v.is_object()) return Status::Ok();
  return FieldError(path, "must be an object, got " + std::string(v.type_name()) + " " + Show(v));
}

template <typename E, size_t N>
Status ParseEnum(const Json& v, std::string_view path,
                 const std::array<std::pair<std::string_view, E>, N>& values, E& out) {
  auto accepted = [&] {
    std::string s;
    for (const auto& [name, e] : values) {
      (void)e;
      if (!s.empty()) s += ", ";
      s += name;
    }
    return s;
  };
  if (!v.is_string()) {
    return FieldError(path, "must be a string, got " + std::string(v.type_name()) + " " + Show(v) +
                                "; accepted values: " + accepted());
  }
  const auto& given = v.get_ref<const std::string&>();
  for (const auto& [name, e] : values) {
    if (name == given) {
      out = e;
      return Status::Ok();
    }
  }
  std::string msg = "unknown value " + Show(v);
  for (const auto& [name, e] : values) {
    (void)e;
    if (Lower(name) == Lower(given)) msg += "; did you mean " + std::string(name) + "?";
  }
  return FieldError(path, msg + " (accepted values: " + accepted() + ")");
}

Status CheckTypeField(const Json& p, const char* key, std::string_view expected) {
  std::string hint = "; a DeviceConfig starts with apiVersion: " + std::string(kApiVersion) +
                     " and kind: " + std::string(kKind);
  if (!IsSet(p, key)) return FieldError(key, "required field is missing" + hint);
  const Json& v = p.at(key);
  if (!v.is_string()) {
    return FieldError(key,
                      "must be a string, got " + std::string(v.type_name()) + " " + Show(v) + hint);
  }
  if (v.get_ref<const std::string&>() != expected) {
    return FieldError(key, Show(v) + " is not supported by this driver; the supported " + key +
                               " is " + std::string(expected));
  }
  return Status::Ok();
}

Expected<DeviceConfig> Parse(const Json& p) {
  if (!p.is_object()) {
    return InvalidArgument("DeviceConfig parameters must be a JSON object, got " +
                           std::string(p.type_name()) + " " + Show(p));
  }
  RETURN_IF_ERROR(CheckFields(p, "", {"apiVersion", "kind", "sharing"}));
  RETURN_IF_ERROR(CheckTypeField(p, "apiVersion", kApiVersion));
  RETURN_IF_ERROR(CheckTypeField(p, "kind", kKind));

  DeviceConfig cfg;
  if (!IsSet(p, "sharing")) return cfg;
  const Json& sharing = p.at("sharing");
  RETURN_IF_ERROR(RequireObject(sharing, "sharing"));
  RETURN_IF_ERROR(
      CheckFields(sharing, "sharing", {"strategy", "timeSlicing", "spacePartitioning"}));
  if (IsSet(sharing, "strategy")) {
    RETURN_IF_ERROR(ParseEnum(sharing.at("strategy"), "sharing.strategy", model::kSharingStrategies,
                              cfg.strategy));
  }
  std::string strategy_name(SharingStrategyName(cfg.strategy));

  if (IsSet(sharing, "timeSlicing")) {
    const Json& ts = sharing.at("timeSlicing");
    RETURN_IF_ERROR(RequireObject(ts, "sharing.timeSlicing"));
    RETURN_IF_ERROR(CheckFields(ts, "sharing.timeSlicing", {"interval"}));
    if (cfg.strategy != SharingStrategy::kTimeSlicing) {
      return FieldError("sharing.timeSlicing",
                        "only allowed when sharing.strategy is TimeSlicing (it is " +
                            strategy_name + "); remove it or set strategy: TimeSlicing");
    }
    if (IsSet(ts, "interval")) {
      RETURN_IF_ERROR(ParseEnum(ts.at("interval"), "sharing.timeSlicing.interval",
                                model::kTimeSliceIntervals, cfg.interval));
    }
  }

  const std::string count_rule = "accepted values: integers " + std::to_string(kMinPartitionCount) +
                                 ".." + std::to_string(kMaxPartitionCount);
  if (IsSet(sharing, "spacePartitioning")) {
    const Json& sp = sharing.at("spacePartitioning");
    RETURN_IF_ERROR(RequireObject(sp, "sharing.spacePartitioning"));
    RETURN_IF_ERROR(CheckFields(sp, "sharing.spacePartitioning", {"partitionCount"}));
    if (cfg.strategy != SharingStrategy::kSpacePartitioning) {
      return FieldError("sharing.spacePartitioning",
                        "only allowed when sharing.strategy is SpacePartitioning (it is " +
                            strategy_name + "); remove it or set strategy: SpacePartitioning");
    }
    if (IsSet(sp, "partitionCount")) {
      const Json& n = sp.at("partitionCount");
      const char* path = "sharing.spacePartitioning.partitionCount";
      if (!n.is_number_integer()) {
        return FieldError(path, "must be an integer, got " + std::string(n.type_name()) + " " +
                                    Show(n) + "; " + count_rule);
      }
      int64_t value = 0;
      if (n.is_number_unsigned()) {
        auto u = n.get<uint64_t>();
        value = u > static_cast<uint64_t>(kMaxPartitionCount) ? kMaxPartitionCount + 1
                                                              : static_cast<int64_t>(u);
      } else {
        value = n.get<int64_t>();
      }
      if (value < kMinPartitionCount || value > kMaxPartitionCount) {
        return FieldError(path, Show(n) + " is out of range; " + count_rule);
      }
      cfg.partition_count = static_cast<int>(value);
    }
  }
  if (cfg.strategy == SharingStrategy::kSpacePartitioning && cfg.partition_count == 0) {
    return FieldError("sharing.spacePartitioning.partitionCount",
                      "required when sharing.strategy is SpacePartitioning; " + count_rule);
  }
  return cfg;
}

}  // namespace

Expected<DeviceConfig> ParseDeviceConfig(const Json& parameters) {
  try {
    return Parse(parameters);
  } catch (const std::exception& e) {
    return Internal(std::string("parsing DeviceConfig: ") + e.what());
  }
}

Expected<DeviceConfig> ParseDeviceConfigJson(std::string_view json_text) {
  Json j;
  try {
    j = Json::parse(json_text.begin(), json_text.end());
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("DeviceConfig parameters are not valid JSON: ") + e.what());
  }
  return ParseDeviceConfig(j);
}

}  // namespace accel_dra::config
