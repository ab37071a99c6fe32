// Format 2: typed records, and a checksum over the exact payload bytes on disk.
//
// The file is one JSON document, laid out so that it can be verified without re-serialising:
//
//   {"version": 2, "checksum": "<crc32c>", "data": <payload>}<LF>
//
// - the header `{"version": 2, "checksum": "` + 8 lowercase hex digits + `", "data": ` is fixed
//   (byte for byte, 47 bytes), and so is the trailer `}` + LF;
// - the payload is every byte between them; <crc32c> is CRC-32C of exactly those bytes, so any
//   change to the file (even whitespace) is detected before anything is parsed, and a different
//   JSON library (or version) writing different layout cannot invalidate a file it did not write;
// - the payload is the "data" object (indented by 2, keys sorted), the same for every format-2
//   writer but only ever verified as bytes:
//     {"bootId": "...", "writerVersion": "...",
//      "claims": {"<claim uid>": {
//        "namespace": "...", "name": "...", "state": "PrepareStarted" | "PrepareCompleted",
//        "cdiSpecFile": "<file name, may be empty>",
//        "prepareStartedAt": "<RFC 3339 UTC, ms>", "prepareCompletedAt": "..." (optional),
//        "devices": [{
//          "requestNames": ["..."], "pool": "...", "device": "...",
//          "cdiDeviceIds": ["vendor/class=name"], "shareId": "..." (optional),
//          "sharing": {"strategy": "Exclusive" | "TimeSlicing" | "SpacePartitioning",
//                      "interval": "Default" | "Short" | "Medium" | "Long",  (only with
//                      TimeSlicing) "partitionCount": 2..16                     (only with
//                      SpacePartitioning)},
//          "adminAccess": true | false,
//          "timeSlice": {"control": "none" | "nvidia-smi", "target": "..." (with nvidia-smi),
//                        "setting": 0..3}                          (optional; with TimeSlicing),
//          "deviceNodes": ["/dev/..."]                              (optional: not recorded),
//          "mounts": [{"hostPath": "...", "containerPath": "..."}]  (optional: not recorded)
//          "pciBusID": "0000:3b:00.0", "uuid": "GPU-..."     (optional each: the device's physical
//                                                            identity, where known; added later
//                                                            in format 2, older files lack them)
//        }]}}}
//   Unknown members are ignored on load (and not preserved); known ones are checked strictly.
// Being JSON as a whole, the file stays readable by operators and tools (jq, json.loads).

#include <utility>

#include "format.h"
#include "format_json.h"

namespace accel_dra::checkpoint::format {
namespace {

constexpr std::string_view kPrefix = R"({"version": 2, "checksum": ")";
constexpr std::string_view kAfterChecksum = R"(", "data": )";
constexpr size_t kChecksumDigits = 8;
constexpr size_t kHeaderSize = kPrefix.size() + kChecksumDigits + kAfterChecksum.size();
constexpr std::string_view kTrailer = "}\n";
static_assert(kHeaderSize == 47);

// ---- Typed fields <-> JSON ------------------------------------------------------------------

Json EncodeSharing(const model::SharingSettings& s) {
  Json j = {{"strategy", s.StrategyName()}};
  if (s.strategy == model::SharingStrategy::kTimeSlicing) j["interval"] = s.IntervalName();
  if (s.strategy == model::SharingStrategy::kSpacePartitioning) {
    j["partitionCount"] = s.partition_count;
  }
  return j;
}

Status DecodeSharing(const Json& j, const std::string& where, model::SharingSettings* s) {
  if (!j.is_object()) return WrongType(where, "sharing", "an object");
  const std::string at = where + ".sharing";
  std::string name;
  RETURN_IF_ERROR(GetString(j, "strategy", at, &name));
  auto strategy = model::ParseSharingStrategy(name);
  if (!strategy) return DataLoss(at + ": unknown strategy \"" + name + "\"");
  s->strategy = *strategy;
  const bool time_slicing = *strategy == model::SharingStrategy::kTimeSlicing;
  const bool partitioning = *strategy == model::SharingStrategy::kSpacePartitioning;
  if (j.contains("interval") != time_slicing) {
    return DataLoss(at + ": \"interval\" must be present exactly with TimeSlicing");
  }
  if (j.contains("partitionCount") != partitioning) {
    return DataLoss(at + ": \"partitionCount\" must be present exactly with SpacePartitioning");
  }
  if (time_slicing) {
    RETURN_IF_ERROR(GetString(j, "interval", at, &name));
    auto interval = model::ParseTimeSliceInterval(name);
    if (!interval) return DataLoss(at + ": unknown interval \"" + name + "\"");
    s->interval = *interval;
  }
  if (partitioning) {
    RETURN_IF_ERROR(GetInt(j, "partitionCount", at, model::kMinPartitionCount,
                           model::kMaxPartitionCount, &s->partition_count));
  }
  return Status::Ok();
}

