#pragma once
// Container Device Interface (CDI) support: a model of CDI spec files, their JSON form, the naming
// rules of the CDI parser, the minimum spec version a spec needs, a writer for the per-claim spec
// files the driver hands to the container runtime, and a builder for what a claim spec contains.
//
// Everything here returns errors as values (Status / Expected); nothing throws.
//
// Naming used by the driver (vendor and class are fixed per driver):
//   vendor          k8s.<driver>                        k8s.accel-dra.dev
//   class           device
//   kind            <vendor>/<class>                    k8s.accel-dra.dev/device
//   device name     <claimUID>-<deviceName>             6f1c...-accel-0
//   qualified ID    <kind>=<device name>                k8s.accel-dra.dev/device=6f1c...-accel-0
//   claim spec file <root>/<vendor>-<class>_<claimUID>.json
//
// Container environment a claim spec provides (see BuildClaimSpec). For every allocated device,
// in that device's own edits, with <ID> = EnvKeyForDevice(deviceName) (the device name upper-cased,
// every character other than A-Z and 0-9 replaced by '_'; "accel-0" -> "ACCEL_0"):
//   ACCEL_DEVICE_<ID>=<deviceName>
//   ACCEL_DEVICE_<ID>_RESOURCE_CLAIM=<namespace>/<name>
//   ACCEL_DEVICE_<ID>_RESOURCE_CLAIM_UID=<claimUID>
//   ACCEL_DEVICE_<ID>_SHARING_STRATEGY=Exclusive|TimeSlicing|SpacePartitioning
//   ACCEL_DEVICE_<ID>_TIMESLICE_INTERVAL=<interval>        (only with TimeSlicing)
//   ACCEL_DEVICE_<ID>_TIMESLICE_ENFORCED=true|false        (only with TimeSlicing: whether the
//                                                           driver applied the interval to the
//                                                           hardware or it is advisory)
//   ACCEL_DEVICE_<ID>_PARTITION_COUNT=<n>                  (only with SpacePartitioning)
//   <extra key>=<extra value>                              (free-form, per device)
// and once per claim, in the spec-level edits (applied whenever any device of the claim is given
// to a container), with <CLAIM> = EnvKeyForDevice(claimUID) (VisibleDevicesVariable):
//   ACCEL_VISIBLE_DEVICES_<CLAIM>=<deviceName>,<deviceName>,...   (all devices of the claim)
// The merged form, what a container holding several claims of this driver can use: the union of
// the values of all ACCEL_VISIBLE_DEVICES_* variables (comma-separated device names; the probe's
// inspect tool reports it as ACCEL_VISIBLE_DEVICES). A plain ACCEL_VISIBLE_DEVICES is no longer
// set by the driver: as one variable per claim it collided (the runtime kept one claim's list).
//
// Files a claim spec gives the container (spec-level read-only bind mounts, deduplicated):
//   model::kInspectToolContainerPath    the inspect tool (the plugin's --inspect-tool)
//   model::kDriverVersionContainerPath  the (simulated) driver's version file of a device
// Device nodes keep their host path as hostPath; their container path is "/dev/" + what follows
// the last "/dev/" of the host path (ContainerDevicePath), so a node that lives under another
// root on the host ("/host/dev/nvidia0", "<run dir>/dev/accel-sim0") appears at its usual place.
//
// Why the device name and not a number is the key: one container can receive devices from several
// claims; each claim spec is built on its own, so a per-claim counter ("ACCEL_DEVICE_0") would
// give the first device of every claim the same variable and the runtime would keep only one of
// them. Device names are unique among the devices the driver publishes on a node (DRA device
// names are DNS labels, so the mapping to <ID> is one-to-one), hence the per-device variables never
// collide across claims; claim UIDs are unique, so the per-claim ACCEL_VISIBLE_DEVICES_<CLAIM>
// never collide either. Limitations:
//   * ACCEL_VISIBLE_DEVICES_<CLAIM> lists every device of the claim, also those of requests a
//     container did not ask for (resources.claims[].request); the per-device variables are exact.
//   * The same device in two claims of one container (admin access) sets the same variables twice;
//     the runtime keeps one value.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/common/status.h"
#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::cdi {

