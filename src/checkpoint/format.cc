// The checkpoint codec: which format a file is in, and the claim records formats 1 and 2 share.

#include "format.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "accel_dra/build_info.h"
#include "format_json.h"

namespace accel_dra::checkpoint::format {
namespace {

constexpr std::pair<std::string_view, model::TimeSliceControl> kControls[] = {
    {"none", model::TimeSliceControl::kNone},
    {"nvidia-smi", model::TimeSliceControl::kNvidiaSmi},
};

std::string_view ControlName(model::TimeSliceControl c) {
  for (const auto& [name, value] : kControls) {
    if (value == c) return name;
  }
  return "none";
}

Status DecodeClaimState(const Json& j, const std::string& where, model::ClaimState* out) {
  std::string state;
  RETURN_IF_ERROR(GetString(j, "state", where, &state));
  for (auto s : {model::ClaimState::kPrepareStarted, model::ClaimState::kPrepareCompleted}) {
    if (state == model::ClaimStateName(s)) {
      *out = s;
      return Status::Ok();
    }
  }
  return DataLoss(where + ": unknown state \"" + state + "\"");
}

Status DecodeClaim(const Json& j, const std::string& where, DeviceDecoder decode_device,
                   model::PreparedClaim* c) {
  if (!j.is_object()) return DataLoss(where + ": not an object");
  RETURN_IF_ERROR(GetString(j, "namespace", where, &c->ns));
  RETURN_IF_ERROR(GetString(j, "name", where, &c->name));
  RETURN_IF_ERROR(DecodeClaimState(j, where, &c->state));
  RETURN_IF_ERROR(GetString(j, "cdiSpecFile", where, &c->cdi_spec_file));
  RETURN_IF_ERROR(GetTime(j, "prepareStartedAt", where, &c->prepare_started_at));
  if (j.contains("prepareCompletedAt")) {
    TimePoint done;
    RETURN_IF_ERROR(GetTime(j, "prepareCompletedAt", where, &done));
    c->prepare_completed_at = done;
  }
  const Json* devices = nullptr;
  RETURN_IF_ERROR(GetField(j, "devices", where, &devices));
  if (!devices->is_array()) return WrongType(where, "devices", "an array");
  for (size_t i = 0; i < devices->size(); ++i) {
    model::PreparedDevice d;
    RETURN_IF_ERROR(
        decode_device((*devices)[i], where + ".devices[" + std::to_string(i) + "]", &d));
    c->devices.push_back(std::move(d));
  }
  return Status::Ok();
}

Json EncodeClaim(const model::PreparedClaim& c, DeviceEncoder encode_device) {
  Json j = Json::object();
  j["namespace"] = c.ns;
  j["name"] = c.name;
  j["state"] = std::string(model::ClaimStateName(c.state));
  j["cdiSpecFile"] = c.cdi_spec_file;
  j["prepareStartedAt"] = FormatTime(c.prepare_started_at);
  if (c.prepare_completed_at) j["prepareCompletedAt"] = FormatTime(*c.prepare_completed_at);
  Json devices = Json::array();
  for (const auto& d : c.devices) devices.push_back(encode_device(d));
  j["devices"] = std::move(devices);
  return j;
}

// The "version" member of a parsed file; clamped so that a huge one still reads as newer.
Expected<int64_t> VersionOf(const Json& doc) {
  const Json* version = nullptr;
  RETURN_IF_ERROR(GetField(doc, "version", "top level", &version));
  if (!version->is_number_integer()) return WrongType("top level", "version", "an integer");
  if (version->is_number_unsigned()) {
    return static_cast<int64_t>(std::min<uint64_t>(version->get<uint64_t>(), INT64_MAX));
  }
  return version->get<int64_t>();
}

Expected<Decoded> DecodeParsed(std::string_view bytes) {
  Json doc;
  try {
    doc = Json::parse(bytes.begin(), bytes.end());
  } catch (const Json::exception& e) {
    return DataLoss(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!doc.is_object()) return DataLoss("the top level is not a JSON object");
  ASSIGN_OR_RETURN(int64_t v, VersionOf(doc));
  if (v > kCurrentFormatVersion) {
    return FailedPrecondition("format version " + std::to_string(v) +
                              " is newer than this build of accel-dra (" + build_info::kVersion +
                              ") reads (up to " + std::to_string(kCurrentFormatVersion) +
                              "); was the plugin downgraded?");
  }
  if (v == 2) {
    return DataLoss(
        "format version 2, but the file does not start with the format-2 header (was it "
        "re-serialised or edited?)");
  }
  if (v != 1) return DataLoss("unsupported format version " + std::to_string(v));
  ASSIGN_OR_RETURN(Contents contents, DecodeFormat1(doc));
  return Decoded{std::move(contents), 1};
}

}  // namespace

Json EncodeWireFields(const model::PreparedDevice& d) {
  Json j = Json::object();
  j["requestNames"] = d.request_names;
  j["pool"] = d.pool;
  j["device"] = d.device;
  j["cdiDeviceIds"] = d.cdi_device_ids;
  if (d.share_id) j["shareId"] = *d.share_id;
  return j;
}

Status DecodeWireFields(const Json& j, const std::string& where, model::PreparedDevice* d) {
  if (!j.is_object()) return DataLoss(where + ": not an object");
  RETURN_IF_ERROR(GetStringList(j, "requestNames", where, &d->request_names));
  RETURN_IF_ERROR(GetString(j, "pool", where, &d->pool));
  RETURN_IF_ERROR(GetString(j, "device", where, &d->device));
  RETURN_IF_ERROR(GetStringList(j, "cdiDeviceIds", where, &d->cdi_device_ids));
  if (j.contains("shareId")) {
    RETURN_IF_ERROR(GetString(j, "shareId", where, &d->share_id.emplace()));
  }
  return Status::Ok();
}

Json EncodeTimeSlice(const model::AppliedTimeSlice& t) {
  Json j = {{"control", std::string(ControlName(t.control))}, {"setting", t.setting}};
  if (t.control != model::TimeSliceControl::kNone) j["target"] = t.target;
  return j;
}

Status DecodeTimeSlice(const Json& j, const std::string& where, model::AppliedTimeSlice* t) {
  if (!j.is_object()) return WrongType(where, "timeSlice", "an object");
  const std::string at = where + ".timeSlice";
  std::string control;
  RETURN_IF_ERROR(GetString(j, "control", at, &control));
  bool known = false;
  for (const auto& [name, value] : kControls) {
    if (name == control) {
      t->control = value;
      known = true;
    }
  }
  if (!known) return DataLoss(at + ": unknown control \"" + control + "\"");
  RETURN_IF_ERROR(GetInt(j, "setting", at, 0, 3, &t->setting));
  if (t->control != model::TimeSliceControl::kNone) {
    RETURN_IF_ERROR(GetString(j, "target", at, &t->target));
    if (t->target.empty()) return DataLoss(at + ": empty \"target\"");
  }
  return Status::Ok();
}

Json EncodeMounts(const std::vector<model::FileMount>& mounts) {
  Json out = Json::array();
  for (const auto& m : mounts) {
    out.push_back({{"hostPath", m.host_path}, {"containerPath", m.container_path}});
  }
  return out;
}

Status DecodeMounts(const Json& j, const std::string& where, std::vector<model::FileMount>* out) {
  if (!j.is_array()) return WrongType(where, "mounts", "an array");
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string at = where + ".mounts[" + std::to_string(i) + "]";
    if (!j[i].is_object()) return DataLoss(at + ": not an object");
    model::FileMount m;
    RETURN_IF_ERROR(GetString(j[i], "hostPath", at, &m.host_path));
    RETURN_IF_ERROR(GetString(j[i], "containerPath", at, &m.container_path));
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

Expected<Contents> DecodeData(const Json& data, DeviceDecoder decode_device) {
  if (!data.is_object()) return WrongType("top level", "data", "an object");
  Contents out;
  RETURN_IF_ERROR(GetString(data, "bootId", "data", &out.boot_id));
  RETURN_IF_ERROR(GetString(data, "writerVersion", "data", &out.writer_version));
  const Json* claims = nullptr;
  RETURN_IF_ERROR(GetField(data, "claims", "data", &claims));
  if (!claims->is_object()) return WrongType("data", "claims", "an object");
  for (const auto& [uid, claim] : claims->items()) {
    model::PreparedClaim c;
    RETURN_IF_ERROR(DecodeClaim(claim, "data.claims[\"" + uid + "\"]", decode_device, &c));
    out.state.claims.emplace(uid, std::move(c));
  }
  return out;
}

Json EncodeData(const Contents& contents, DeviceEncoder encode_device) {
  Json claims = Json::object();
  for (const auto& [uid, claim] : contents.state.claims) {
    claims[uid] = EncodeClaim(claim, encode_device);
  }
  Json data = Json::object();
  data["bootId"] = contents.boot_id;
  data["writerVersion"] = contents.writer_version;
  data["claims"] = std::move(claims);
  return data;
}

Expected<std::string> Encode(const Contents& contents) {
  static_assert(kCurrentFormatVersion == 2, "Encode writes format 2");
  try {
    return EncodeFormat2(contents);
  } catch (const std::exception& e) {  // only std::bad_alloc is expected here
    return Internal(std::string("encode checkpoint: ") + e.what());
  }
}

Expected<Decoded> Decode(std::string_view bytes) {
  try {
    if (LooksLikeFormat2(bytes)) {
      ASSIGN_OR_RETURN(Contents contents, DecodeFormat2(bytes));
      return Decoded{std::move(contents), 2};
    }
    return DecodeParsed(bytes);
  } catch (const std::exception& e) {  // a gap in the field checks; still just corruption
    return DataLoss(std::string("malformed: ") + e.what());
  }
}

}  // namespace accel_dra::checkpoint::format
