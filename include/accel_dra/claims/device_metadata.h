#pragma once
// DeviceMetadataFiles: KEP-5304 device metadata ("DRA Device Attributes Downward API") as the
// upstream kubelet-plugin helper provides it, written by the claims core (--device-metadata).
//
// Per prepared claim and request (base name, subrequest stripped):
//  - a file `<metadata dir>/<claimUID>_<request>.json` (mode 0644; the metadata dir is
//    `<plugin data dir>/dra-device-metadata`) holding one DeviceMetadata object:
//      {"apiVersion": "metadata.resource.k8s.io/v1beta1", "kind": "DeviceMetadata",
//       "metadata": {"name", "namespace", "uid", "generation": 1},
//       "podClaimName": <the claim's resource.kubernetes.io/pod-claim-name annotation, if any>,
//       "requests": [{"name": <request as allocated, "<request>/<subrequest>" kept>,
//                     "devices": [{"driver", "pool", "name",
//                                  "attributes": {<name>: {"int"|"bool"|"string"|"version":
//                                  v}}}]}]}
//    (attributes: the device's as this node publishes them);
//  - one CDI device `<claimUID>_<request>` in the claim's metadata spec (cdi::BuildMetadataSpec,
//    `<CDI root>/<driver>-metadata_<claimUID>.json`) bind-mounting that file read-only at
//      /var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claim
//      name>/<request>/<driver>-metadata.json
//    or, for a claim made from a ResourceClaimTemplate (the annotation is set),
//      /var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/<podClaimName>/<request>/<driver>-metadata.json
//  - the CDI ID `<driver>/metadata=<claimUID>_<request>` appended to the cdi_device_ids of the
//    request's first device in the prepare answer (AddIds; recorded in the checkpoint with it), so
//    kubelet hands it to exactly the containers that use that request.
// Promises: Write leaves either all files of the claim or none (a failure removes what it wrote);
// Remove removes the claim's spec and files (missing ones are fine) and works with the feature
// off; Owned lists the claims that have any such file; Restore re-creates a missing spec from the
// files (after a reboot emptied the CDI root). All file access goes through the Env.
// Thread-compatible: callers serialise per claim.

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/common/env.h"
#include "accel_dra/common/status.h"
#include "accel_dra/model/device.h"
#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::claims {

inline constexpr std::string_view kDeviceMetadataApiVersion = "metadata.resource.k8s.io/v1beta1";
inline constexpr std::string_view kDeviceMetadataContainerDir =
    "/var/run/kubernetes.io/dra-device-attributes";
inline constexpr std::string_view kPodClaimNameAnnotation = "resource.kubernetes.io/pod-claim-name";

// The in-container path of a request's metadata file (see the top of this file).
std::string DeviceMetadataContainerPath(const std::string& driver, const std::string& claim_name,
                                        const std::string& pod_claim_name,
                                        const std::string& request);

struct MetadataClaim {
  std::string ns;
  std::string name;
  std::string uid;
  std::string pod_claim_name;  // "" = referenced by name (not from a template)
};

class DeviceMetadataFiles {
 public:
  DeviceMetadataFiles(Env* env, std::filesystem::path metadata_dir, std::filesystem::path cdi_root,
                      std::string driver_name);

  // Appends the metadata CDI ID of each request to its first device (in record order).
  static Status AddIds(const std::string& driver, const std::string& claim_uid,
                       std::vector<model::PreparedDevice>& devices);
  // Writes the files and the spec for `devices` (as AddIds left them); `full_requests` maps a
  // base request name to the name as allocated (subrequest kept; missing = the base name);
  // `inventory` gives the attributes (nullptr: none).
  Status Write(const MetadataClaim& claim, const std::vector<model::PreparedDevice>& devices,
               const std::map<std::string, std::string>& full_requests,
               const model::Inventory* inventory);
  Status Remove(const std::string& claim_uid);
  Expected<std::set<std::string>> Owned();
  // True when the claim has files but no spec and the spec was written again from them.
  Expected<bool> Restore(const std::string& claim_uid);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  Expected<std::vector<std::string>> FilesOf(const std::string& claim_uid);  // names in dir_
  Status WriteSpec(const std::string& claim_uid, const std::vector<cdi::MetadataMount>& mounts);

  Env* env_;
  std::filesystem::path dir_;
  std::string driver_;
  cdi::CdiWriter spec_writer_;
};

}  // namespace accel_dra::claims