inline constexpr std::string_view kDefaultDriverName = "accel-dra.dev";
// The class of every CDI device the driver writes.
inline constexpr std::string_view kDeviceClass = "device";
// Never write a cdiVersion below this (project rule; claim device names may start with a digit).
inline constexpr std::string_view kFloorVersion = "0.5.0";
// The newest spec version this model knows.
inline constexpr std::string_view kLatestVersion = "1.1.0";
// File mode of spec files: the container runtime must be able to read them.
inline constexpr mode_t kSpecFileMode = 0644;
// Mount options of a read-only bind of a single file (runc: bind, then remount read-only).
inline constexpr std::string_view kReadOnlyBindOptions[] = {"ro", "nosuid", "nodev", "bind"};

// ---- Spec model (field names follow the CDI JSON keys) -----------------------------------------

struct DeviceNode {
  std::string path;       // path in the container (required)
  std::string host_path;  // path on the host when it differs (needs cdiVersion 0.5.0)
  std::string type;       // "", "b", "c", "u" or "p"
  std::optional<int64_t> major;
  std::optional<int64_t> minor;
  std::optional<uint32_t> file_mode;
  std::string permissions;  // subset of "rwm"; empty means "rwm"
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  bool operator==(const DeviceNode&) const = default;
};

struct Mount {
  std::string host_path;       // required
  std::string container_path;  // required
  std::vector<std::string> options;
  std::string type;  // needs cdiVersion 0.4.0
  bool operator==(const Mount&) const = default;
};

struct Hook {
  std::string hook_name;  // prestart, createRuntime, createContainer, startContainer, poststart,
                          // poststop
  std::string path;       // required
  std::vector<std::string> args;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::optional<int> timeout;
  bool operator==(const Hook&) const = default;
};

struct IntelRdt {  // needs cdiVersion 0.7.0
  std::string clos_id;
  std::string l3_cache_schema;
  std::string mem_bw_schema;
  std::vector<std::string> schemata;  // needs cdiVersion 1.1.0
  bool enable_monitoring = false;     // needs cdiVersion 1.1.0
  bool operator==(const IntelRdt&) const = default;
};

struct NetDevice {  // needs cdiVersion 1.1.0
  std::string host_interface_name;
  std::string name;
  bool operator==(const NetDevice&) const = default;
};

struct ContainerEdits {
  std::vector<std::string> env;  // "KEY=VALUE", applied in order
  std::vector<DeviceNode> device_nodes;
  std::vector<Hook> hooks;
  std::vector<Mount> mounts;
  std::vector<uint32_t> additional_gids;  // needs cdiVersion 0.7.0
  std::optional<IntelRdt> intel_rdt;      // needs cdiVersion 0.7.0
  std::vector<NetDevice> net_devices;     // needs cdiVersion 1.1.0
  bool empty() const;
  bool operator==(const ContainerEdits&) const = default;
};

struct Device {
  std::string name;
  std::map<std::string, std::string> annotations;  // needs cdiVersion 0.6.0
  ContainerEdits container_edits;                  // must not be empty
  bool operator==(const Device&) const = default;
};

struct Spec {
  // Empty: MinimumVersion(*this) is written. Otherwise it must be a known version that is not
  // below MinimumVersion(*this).
  std::string cdi_version;
  std::string kind;
  std::map<std::string, std::string> annotations;  // needs cdiVersion 0.6.0
  std::vector<Device> devices;                     // at least one
  ContainerEdits container_edits;                  // applied when any device is requested
  bool operator==(const Spec&) const = default;
};

// ---- Versions ---------------------------------------------------------------------------------

