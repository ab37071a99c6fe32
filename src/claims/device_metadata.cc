// KEP-5304 device metadata files and their CDI spec (see device_metadata.h).

#include "accel_dra/claims/device_metadata.h"

#include <map>
#include <nlohmann/json.hpp>

#include "accel_dra/common/log.h"

namespace accel_dra::claims {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr std::string_view kSuffix = ".json";
constexpr mode_t kMetadataFileMode = 0644;

std::string FileName(const std::string& uid, const std::string& request) {
  return uid + "_" + request + std::string(kSuffix);
}

// The base request names of `devices`, each once, in record order.
std::vector<std::string> Requests(const std::vector<model::PreparedDevice>& devices) {
  std::vector<std::string> out;
  for (const auto& d : devices) {
    for (const auto& r : d.request_names) {
      if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
    }
  }
  return out;
}

Json DeviceJson(const std::string& driver, const model::PreparedDevice& d,
                const model::Inventory* inventory) {
  Json dev = {{"driver", driver}, {"pool", d.pool}, {"name", d.device}};
  const model::Device* published = inventory != nullptr ? inventory->Find(d.device) : nullptr;
  if (published != nullptr && !published->attributes.empty()) {
    Json attrs = Json::object();
    for (const auto& [name, value] : published->attributes) attrs[name] = value.ToJson();
    dev["attributes"] = std::move(attrs);
  }
  return dev;
}

Json MetadataJson(const MetadataClaim& claim, const std::string& request_name,
                  const Json& devices) {
  Json doc = {
      {"apiVersion", kDeviceMetadataApiVersion},
      {"kind", "DeviceMetadata"},
      {"metadata",
       {{"name", claim.name}, {"namespace", claim.ns}, {"uid", claim.uid}, {"generation", 1}}}};
  if (!claim.pod_claim_name.empty()) doc["podClaimName"] = claim.pod_claim_name;
  doc["requests"] = Json::array({{{"name", request_name}, {"devices", devices}}});
  return doc;
}

}  // namespace

std::string DeviceMetadataContainerPath(const std::string& driver, const std::string& claim_name,
                                        const std::string& pod_claim_name,
                                        const std::string& request) {
  const bool from_template = !pod_claim_name.empty();
  return std::string(kDeviceMetadataContainerDir) +
         (from_template ? "/resourceclaimtemplates/" + pod_claim_name
                        : "/resourceclaims/" + claim_name) +
         "/" + request + "/" + driver + "-metadata.json";
}

DeviceMetadataFiles::DeviceMetadataFiles(Env* env, fs::path metadata_dir, fs::path cdi_root,
                                         std::string driver_name)
    : env_(env),
      dir_(std::move(metadata_dir)),
      driver_(driver_name),
      spec_writer_(cdi::CdiWriter::ForDeviceMetadata(env, std::move(cdi_root), driver_name)) {}

Status DeviceMetadataFiles::AddIds(const std::string& driver, const std::string& claim_uid,
                                   std::vector<model::PreparedDevice>& devices) {
  for (const std::string& request : Requests(devices)) {
    ASSIGN_OR_RETURN(std::string id, cdi::MetadataDeviceId(driver, claim_uid, request));
    for (auto& d : devices) {
      if (std::find(d.request_names.begin(), d.request_names.end(), request) ==
          d.request_names.end()) {
        continue;
      }
      d.cdi_device_ids.push_back(id);
      break;
    }
  }
  return Status::Ok();
}

Status DeviceMetadataFiles::Write(const MetadataClaim& claim,
                                  const std::vector<model::PreparedDevice>& devices,
                                  const std::map<std::string, std::string>& full_requests,
                                  const model::Inventory* inventory) {
  std::vector<cdi::MetadataMount> mounts;
  std::vector<std::pair<fs::path, std::string>> files;
  for (const std::string& request : Requests(devices)) {
    Json devs = Json::array();
    for (const auto& d : devices) {
      if (std::find(d.request_names.begin(), d.request_names.end(), request) !=
          d.request_names.end()) {
        devs.push_back(DeviceJson(driver_, d, inventory));
      }
    }
    auto full = full_requests.find(request);
    Json doc = MetadataJson(claim, full != full_requests.end() ? full->second : request, devs);
    fs::path path = dir_ / FileName(claim.uid, request);
    files.emplace_back(path, doc.dump(2) + "\n");
    mounts.push_back(
        {request, path.string(),
         DeviceMetadataContainerPath(driver_, claim.name, claim.pod_claim_name, request)});
  }
  ASSIGN_OR_RETURN(cdi::Spec spec, cdi::BuildMetadataSpec(driver_, claim.uid, mounts));
  auto fail = [&](const Status& st, const std::string& what) {
    if (Status rm = Remove(claim.uid); !rm.ok()) spdlog::error("{}", rm.message());
    return st.WithContext("writing the device metadata " + what);
  };
  if (Status st = env_->CreateDirs(dir_, 0755); !st.ok()) return fail(st, "directory");
  for (const auto& [path, data] : files) {
    Status st = env_->WriteFileAtomic(path, data, kMetadataFileMode, Durability::kVisible);
    if (!st.ok()) return fail(st, "file " + path.string());
  }
  if (Status st = spec_writer_.WriteClaimSpec(claim.uid, spec); !st.ok()) {
    return fail(st, "CDI spec");
  }
  return Status::Ok();
}