Json EncodeDevice(const model::PreparedDevice& d) {
  Json j = EncodeWireFields(d);
  j["sharing"] = EncodeSharing(d.sharing);
  j["adminAccess"] = d.admin_access;
  if (d.time_slice) j["timeSlice"] = EncodeTimeSlice(*d.time_slice);
  if (d.device_nodes) j["deviceNodes"] = *d.device_nodes;
  if (d.mounts) j["mounts"] = EncodeMounts(*d.mounts);
  if (!d.identity.pci_bus_id.empty()) j["pciBusID"] = d.identity.pci_bus_id;
  if (!d.identity.uuid.empty()) j["uuid"] = d.identity.uuid;
  return j;
}

// The typed fields that follow the wire fields.
Status DecodeDeviceSettings(const Json& j, const std::string& where, model::PreparedDevice* d) {
  const Json* sharing = nullptr;
  RETURN_IF_ERROR(GetField(j, "sharing", where, &sharing));
  RETURN_IF_ERROR(DecodeSharing(*sharing, where, &d->sharing));
  RETURN_IF_ERROR(GetBool(j, "adminAccess", where, &d->admin_access));
  if (const Json* ts = Find(j, "timeSlice")) {
    RETURN_IF_ERROR(DecodeTimeSlice(*ts, where, &d->time_slice.emplace()));
  }
  if (j.contains("deviceNodes")) {
    RETURN_IF_ERROR(GetStringList(j, "deviceNodes", where, &d->device_nodes.emplace()));
  }
  if (const Json* mounts = Find(j, "mounts")) {
    RETURN_IF_ERROR(DecodeMounts(*mounts, where, &d->mounts.emplace()));
  }
  if (j.contains("pciBusID")) {
    RETURN_IF_ERROR(GetString(j, "pciBusID", where, &d->identity.pci_bus_id));
  }
  if (j.contains("uuid")) RETURN_IF_ERROR(GetString(j, "uuid", where, &d->identity.uuid));
  return Status::Ok();
}

Status DecodeDevice(const Json& j, const std::string& where, model::PreparedDevice* d) {
  RETURN_IF_ERROR(DecodeWireFields(j, where, d));
  return DecodeDeviceSettings(j, where, d);
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The payload bytes of a format-2 file, once header, trailer and checksum are verified.
Expected<std::string_view> VerifiedPayload(std::string_view bytes) {
  if (bytes.size() < kHeaderSize + kTrailer.size()) {
    return DataLoss("truncated: " + std::to_string(bytes.size()) +
                    " bytes are less than the format-2 header and trailer");
  }
  std::string_view checksum = bytes.substr(kPrefix.size(), kChecksumDigits);
  if (!IsLowerHex(checksum) ||
      bytes.substr(kPrefix.size() + kChecksumDigits, kAfterChecksum.size()) != kAfterChecksum) {
    return DataLoss("the format-2 header is malformed");
  }
  if (bytes.substr(bytes.size() - kTrailer.size()) != kTrailer) {
    return DataLoss("truncated: the file does not end with the format-2 trailer");
  }
  std::string_view payload =
      bytes.substr(kHeaderSize, bytes.size() - kHeaderSize - kTrailer.size());
  std::string actual = Hex32(Crc32c(payload));
  if (checksum != actual) {
    return DataLoss("checksum mismatch (file says " + std::string(checksum) +
                    ", the payload hashes to " + actual + ")");
  }
  return payload;
}

}  // namespace

bool LooksLikeFormat2(std::string_view bytes) { return bytes.starts_with(kPrefix); }

std::string EncodeFormat2(const Contents& contents) {
  const std::string payload =
      EncodeData(contents, &EncodeDevice).dump(2, ' ', false, Json::error_handler_t::replace);
  std::string out;
  out.reserve(kHeaderSize + payload.size() + kTrailer.size());
  out.append(kPrefix).append(Hex32(Crc32c(payload))).append(kAfterChecksum);
  out.append(payload).append(kTrailer);
  return out;
}

Expected<Contents> DecodeFormat2(std::string_view bytes) {
  ASSIGN_OR_RETURN(std::string_view payload, VerifiedPayload(bytes));
  Json data;
  try {
    data = Json::parse(payload.begin(), payload.end());
  } catch (const Json::exception& e) {
    // The checksum matched, so the writer wrote it so: a bug, not a torn write.
    return DataLoss(std::string("the payload is not valid JSON (") + e.what() + ")");
  }
  return DecodeData(data, &DecodeDevice);
}

}  // namespace accel_dra::checkpoint::format