// The lowest cdiVersion that can express every feature `spec` uses, never below kFloorVersion.
std::string MinimumVersion(const Spec& spec);
// True for the spec versions the CDI project has released (0.3.0 ... 1.1.0).
bool IsKnownVersion(std::string_view version);
// <0, 0, >0 like strcmp, for dotted numeric versions ("0.10.0" > "0.9.0").
int CompareVersions(std::string_view a, std::string_view b);

// ---- Names ------------------------------------------------------------------------------------
// Validators return InvalidArgument with a message that names the offending value and rule.

Status ValidateVendorName(std::string_view vendor);
Status ValidateClassName(std::string_view class_name);  // '.' allowed (needs cdiVersion 0.6.0)
Status ValidateDeviceName(std::string_view name);
Status ValidateKind(std::string_view kind);  // "<vendor>/<class>"
// A claim UID usable in device names and file names (device-name charset; no '/').
Status ValidateClaimUid(std::string_view claim_uid);

std::string VendorForDriver(std::string_view driver_name);  // "k8s.<driver>"
std::string KindForDriver(std::string_view driver_name);    // "k8s.<driver>/device"
// "<claimUID>-<deviceName>", validated as a CDI device name.
Expected<std::string> ClaimDeviceName(std::string_view claim_uid, std::string_view device_name);
// "<kind>=<name>", both validated.
Expected<std::string> QualifiedDeviceId(std::string_view kind, std::string_view name);
// The fully-qualified ID of a claim's device, what NodePrepareResources returns to the kubelet.
Expected<std::string> ClaimDeviceId(std::string_view driver_name, std::string_view claim_uid,
                                    std::string_view device_name);
// "k8s.<driver>-device_<claimUID>.json" (no directory).
Expected<std::string> ClaimSpecFileName(std::string_view driver_name, std::string_view claim_uid);
// The environment-variable key of a device (see the top of this file).
std::string EnvKeyForDevice(std::string_view device_name);
// "ACCEL_VISIBLE_DEVICES_" + EnvKeyForDevice(claim_uid): the claim's list of devices.
std::string VisibleDevicesVariable(std::string_view claim_uid);
inline constexpr std::string_view kVisibleDevicesPrefix = "ACCEL_VISIBLE_DEVICES";

// ---- JSON -------------------------------------------------------------------------------------

// Checks everything a CDI runtime checks when loading: names, kind, env syntax, device-node type
// and permissions, mounts, hooks, unique device names, non-empty device edits, the version.
Status Validate(const Spec& spec);
// Validates and renders the spec as pretty-printed JSON (trailing newline). Empty fields are
// omitted. The output depends only on the spec: equal specs give byte-identical JSON.
Expected<std::string> ToJson(const Spec& spec);
// Parses a CDI spec JSON document strictly (unknown fields are errors) and validates it.
Expected<Spec> ParseJson(std::string_view json);

// ---- Claim specs on disk ----------------------------------------------------------------------

// Writes and removes the per-claim spec files of one driver in one CDI directory. Only touches
// files whose names carry this driver's prefix; other vendors' files are never read or changed.
// All file access goes through the Env. Thread-compatible (callers serialise per claim).
class CdiWriter {
 public:
  CdiWriter(Env* env, std::filesystem::path cdi_root,
            std::string driver_name = std::string(kDefaultDriverName));
  // The writer of the claims' device-metadata specs (KEP-5304, see BuildMetadataSpec): kind
  // MetadataKind(driver), files "<driver>-metadata_<claimUID>.json", device names
  // "<claimUID>_<request>". Lists and touches only files with that prefix.
  static CdiWriter ForDeviceMetadata(Env* env, std::filesystem::path cdi_root,
                                     std::string driver_name);

  const std::filesystem::path& root() const { return root_; }
  const std::string& kind() const { return kind_; }
  Env* env() const { return env_; }
  // Where the claim's spec file lives.
  Expected<std::filesystem::path> ClaimSpecPath(std::string_view claim_uid) const;

