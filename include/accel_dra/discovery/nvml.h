#pragma once
// NVML, loaded at run time. libnvidia-ml.so.1 is dlopen'ed only when present (no NVIDIA headers or
// link-time dependency), and only the few symbols we use are resolved. The plugin builds and runs
// without it: a missing library is a NotFound status, an NVML that fails to initialise is a
// FailedPrecondition, and the caller falls back to PCI/sysfs data (NvmlProbe says so once).
//
// NVML facts are plain data (NvmlInfo) keyed by the normalised PCI bus ID, so they can be merged
// onto the devices PCI discovery found (EnrichWithNvml) without either side knowing the other.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/discovery/backend.h"
#include "accel_dra/discovery/pci.h"  // NormalizePciBusId
#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

inline constexpr const char* kNvmlDefaultLibrary = "libnvidia-ml.so.1";

// One GPU as NVML reports it. Fields NVML could not tell are empty / zero / nullopt (the reason
// is in NvmlInfo::warnings).
struct NvmlGpu {
  unsigned index = 0;
  std::string uuid;    // "GPU-…"
  std::string name;    // "NVIDIA H100 80GB HBM3"
  std::string bus_id;  // normalised: "0000:3b:00.0" (lower case, 4-digit domain)
  uint64_t memory_total = 0;
  std::optional<int> cc_major;  // CUDA compute capability
  std::optional<int> cc_minor;
  std::optional<unsigned> architecture;  // nvmlDeviceArchitecture_t; nullopt when unknown
  bool operator==(const NvmlGpu&) const = default;
};

struct NvmlInfo {
  std::string driver_version;   // as NVML reports it, e.g. "550.54.15"
  int cuda_driver_version = 0;  // e.g. 12040 for CUDA 12.4; 0 when unknown
  std::vector<NvmlGpu> gpus;
  // Per-GPU or per-field problems that did not stop the query (e.g. one GPU's UUID unreadable).
  std::vector<std::string> warnings;
};

class NvmlLibrary {
 public:
  // dlopen()s `path` (a bare soname is searched the usual way) and resolves the symbols we use.
  // NotFound when the library can't be loaded (the message carries dlerror(), which names the
  // path); FailedPrecondition when a required symbol is missing.
  static Expected<std::unique_ptr<NvmlLibrary>> Open(const std::string& path = kNvmlDefaultLibrary);
  ~NvmlLibrary();
  NvmlLibrary(const NvmlLibrary&) = delete;
  NvmlLibrary& operator=(const NvmlLibrary&) = delete;

  const std::string& path() const { return path_; }
  // Whether the optional nvmlDeviceGetArchitecture symbol exists in this library.
  bool has_architecture() const;

  // nvmlInit_v2 / nvmlShutdown. NVML reference-counts them. Init failure is FailedPrecondition.
  Status Init();
  Status Shutdown();
  // Need Init() first.
  Expected<std::string> DriverVersion();
  Expected<int> CudaDriverVersion();
  // Lists all GPUs. A GPU whose handle or PCI bus ID can't be read is left out (a warning is
  // added); other unreadable fields are left unset. Errors only when the count can't be read.
  Expected<std::vector<NvmlGpu>> ListGpus(std::vector<std::string>* warnings = nullptr);

  // Init, read the system facts and all GPUs, Shutdown (as NVIDIA's driver does per operation).
  Expected<NvmlInfo> Query();

  // "Insufficient Size (NVML error 7)": nvmlErrorString plus the number.
  std::string ErrorString(int ret) const;

 private:
  struct Symbols;
  NvmlLibrary(std::string path, void* handle, std::unique_ptr<Symbols> syms);
  Status Check(int ret, std::string_view what) const;

  std::string path_;
  void* handle_ = nullptr;
  std::unique_ptr<Symbols> syms_;
};

// Opens NVML on demand and says ONCE that it is falling back to PCI/sysfs data when NVML is
// absent or does not initialise ("NVML not available (...); using PCI/sysfs data only"). If NVML
// later becomes usable it says so, and a later failure is reported again. Thread-safe.
class NvmlProbe {
 public:
  using LogFn = std::function<void(const std::string&)>;
  // `warn`/`info` default to spdlog::warn / spdlog::info.
  explicit NvmlProbe(std::string library_path = kNvmlDefaultLibrary, LogFn warn = nullptr,
                     LogFn info = nullptr);
  ~NvmlProbe();

  // NVML facts now, or nullopt when NVML can't be used (see last_status()).
  std::optional<NvmlInfo> Probe();
  Status last_status() const;
  int fallback_warnings() const;

 private:
  mutable std::mutex mu_;
  std::string path_;
  LogFn warn_;
  LogFn info_;
  std::unique_ptr<NvmlLibrary> lib_;
  Status last_;
  bool in_fallback_ = false;
  int fallback_warnings_ = 0;
  std::vector<std::string> warned_;  // per-GPU warnings already logged
};

// 12040 → "12.4.0". nullopt for values <= 0.
std::optional<std::string> CudaVersionToSemver(int v);
// nvmlDeviceArchitecture_t → "Hopper" etc.; nullopt when unknown.
std::optional<std::string> NvmlArchitectureName(unsigned arch);

// Adds NVML facts to the devices whose `pciBusID` (or `resource.kubernetes.io/pciBusID`)
// attribute matches an NVML GPU's bus ID: attributes uuid, productName, driverVersion
// (+ driverVersionRaw, by the policy of discovery/version.h), cudaDriverVersion and the same value
// as runtimeVersion, computeCapability,
// architecture, and capacity memory. Devices NVML doesn't know are left as they are. Returns the
// number of devices enriched.
size_t EnrichWithNvml(std::vector<model::Device>& devices, const NvmlInfo& info);

// A Backend that runs `base` and enriches its devices with NVML facts when NVML is usable.
// Keeps the last good enrichment: a GPU's NVML facts (UUID, name, memory, compute capability,
// architecture) and the system's (driver and CUDA versions) are remembered per PCI bus ID, and
// when NVML fails, leaves a GPU out or cannot read one of its fields, the last facts NVML gave
// stay on the device (logged once per failure; the health tracker still sees what NVML reported
// now, through last_info(), and marks a GPU NVML cannot use). A GPU that answers with another
// UUID is another GPU: its facts replace the old ones whole. Facts are forgotten when the PCI
// device leaves `base`'s devices, so a device that appears later at that address starts fresh.
class NvmlEnrichedBackend : public Backend {
 public:
  NvmlEnrichedBackend(std::unique_ptr<Backend> base,
                      std::string library_path = kNvmlDefaultLibrary);
  std::string Name() const override;
  Expected<std::vector<model::Device>> Discover() override;
  bool MaybeChanged() override { return base_->MaybeChanged(); }
  NvmlProbe& probe() { return probe_; }
  // What NVML reported at the last Discover(); nullopt when NVML was not usable then.
  std::optional<NvmlInfo> last_info() const;

 private:
  // The facts to enrich `devices` with: `now` (nullopt: NVML failed) merged over the last good
  // ones, which it updates. Under mu_.
  NvmlInfo MergeWithLastGood(const std::vector<model::Device>& devices,
                             const std::optional<NvmlInfo>& now);

  std::unique_ptr<Backend> base_;
  NvmlProbe probe_;
  mutable std::mutex mu_;
  std::optional<NvmlInfo> last_info_;
  NvmlInfo good_;  // the last good facts; gpus keyed by bus ID below
  std::map<std::string, NvmlGpu> good_gpus_;
  bool keeping_ = false;  // NVML is failing and the last good facts are in use (logged once)
};

}  // namespace accel_dra::discovery
