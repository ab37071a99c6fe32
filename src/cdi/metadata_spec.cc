// The claims' device-metadata specs (KEP-5304): names and the spec that mounts the files.

#include <algorithm>
#include <set>
#include <string>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {

std::string MetadataKind(std::string_view driver_name) {
  return std::string(driver_name) + "/metadata";
}

Expected<std::string> MetadataDeviceId(std::string_view driver_name, std::string_view claim_uid,
                                       std::string_view request) {
  RETURN_IF_ERROR(ValidateClaimUid(claim_uid));
  if (request.empty()) return InvalidArgument("a device-metadata CDI device needs a request name");
  std::string name = std::string(claim_uid) + "_" + std::string(request);
  RETURN_IF_ERROR(ValidateDeviceName(name));
  return QualifiedDeviceId(MetadataKind(driver_name), name);
}

Expected<Spec> BuildMetadataSpec(std::string_view driver_name, std::string_view claim_uid,
                                 const std::vector<MetadataMount>& mounts) {
  RETURN_IF_ERROR(ValidateClaimUid(claim_uid));
  if (mounts.empty()) {
    return InvalidArgument("claim " + std::string(claim_uid) + ": no device metadata to mount");
  }
  std::vector<MetadataMount> sorted = mounts;
  std::sort(sorted.begin(), sorted.end(),
            [](const MetadataMount& a, const MetadataMount& b) { return a.request < b.request; });
  Spec spec;
  spec.kind = MetadataKind(driver_name);
  std::set<std::string> seen;
  for (const MetadataMount& m : sorted) {
    if (!seen.insert(m.request).second) {
      return InvalidArgument("claim " + std::string(claim_uid) + ": request " + m.request +
                             " has two device-metadata files");
    }
    Device d;
    d.name = std::string(claim_uid) + "_" + m.request;
    RETURN_IF_ERROR(ValidateDeviceName(d.name));
    d.container_edits.mounts.push_back(ToCdiMount(ReadOnlyMount{m.host_path, m.container_path}));
    spec.devices.push_back(std::move(d));
  }
  RETURN_IF_ERROR(Validate(spec));
  return spec;
}

}  // namespace accel_dra::cdi