  // Creates the CDI root directory when it is missing.
  Status EnsureRoot();
  // Atomically replaces the claim's spec file (mode 0644) with `spec`. The spec must have this
  // writer's kind and every device name must start with "<claimUID>-". Creates the root directory
  // when missing. Rewriting identical content is skipped, so repeated prepares are cheap.
  // Errors: InvalidArgument (bad spec), PermissionDenied (root not writable), ResourceExhausted
  // (disk full), others as the filesystem reports them; messages name the path.
  Status WriteClaimSpec(std::string_view claim_uid, const Spec& spec);
  // As WriteClaimSpec; true when the file was (re)written, false when it already held this spec.
  Expected<bool> SyncClaimSpec(std::string_view claim_uid, const Spec& spec);
  // Removes the claim's spec file; a missing file is not an error.
  Status RemoveClaimSpec(std::string_view claim_uid);
  // Claim UIDs that have a spec file of this driver in the root, sorted. A missing root is empty.
  Expected<std::vector<std::string>> ListClaimSpecs();
  // The claim's spec file, parsed and validated (ParseJson). NotFound when there is none; other
  // errors name the file.
  Expected<Spec> ReadClaimSpec(std::string_view claim_uid);

 private:
  CdiWriter(Env* env, std::filesystem::path cdi_root, std::string driver_name, std::string kind,
            std::string file_prefix, char device_separator);
  Status Annotate(const Status& st, const std::filesystem::path& path, std::string_view op) const;

  Env* env_;
  std::filesystem::path root_;
  std::string driver_;
  std::string kind_;
  std::string file_prefix_;      // "<vendor>-<class>_"
  char device_separator_ = '-';  // device names are "<claimUID><separator>..."
};

// ---- What the driver puts in a claim spec -----------------------------------------------------

// A file or directory of the host bound read-only into the container.
using ReadOnlyMount = model::FileMount;
// The CDI mount for `m`: type "bind", options kReadOnlyBindOptions.
Mount ToCdiMount(const ReadOnlyMount& m);

// The container path of a host device node: "/dev/" + the part after the last "/dev/" of
// `host_path` ("/host/dev/nvidia0" -> "/dev/nvidia0", "/run/x/dev/dri/card1" -> "/dev/dri/card1",
// "/dev/accel/accel0" unchanged). A path without "/dev/" is returned unchanged.
std::string ContainerDevicePath(std::string_view host_path);

struct ClaimInfo {
  std::string uid;
  std::string namespace_;
  std::string name;
};

// One CDI device of a claim spec: a prepared device's record and what the spec needs besides.
struct ClaimSpecDevice {
  // The record: `device` and `pool` name it; `sharing` and TimeSliceEnforced() give its sharing
  // variables; `device_nodes` (host paths) its device nodes; `mounts` files the device needs in
  // the container (they go into the spec-level edits, deduplicated across the claim's devices).
  // Nodes or mounts not recorded (nullopt) are none: the caller fills them in beforehand.
  model::PreparedDevice device;
  int index = 0;  // position within the claim; devices are emitted in (index, pool, name) order
  // Extra per-device variables, emitted in order after the standard ones. Keys must be valid
  // variable names ([A-Za-z_][A-Za-z0-9_]*) and must not repeat a key of the same device.
  std::vector<std::pair<std::string, std::string>> extra_env;
};

// What every claim spec of the plugin gets besides its devices.
struct ClaimSpecExtras {
  // Spec-level read-only mounts (e.g. the inspect tool at model::kInspectToolContainerPath).
  std::vector<ReadOnlyMount> read_only_mounts;
  // TESTING ONLY (--testing-expose-all-devices): host device nodes of devices the claim does not
  // hold, exposed in the spec-level edits, and their names appended to the claim's
  // ACCEL_VISIBLE_DEVICES_<CLAIM>.
  // A deliberate isolation breach for the conformance probe's negative test.
  std::vector<std::string> unclaimed_device_node_paths;
  std::vector<std::string> unclaimed_device_names;
};

