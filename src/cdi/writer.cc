// Per-claim CDI spec files in the CDI root directory.

#include <algorithm>
#include <string>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {
namespace fs = std::filesystem;

namespace {
constexpr std::string_view kSuffix = ".json";
}  // namespace

CdiWriter::CdiWriter(Env* env, fs::path cdi_root, std::string driver_name)
    : env_(env),
      root_(std::move(cdi_root)),
      driver_(std::move(driver_name)),
      kind_(KindForDriver(driver_)),
      file_prefix_(VendorForDriver(driver_) + "-" + std::string(kDeviceClass) + "_") {}

CdiWriter::CdiWriter(Env* env, fs::path cdi_root, std::string driver_name, std::string kind,
                     std::string file_prefix, char device_separator)
    : env_(env),
      root_(std::move(cdi_root)),
      driver_(std::move(driver_name)),
      kind_(std::move(kind)),
      file_prefix_(std::move(file_prefix)),
      device_separator_(device_separator) {}

CdiWriter CdiWriter::ForDeviceMetadata(Env* env, fs::path cdi_root, std::string driver_name) {
  std::string kind = MetadataKind(driver_name);
  std::string prefix = driver_name + "-metadata_";
  return CdiWriter(env, std::move(cdi_root), std::move(driver_name), std::move(kind),
                   std::move(prefix), '_');
}

Expected<fs::path> CdiWriter::ClaimSpecPath(std::string_view claim_uid) const {
  RETURN_IF_ERROR(ValidateKind(kind_));
  RETURN_IF_ERROR(ValidateClaimUid(claim_uid));
  return root_ / (file_prefix_ + std::string(claim_uid) + std::string(kSuffix));
}

Status CdiWriter::Annotate(const Status& st, const fs::path& path, std::string_view op) const {
  if (st.ok()) return st;
  switch (st.code()) {
    case Code::kPermissionDenied:
      return {Code::kPermissionDenied,
              "CDI root " + root_.string() + " is not writable (" + st.message() +
                  "); check the --cdi-root mount: it must be a writable host directory that the "
                  "container runtime also reads (usually /var/run/cdi)"};
    case Code::kResourceExhausted:
      return {Code::kResourceExhausted, "no space left to " + std::string(op) + " CDI spec " +
                                            path.string() + " (" + st.message() +
                                            "); free space or inodes on the filesystem holding " +
                                            root_.string()};
    case Code::kNotFound:
      return {Code::kNotFound, "CDI root " + root_.string() + " or a parent is missing (" +
                                   st.message() + "); check the --cdi-root setting and mount"};
    default:
      return {st.code(),
              "cannot " + std::string(op) + " CDI spec " + path.string() + ": " + st.message()};
  }
}

Status CdiWriter::EnsureRoot() {
  if (env_->Exists(root_)) return Status::Ok();
  Status st = env_->CreateDirs(root_, 0755);
  if (st.ok()) return st;
  if (st.code() == Code::kPermissionDenied) return Annotate(st, root_, "create");
  return Status(st.code(), "cannot create CDI root " + root_.string() + " (" + st.message() +
                               "); check the --cdi-root setting and mount");
}

Status CdiWriter::WriteClaimSpec(std::string_view claim_uid, const Spec& spec) {
  return SyncClaimSpec(claim_uid, spec).status();
}

Expected<bool> CdiWriter::SyncClaimSpec(std::string_view claim_uid, const Spec& spec) {
  ASSIGN_OR_RETURN(fs::path path, ClaimSpecPath(claim_uid));
  if (spec.kind != kind_) {
    return InvalidArgument("CDI spec for claim " + std::string(claim_uid) + " has kind " +
                           spec.kind + " but this driver writes kind " + kind_);
  }
  std::string prefix = std::string(claim_uid) + device_separator_;
  for (const auto& d : spec.devices) {
    if (d.name.compare(0, prefix.size(), prefix) != 0) {
      return InvalidArgument("CDI device " + d.name + " in the spec for claim " +
                             std::string(claim_uid) + " must be named " + prefix +
                             "<device> so that runtimes never confuse devices of different claims");
    }
  }
  ASSIGN_OR_RETURN(std::string data, ToJson(spec));
  RETURN_IF_ERROR(EnsureRoot());
  // Repeated prepares of the same claim render identical bytes; skip the rewrite (and its fsyncs).
  if (auto existing = env_->ReadFile(path); existing.ok() && *existing == data) {
    return false;
  }
  // Visible at once, without fsync: the runtime reads the spec right after NodePrepareResources,
  // and what a power loss could take (the root is usually a tmpfs anyway) Preparer::Recover
  // re-creates from the checkpoint.
  RETURN_IF_ERROR(Annotate(env_->WriteFileAtomic(path, data, kSpecFileMode, Durability::kVisible),
                           path, "write"));
  return true;
}

Status CdiWriter::RemoveClaimSpec(std::string_view claim_uid) {
  ASSIGN_OR_RETURN(fs::path path, ClaimSpecPath(claim_uid));
  return Annotate(env_->RemoveFile(path), path, "remove");
}

Expected<std::vector<std::string>> CdiWriter::ListClaimSpecs() {
  if (!env_->Exists(root_)) return std::vector<std::string>{};
  auto names = env_->ListDir(root_);
  if (!names.ok()) {
    return Status(names.status().code(),
                  "cannot list CDI root " + root_.string() + ": " + names.status().message());
  }
  std::vector<std::string> uids;
  for (const auto& name : *names) {
    if (name.size() <= file_prefix_.size() + kSuffix.size()) continue;
    if (name.compare(0, file_prefix_.size(), file_prefix_) != 0) continue;
    if (name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) continue;
    std::string uid =
        name.substr(file_prefix_.size(), name.size() - file_prefix_.size() - kSuffix.size());
    if (!ValidateClaimUid(uid).ok()) continue;
    uids.push_back(std::move(uid));
  }
  std::sort(uids.begin(), uids.end());
  return uids;
}

}  // namespace accel_dra::cdi
