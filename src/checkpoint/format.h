#pragma once
// Internal: the checkpoint codec, the one place where prepared-claim records become bytes and
// back. Encode writes the current format; Decode reads every format ever written (the format
// history is in include/accel_dra/checkpoint/checkpoint.h, the layouts in format_v1.cc and
// format_v2.cc). Nothing here throws: JSON errors are DataLoss.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/checkpoint/checkpoint.h"

namespace accel_dra::checkpoint::format {

using Json = nlohmann::json;

// Everything a checkpoint file holds.
struct Contents {
  State state;
  std::string boot_id;         // boot ID of the writer's boot
  std::string writer_version;  // accel-dra version of the writer
};

struct Decoded {
  Contents contents;
  int format_version = 0;
};

// The file's bytes in format kCurrentFormatVersion. Internal error only when out of memory.
Expected<std::string> Encode(const Contents& contents);

// Reads a file of any known format. DataLoss when it is unusable (the message says why: not
// JSON, checksum mismatch, missing or malformed field with its location); FailedPrecondition when
// its format is newer than this build reads.
Expected<Decoded> Decode(std::string_view bytes);

// ---- Per format (format_v1.cc, format_v2.cc) and what they share (format.cc) ----------------

// Format 1: `doc` is the parsed file.
Expected<Contents> DecodeFormat1(const Json& doc);
// Format 2: the exact bytes; true from LooksLikeFormat2 when they start with its fixed header.
bool LooksLikeFormat2(std::string_view bytes);
Expected<Contents> DecodeFormat2(std::string_view bytes);
std::string EncodeFormat2(const Contents& contents);

// The "data" object shared by formats 1 and 2: {"bootId", "writerVersion", "claims": {uid:
// claim}}, a claim being {"namespace", "name", "state", "cdiSpecFile", "prepareStartedAt",
// "prepareCompletedAt" (optional), "devices": [...]}. Devices differ by format.
using DeviceDecoder = Status (*)(const Json& j, const std::string& where, model::PreparedDevice* d);
using DeviceEncoder = Json (*)(const model::PreparedDevice& d);
Expected<Contents> DecodeData(const Json& data, DeviceDecoder decode_device);
Json EncodeData(const Contents& contents, DeviceEncoder encode_device);

// Device members formats 1 and 2 spell alike; `where` is the device's location.
//   {"requestNames": ["..."], "pool": "...", "device": "...", "cdiDeviceIds": ["..."],
//    "shareId": "..." (optional)}: the wire fields, in the device object itself
Json EncodeWireFields(const model::PreparedDevice& d);
Status DecodeWireFields(const Json& j, const std::string& where, model::PreparedDevice* d);
//   "timeSlice": {"control": "none" | "nvidia-smi", "target": "..." (with nvidia-smi),
//                 "setting": 0..3}
//   "mounts": [{"hostPath": "...", "containerPath": "..."}]
Json EncodeTimeSlice(const model::AppliedTimeSlice& t);
Status DecodeTimeSlice(const Json& j, const std::string& where, model::AppliedTimeSlice* t);
Json EncodeMounts(const std::vector<model::FileMount>& mounts);
Status DecodeMounts(const Json& j, const std::string& where, std::vector<model::FileMount>* out);

}  // namespace accel_dra::checkpoint::format