// Builds the claim's spec: kind KindForDriver(driver), one CDI device "<claimUID>-<deviceName>"
// per prepared device carrying that device's variables and device nodes (hostPath = the host path,
// path = ContainerDevicePath(host path)), plus ACCEL_VISIBLE_DEVICES_<CLAIM>, the devices'
// read-only mounts and `extras` in the spec-level edits (mounts sorted by container path,
// duplicates merged). cdi_version is left empty (so the minimum is written). Deterministic: equal
// inputs give equal specs, whatever the input order. InvalidArgument for bad names, no devices,
// duplicate devices, colliding variable names, SpacePartitioning without a partition count, or
// two mounts with one container path and different host paths.
Expected<Spec> BuildClaimSpec(std::string_view driver_name, const ClaimInfo& claim,
                              const std::vector<ClaimSpecDevice>& devices,
                              const ClaimSpecExtras& extras = {});

// What a claim spec this driver wrote says about the claim: the inverse of BuildClaimSpec, for
// recovery when the checkpoint that recorded the claim is lost. It reads only what BuildClaimSpec
// writes (see the top of this file); unknown variables (a device's extra_env) are ignored.
struct ClaimSpecContents {
  struct DeviceEntry {
    std::string
        device;  // from the CDI name "<claimUID>-<device>", checked against ACCEL_DEVICE_<ID>
    model::SharingSettings sharing;   // ..._SHARING_STRATEGY, _TIMESLICE_INTERVAL, _PARTITION_COUNT
    bool timeslice_enforced = false;  // ..._TIMESLICE_ENFORCED=true
    std::vector<std::string> device_nodes;  // host paths (hostPath, else path)
  };
  ClaimInfo claim;                   // the UID given; namespace and name from _RESOURCE_CLAIM
  std::vector<DeviceEntry> devices;  // in the spec's order (the order of the records)
  // The spec-level read-only mounts (the inspect tool's among them, when there was one).
  std::vector<ReadOnlyMount> mounts;
};
// InvalidArgument naming the device and variable when `spec` is not what BuildClaimSpec writes
// for `claim_uid` (another kind, a device not named for the claim, a variable missing or
// malformed, devices disagreeing on the claim).
Expected<ClaimSpecContents> ReadBackClaimSpec(std::string_view driver_name,
                                              std::string_view claim_uid, const Spec& spec);

// ---- Device metadata (KEP-5304) ---------------------------------------------------------------
// Per prepared claim and request, a DeviceMetadata file is bind-mounted read-only into the
// containers that use the request, through a CDI device of a second spec per claim (a spec has one
// kind, and the metadata kind is the upstream helper's):
//   kind       <driver>/metadata                        accel-dra.dev/metadata
//   device     <claimUID>_<request>  (base request name, subrequest stripped)
//   CDI ID     <driver>/metadata=<claimUID>_<request>
//   spec file  <root>/<driver>-metadata_<claimUID>.json  (one file for all requests of a claim)

// "<driver>/metadata".
std::string MetadataKind(std::string_view driver_name);
// "<driver>/metadata=<claimUID>_<request>", validated.
Expected<std::string> MetadataDeviceId(std::string_view driver_name, std::string_view claim_uid,
                                       std::string_view request);

// One request's metadata file: where it is on the host and where the container sees it.
struct MetadataMount {
  std::string request;  // base request name
  std::string host_path;
  std::string container_path;
};
// The claim's metadata spec: kind MetadataKind(driver), one device "<claimUID>_<request>" per
// entry whose edits bind-mount the file read-only (kReadOnlyBindOptions). Devices sorted by
// request; InvalidArgument for bad names, no entries or a repeated request.
Expected<Spec> BuildMetadataSpec(std::string_view driver_name, std::string_view claim_uid,
                                 const std::vector<MetadataMount>& mounts);

}  // namespace accel_dra::cdi
