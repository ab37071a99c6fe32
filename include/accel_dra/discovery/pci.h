#pragma once
// PCI/sysfs discovery: the accelerators of any known vendor, read from sysfs, /proc and /dev under
// a HostRoot (a fixture tree in tests), with product names from the PCI ID database (libpci).
//
// Promises:
// - Every host read goes through the Env under the HostRoot; symlinks are resolved by reading
//   them (Env::ReadLink) and path arithmetic, never by following them on the real host. The one
//   exception is the PCI ID database file, which libpci opens itself (PciOptions::ids_file).
// - Kept: display controllers (class 0x03) and processing accelerators (class 0x12) of NVIDIA
//   0x10de, AMD 0x1002 (type "gpu"), Intel 0x8086 (class 0x03 only, type "gpu"), Habana 0x1da3,
//   Qualcomm 0x17cb, Groq 0x1de0, Tenstorrent 0x1e52 (class 0x12 only, type "accelerator").
//   A device whose class file is missing or unreadable is still kept when its vendor is known
//   and it is bound to that vendor's accelerator kernel driver. Other display/accelerator
//   functions (BMC VGA, virtual GPUs, unknown vendors) are skipped: one log line per vendor.
// - Names are derived from the PCI address alone (PciDeviceName): "<type>-<domain>-<bus>-<device>-
//   <function>", e.g. gpu-0000-3b-00-0, so a device keeps its name across rescans, restarts and
//   reboots, whatever other devices come or go (and whether or not NVML answers). The identity
//   (model::Device::identity) is the PCI bus ID, plus NVML's UUID where NVML enriches the device.
//   PCI addresses with a domain above 0xffff (up to 8 hex digits, e.g. VMD) are accepted.
// - Attributes (driver domain unless qualified): type, vendor, vendorID, deviceID,
//   subsystemVendorID, subsystemDeviceID, productName (≤ 64 bytes), index (per type, in PCI
//   address order: it changes when a device before it comes or goes; the name does not), pciBusID,
//   numaNode (omitted when -1), and the standard resource.kubernetes.io/pcieRoot, .../pciBusID and
//   .../numaNode (the same values, same omission), driverName (kernel module),
//   driverVersion and driverVersionRaw by the version policy of discovery/version.h. Capacity
//   "memory" where the kernel driver reports VRAM (amdgpu mem_info_vram_total, Intel
//   lmem_total_bytes). No uuid: PCI has none.
// - Device nodes: only those that exist under <root>/dev: /dev/dri/cardN + renderDN (from the
//   device's drm/ directory), /dev/accel/accelN (accel/), /dev/nvidia<minor> (from
//   /proc/driver/nvidia/gpus/<bdf>/information) + /dev/nvidiactl, /dev/nvidia-uvm,
//   /dev/nvidia-uvm-tools for NVIDIA, /dev/kfd for AMD.
// - Bad input (unreadable or malformed files, odd entries) never throws or crashes: the field is
//   left out and logged once per (device, file) for the life of the backend; the device is still
//   published with what is known. Discover() fails only when the PCI device directory itself
//   cannot be listed.

#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/backend.h"
#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

struct PciOptions {
  // PCI ID database (pci.ids syntax, optionally .gz when libpci has zlib). Empty: libpci's
  // default (/usr/share/misc/pci.ids on Debian, package "pci.ids"). When the file can't be
  // loaded, product names fall back to "<Vendor> device 0x<id>" (logged once).
  std::filesystem::path ids_file;
  // Also ask udev's hwdb for names not in the file (host dependent; off for reproducibility).
  bool use_hwdb = false;
};

class PciBackend : public Backend {
 public:
  PciBackend(Env* env, HostRoot root, PciOptions options = {});
  ~PciBackend() override;
  PciBackend(const PciBackend&) = delete;
  PciBackend& operator=(const PciBackend&) = delete;

  std::string Name() const override { return "pci"; }
  // Thread-safe (serialised internally).
  Expected<std::vector<model::Device>> Discover() override;

 private:
  struct Names;  // libpci state
  struct Found;
  struct Sysfs;     // where one PCI function lives in sysfs
  struct Identity;  // its vendor, class, bound driver and the type it is published as
  std::optional<Found> Probe(const std::string& bdf);
  // Probe's steps, in the order it takes them (each logs what it cannot read and goes on).
  Sysfs Locate(const std::string& bdf);
  std::optional<Identity> Identify(const Sysfs& at);
  void AddIdentity(const Sysfs& at, const Identity& id, model::Device& d);
  void AddIds(const Sysfs& at, const Identity& id, model::Device& d);
  void AddNumaNode(const Sysfs& at, model::Device& d);
  void AddDriverVersion(const Sysfs& at, const std::string& module, model::Device& d);
  // Returns the DRM card names (cardN) the memory step looks under.
  std::vector<std::string> AddDeviceNodes(const Sysfs& at, const Identity& id, model::Device& d);
  void AddMemory(const Sysfs& at, const std::vector<std::string>& drm_cards, model::Device& d);
  std::string ProductName(const std::string& vendor_display, uint32_t vendor, int64_t device);
  // Reads a whole sysfs/proc file, trimmed; nullopt (logged once for `who`) when unreadable.
  std::optional<std::string> ReadTrimmed(const std::string& who,
                                         const std::filesystem::path& host_path,
                                         bool missing_is_fine);
  void WarnOnce(const std::string& key, const std::string& message);

  Env* env_;
  HostRoot root_;
  PciOptions options_;
  std::mutex mu_;
  std::unique_ptr<Names> names_;
  std::set<std::string> warned_;
};

// "00000000:3B:00.0", "0000:3b:00.0", "3b:00.0", "10000:3b:00.0" → "0000:3b:00.0" /
// "10000:3b:00.0": lower case, the domain with at least 4 hex digits and no more leading zeros
// (as Linux names sysfs entries). nullopt if malformed (domain > 8 hex digits, device > 0x1f,
// function > 7).
std::optional<std::string> NormalizePciBusId(std::string_view bus_id);

// The name of the PCI device of `type` at normalised bus ID `bdf`: the type, then the address's
// fields joined by '-': gpu + 0000:3b:00.0 → "gpu-0000-3b-00-0", accelerator + 10000:3b:00.0 →
// "accelerator-10000-3b-00-0". Always a DNS label: at most 28 characters with our types.
std::string PciDeviceName(std::string_view type, std::string_view bdf);

// The discovery result in a stable, reviewable form for golden files:
// [{"name", "attributes": {name: {"int"|"bool"|"string"|"version": v}}, "capacity": {name: q},
//   "deviceNodes": [...]}], in the given order.
nlohmann::json DevicesToJson(const std::vector<model::Device>& devices);

}  // namespace accel_dra::discovery
