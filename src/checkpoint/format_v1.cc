// Format 1 (accel-dra 0.1.0), read only: the next write of a loaded format-1 checkpoint is in the
// current format.
//
// {
//   "version": 1,
//   "checksum": "<crc32c of Canonical(data), 8 lowercase hex digits>",
//   "data": {
//     "bootId": "<boot_id of the writer's boot>",
//     "writerVersion": "0.1.0",
//     "claims": {
//       "<claim uid>": {
//         "namespace": "...", "name": "...",
//         "state": "PrepareStarted" | "PrepareCompleted",
//         "cdiSpecFile": "<file name, may be empty>",
//         "prepareStartedAt": "<RFC 3339>",
//         "prepareCompletedAt": "<RFC 3339>",            (optional)
//         "devices": [{
//           "requestNames": ["..."], "pool": "...", "device": "...",
//           "cdiDeviceIds": ["vendor/class=name"],
//           "shareId": "...",                               (optional)
//           "config": <any JSON, normally an object>
//         }]
//       }
//     }
//   }
// }
// The checksum covers the canonical serialisation of the "data" value as parsed (compact
// nlohmann::json dump, keys sorted, invalid UTF-8 replaced), so layout and escaping in the file do
// not matter. Unknown fields are ignored.
//
// A device's settings were free-form JSON in "config". Two shapes exist, both read into the
// typed record:
//  - the plugin's: {"sharing": {"strategy": "TimeSlicing", "interval": "Long",
//    "partitionCount": ""}, "adminAccess": false, "deviceNodes": ["/dev/..."], "mounts":
//    [{"hostPath", "containerPath"}], "timeSlice": {"control", "target", "setting"}}, with ""
//    for a setting that does not apply and the partition count as a decimal string; "deviceNodes"
//    and "mounts" are missing in records written before they were (then not recorded);
//  - the DeviceConfig shape (tests/fixtures/checkpoint/v1-0.1.0.json): {"sharing": {"strategy":
//    ..., "timeSlicing": {"interval": ...}, "spacePartitioning": {"partitionCount": 4}}}.
// Other members (e.g. "env") never had an effect and are dropped; a "config" that is not an object
// holds no settings. A known member with a wrong type or an unknown name is DataLoss.

#include <charconv>
#include <system_error>
#include <utility>

#include "format.h"
#include "format_json.h"