Expected<std::vector<std::string>> DeviceMetadataFiles::FilesOf(const std::string& claim_uid) {
  std::vector<std::string> out;
  if (!env_->Exists(dir_)) return out;
  ASSIGN_OR_RETURN(auto names, env_->ListDir(dir_));
  const std::string prefix = claim_uid + "_";
  for (const auto& n : names) {
    if (n.compare(0, prefix.size(), prefix) == 0 && n.size() > prefix.size() + kSuffix.size() &&
        n.compare(n.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
      out.push_back(n);
    }
  }
  return out;
}

Status DeviceMetadataFiles::Remove(const std::string& claim_uid) {
  RETURN_IF_ERROR(spec_writer_.RemoveClaimSpec(claim_uid).WithContext("device metadata"));
  auto files = FilesOf(claim_uid);
  if (!files.ok()) return files.status().WithContext("removing device metadata files");
  for (const auto& n : *files) {
    RETURN_IF_ERROR(env_->RemoveFile(dir_ / n).WithContext("removing device metadata"));
  }
  return Status::Ok();
}

Expected<std::set<std::string>> DeviceMetadataFiles::Owned() {
  ASSIGN_OR_RETURN(auto specs, spec_writer_.ListClaimSpecs());
  std::set<std::string> uids(specs.begin(), specs.end());
  if (!env_->Exists(dir_)) return uids;
  ASSIGN_OR_RETURN(auto names, env_->ListDir(dir_));
  for (const auto& n : names) {
    auto sep = n.find('_');
    if (sep == std::string::npos || sep == 0) continue;
    if (n.size() <= kSuffix.size() ||
        n.compare(n.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
      continue;
    uids.insert(n.substr(0, sep));
  }
  return uids;
}

Expected<bool> DeviceMetadataFiles::Restore(const std::string& claim_uid) {
  ASSIGN_OR_RETURN(fs::path spec_path, spec_writer_.ClaimSpecPath(claim_uid));
  if (env_->Exists(spec_path)) return false;
  ASSIGN_OR_RETURN(auto files, FilesOf(claim_uid));
  if (files.empty()) return false;
  std::vector<cdi::MetadataMount> mounts;
  for (const auto& n : files) {
    const fs::path path = dir_ / n;
    ASSIGN_OR_RETURN(std::string data, env_->ReadFile(path));
    Json doc = Json::parse(data, nullptr, /*allow_exceptions=*/false);
    const std::string request =
        n.substr(claim_uid.size() + 1, n.size() - claim_uid.size() - 1 - kSuffix.size());
    if (!doc.is_object() || !doc.contains("metadata") || !doc["metadata"].is_object() ||
        !doc["metadata"].value("name", Json()).is_string()) {
      return InvalidArgument("device metadata file " + path.string() + " is not a DeviceMetadata");
    }
    const std::string name = doc["metadata"]["name"].get<std::string>();
    const Json pod_claim = doc.value("podClaimName", Json());
    mounts.push_back(
        {request, path.string(),
         DeviceMetadataContainerPath(
             driver_, name, pod_claim.is_string() ? pod_claim.get<std::string>() : "", request)});
  }
  ASSIGN_OR_RETURN(cdi::Spec spec, cdi::BuildMetadataSpec(driver_, claim_uid, mounts));
  RETURN_IF_ERROR(spec_writer_.WriteClaimSpec(claim_uid, spec).WithContext("device metadata"));
  return true;
}

}  // namespace accel_dra::claims