namespace accel_dra::checkpoint::format {
namespace {

// The bytes the format-1 checksum covers.
std::string Canonical(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A name that may be "" (= not set) or missing; `nested` is the DeviceConfig-shaped location.
Status LegacyName(const Json& sharing, std::string_view key, std::string_view nested,
                  const std::string& where, std::string* out) {
  out->clear();
  if (sharing.contains(key)) return GetString(sharing, key, where, out);
  const Json* inner = Find(sharing, nested);
  if (inner == nullptr) return Status::Ok();
  if (!inner->is_object()) return WrongType(where, nested, "an object");
  if (!inner->contains(key)) return Status::Ok();
  return GetString(*inner, key, where + "." + std::string(nested), out);
}

// The partition count: a decimal string or an integer, here or in "spacePartitioning".
Status LegacyPartitionCount(const Json& sharing, const std::string& where, int* out) {
  const Json* holder = &sharing;
  std::string at = where;
  if (!sharing.contains("partitionCount")) {
    holder = Find(sharing, "spacePartitioning");
    at += ".spacePartitioning";
    if (holder == nullptr || !holder->is_object() || !holder->contains("partitionCount")) {
      return DataLoss(where + ": SpacePartitioning without a partition count");
    }
  }
  const Json& v = holder->at("partitionCount");
  if (!v.is_string()) {
    return GetInt(*holder, "partitionCount", at, model::kMinPartitionCount,
                  model::kMaxPartitionCount, out);
  }
  const std::string& text = v.get_ref<const std::string&>();
  int n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < model::kMinPartitionCount ||
      n > model::kMaxPartitionCount) {
    return WrongType(at, "partitionCount",
                     "a partition count from " + std::to_string(model::kMinPartitionCount) +
                         " to " + std::to_string(model::kMaxPartitionCount));
  }
  *out = n;
  return Status::Ok();
}

Status LegacySharing(const Json& config, const std::string& where, model::SharingSettings* s) {
  const Json* sharing = Find(config, "sharing");
  if (sharing == nullptr) return Status::Ok();  // Exclusive
  if (!sharing->is_object()) return WrongType(where, "sharing", "an object");
  const std::string at = where + ".sharing";
  std::string name;
  if (sharing->contains("strategy")) RETURN_IF_ERROR(GetString(*sharing, "strategy", at, &name));
  if (!name.empty()) {
    auto strategy = model::ParseSharingStrategy(name);
    if (!strategy) return DataLoss(at + ": unknown strategy \"" + name + "\"");
    s->strategy = *strategy;
  }
  if (s->strategy == model::SharingStrategy::kTimeSlicing) {
    RETURN_IF_ERROR(LegacyName(*sharing, "interval", "timeSlicing", at, &name));
    if (!name.empty()) {
      auto interval = model::ParseTimeSliceInterval(name);
      if (!interval) return DataLoss(at + ": unknown interval \"" + name + "\"");
      s->interval = *interval;
    }
  }
  if (s->strategy == model::SharingStrategy::kSpacePartitioning) {
    RETURN_IF_ERROR(LegacyPartitionCount(*sharing, at, &s->partition_count));
  }
  return Status::Ok();
}

// The typed settings from "config" (see the top of this file).
Status LegacyConfig(const Json& config, const std::string& where, model::PreparedDevice* d) {
  if (!config.is_object()) return Status::Ok();
  const std::string at = where + ".config";
  RETURN_IF_ERROR(LegacySharing(config, at, &d->sharing));
  if (config.contains("adminAccess")) {
    RETURN_IF_ERROR(GetBool(config, "adminAccess", at, &d->admin_access));
  }
  if (const Json* ts = Find(config, "timeSlice")) {
    RETURN_IF_ERROR(DecodeTimeSlice(*ts, at, &d->time_slice.emplace()));
  }
  if (config.contains("deviceNodes")) {
    RETURN_IF_ERROR(GetStringList(config, "deviceNodes", at, &d->device_nodes.emplace()));
  }
  if (const Json* mounts = Find(config, "mounts")) {
    std::vector<model::FileMount> all;
    RETURN_IF_ERROR(DecodeMounts(*mounts, at, &all));
    auto& kept = d->mounts.emplace();
    for (auto& m : all) {  // the plugin skipped incomplete entries; so do we
      if (!m.host_path.empty() && !m.container_path.empty()) kept.push_back(std::move(m));
    }
  }
  return Status::Ok();
}

Status DecodeDevice(const Json& j, const std::string& where, model::PreparedDevice* d) {
  RETURN_IF_ERROR(DecodeWireFields(j, where, d));
  const Json* config = nullptr;
  RETURN_IF_ERROR(GetField(j, "config", where, &config));
  return LegacyConfig(*config, where, d);
}

}  // namespace

Expected<Contents> DecodeFormat1(const Json& doc) {
  std::string checksum;
  RETURN_IF_ERROR(GetString(doc, "checksum", "top level", &checksum));
  const Json* data = nullptr;
  RETURN_IF_ERROR(GetField(doc, "data", "top level", &data));
  if (!data->is_object()) return WrongType("top level", "data", "an object");
  std::string actual = Hex32(Crc32c(Canonical(*data)));
  if (checksum != actual) {
    return DataLoss("checksum mismatch (file says " + checksum + ", data hashes to " + actual +
                    ")");
  }
  return DecodeData(*data, &DecodeDevice);
}

}  // namespace accel_dra::checkpoint::format
