#include "accel_dra/discovery/nvml.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "accel_dra/common/log.h"
#include "accel_dra/common/names.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/discovery/pci.h"
#include "accel_dra/discovery/version.h"

namespace accel_dra::discovery {

namespace {

// The small part of the public NVML ABI we use (from NVIDIA's documented nvml.h facts; no NVIDIA
// header is included).
using nvmlReturn_t = int;
struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;

struct nvmlPciInfo_t {
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
};
static_assert(sizeof(nvmlPciInfo_t) == 68);

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

constexpr unsigned kSystemDriverVersionBufferSize = 80;
constexpr unsigned kDeviceUuidBufferSize = 96;
constexpr unsigned kDeviceNameBufferSize = 96;

}  // namespace

struct NvmlLibrary::Symbols {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*driver_version)(char*, unsigned) = nullptr;
  nvmlReturn_t (*cuda_driver_version)(int*) = nullptr;  // optional
  nvmlReturn_t (*count)(unsigned*) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*pci_info)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*memory_info)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*compute_capability)(nvmlDevice_t, int*, int*) = nullptr;  // optional
  nvmlReturn_t (*architecture)(nvmlDevice_t, unsigned*) = nullptr;         // optional
};

namespace {

template <typename Fn>
bool Resolve(void* handle, const char* symbol, Fn& out) {
  void* p = dlsym(handle, symbol);
  if (p == nullptr) return false;
  // POSIX guarantees object and function pointers convert; the cast is the documented idiom.
  out = reinterpret_cast<Fn>(p);
  return true;
}

std::string BufferString(const char* buf, size_t size) {
  return std::string(buf, strnlen(buf, size));
}

}  // namespace

Expected<std::unique_ptr<NvmlLibrary>> NvmlLibrary::Open(const std::string& path) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return NotFound("NVML not available (" + std::string(err != nullptr ? err : path) + ")");
  }
  auto syms = std::make_unique<Symbols>();
  std::vector<std::string> missing;
  auto required = [&](const char* name, auto& fn) {
    if (!Resolve(handle, name, fn)) missing.emplace_back(name);
  };
  required("nvmlInit_v2", syms->init);
  required("nvmlShutdown", syms->shutdown);
  required("nvmlErrorString", syms->error_string);
  required("nvmlSystemGetDriverVersion", syms->driver_version);
  required("nvmlDeviceGetCount_v2", syms->count);
  required("nvmlDeviceGetHandleByIndex_v2", syms->handle_by_index);
  required("nvmlDeviceGetUUID", syms->uuid);
  required("nvmlDeviceGetName", syms->name);
  required("nvmlDeviceGetPciInfo_v3", syms->pci_info);
  required("nvmlDeviceGetMemoryInfo", syms->memory_info);
  Resolve(handle, "nvmlSystemGetCudaDriverVersion_v2", syms->cuda_driver_version);
  Resolve(handle, "nvmlDeviceGetCudaComputeCapability", syms->compute_capability);
  Resolve(handle, "nvmlDeviceGetArchitecture", syms->architecture);
  if (!missing.empty()) {
    dlclose(handle);
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    return FailedPrecondition("NVML library " + path + " lacks required symbols (" + list +
                              "); the NVIDIA driver is too old or the library is not NVML");
  }
  return std::unique_ptr<NvmlLibrary>(new NvmlLibrary(path, handle, std::move(syms)));
}

NvmlLibrary::NvmlLibrary(std::string path, void* handle, std::unique_ptr<Symbols> syms)
    : path_(std::move(path)), handle_(handle), syms_(std::move(syms)) {}

NvmlLibrary::~NvmlLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

bool NvmlLibrary::has_architecture() const { return syms_->architecture != nullptr; }

std::string NvmlLibrary::ErrorString(int ret) const {
  const char* s = syms_->error_string != nullptr ? syms_->error_string(ret) : nullptr;
  std::string text = s != nullptr && *s != '\0' ? s : "Unknown Error";
  return text + " (NVML error " + std::to_string(ret) + ")";
}

Status NvmlLibrary::Check(int ret, std::string_view what) const {
  if (ret == kNvmlSuccess) return Status::Ok();
  return Internal(std::string(what) + ": " + ErrorString(ret));
}

Status NvmlLibrary::Init() {
  int ret = syms_->init();
  if (ret != kNvmlSuccess) {
    return FailedPrecondition("NVML found at " + path_ +
                              " but nvmlInit_v2 failed: " + ErrorString(ret));
  }
  return Status::Ok();
}

Status NvmlLibrary::Shutdown() { return Check(syms_->shutdown(), "nvmlShutdown"); }

Expected<std::string> NvmlLibrary::DriverVersion() {
  std::array<char, kSystemDriverVersionBufferSize> buf{};
  RETURN_IF_ERROR(Check(syms_->driver_version(buf.data(), static_cast<unsigned>(buf.size())),
                        "nvmlSystemGetDriverVersion"));
  return BufferString(buf.data(), buf.size());
}

Expected<int> NvmlLibrary::CudaDriverVersion() {
  if (syms_->cuda_driver_version == nullptr) {
    return NotFound(path_ + " has no nvmlSystemGetCudaDriverVersion_v2");
  }
  int v = 0;
  RETURN_IF_ERROR(Check(syms_->cuda_driver_version(&v), "nvmlSystemGetCudaDriverVersion_v2"));
  return v;
}

Expected<std::vector<NvmlGpu>> NvmlLibrary::ListGpus(std::vector<std::string>* warnings) {
  auto warn = [&](std::string w) {
    if (warnings != nullptr) warnings->push_back(std::move(w));
  };
  unsigned count = 0;
  RETURN_IF_ERROR(Check(syms_->count(&count), "nvmlDeviceGetCount_v2"));
  std::vector<NvmlGpu> gpus;
  gpus.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    const std::string where = "GPU " + std::to_string(i);
    nvmlDevice_t dev = nullptr;
    if (Status s = Check(syms_->handle_by_index(i, &dev), "nvmlDeviceGetHandleByIndex_v2");
        !s.ok()) {
      warn(where + " skipped: " + s.message());
      continue;
    }
    NvmlGpu g;
    g.index = i;
    nvmlPciInfo_t pci{};
    if (Status s = Check(syms_->pci_info(dev, &pci), "nvmlDeviceGetPciInfo_v3"); !s.ok()) {
      warn(where + " skipped: " + s.message());
      continue;
    }
    std::optional<std::string> bus = NormalizePciBusId(BufferString(pci.busId, sizeof(pci.busId)));
    if (!bus) bus = NormalizePciBusId(BufferString(pci.busIdLegacy, sizeof(pci.busIdLegacy)));
    if (!bus) {
      warn(where + " skipped: NVML reported a malformed PCI bus ID \"" +
           BufferString(pci.busId, sizeof(pci.busId)) + "\"");
      continue;
    }
    g.bus_id = *bus;
    const std::string at = where + " (" + g.bus_id + ")";
    std::array<char, kDeviceUuidBufferSize> uuid{};
    if (Status s = Check(syms_->uuid(dev, uuid.data(), static_cast<unsigned>(uuid.size())),
                         "nvmlDeviceGetUUID");
        s.ok()) {
      g.uuid = BufferString(uuid.data(), uuid.size());
    } else {
      warn(at + ": " + s.message());
    }
    std::array<char, kDeviceNameBufferSize> name{};
    if (Status s = Check(syms_->name(dev, name.data(), static_cast<unsigned>(name.size())),
                         "nvmlDeviceGetName");
        s.ok()) {
      g.name = BufferString(name.data(), name.size());
    } else {
      warn(at + ": " + s.message());
    }
    nvmlMemory_t mem{};
    if (Status s = Check(syms_->memory_info(dev, &mem), "nvmlDeviceGetMemoryInfo"); s.ok()) {
      g.memory_total = mem.total;
    } else {
      warn(at + ": " + s.message());
    }
    if (syms_->compute_capability != nullptr) {
      int major = 0;
      int minor = 0;
      if (Status s = Check(syms_->compute_capability(dev, &major, &minor),
                           "nvmlDeviceGetCudaComputeCapability");
          s.ok()) {
        g.cc_major = major;
        g.cc_minor = minor;
      } else {
        warn(at + ": " + s.message());
      }
    }
    if (syms_->architecture != nullptr) {
      unsigned arch = 0;
      if (Status s = Check(syms_->architecture(dev, &arch), "nvmlDeviceGetArchitecture"); s.ok()) {
        if (NvmlArchitectureName(arch)) g.architecture = arch;
      } else {
        warn(at + ": " + s.message());
      }
    }
    gpus.push_back(std::move(g));
  }
  return gpus;
}

Expected<NvmlInfo> NvmlLibrary::Query() {
  RETURN_IF_ERROR(Init());
  NvmlInfo info;
  auto read = [&]() -> Status {
    auto dv = DriverVersion();
    if (dv.ok()) {
      info.driver_version = *dv;
    } else {
      info.warnings.push_back(dv.status().message());
    }
    if (syms_->cuda_driver_version != nullptr) {
      auto cv = CudaDriverVersion();
      if (cv.ok()) {
        info.cuda_driver_version = *cv;
      } else {
        info.warnings.push_back(cv.status().message());
      }
    }
    ASSIGN_OR_RETURN(info.gpus, ListGpus(&info.warnings));
    return Status::Ok();
  };
  Status st = read();
  if (Status s = Shutdown(); !s.ok()) info.warnings.push_back(s.message());
  if (!st.ok()) return st.WithContext("NVML at " + path_);
  return info;
}

// --- NvmlProbe -----------------------------------------------------------------------------------

NvmlProbe::NvmlProbe(std::string library_path, LogFn warn, LogFn info)
    : path_(std::move(library_path)), warn_(std::move(warn)), info_(std::move(info)) {
  if (!warn_) warn_ = [](const std::string& m) { spdlog::warn("{}", m); };
  if (!info_) info_ = [](const std::string& m) { spdlog::info("{}", m); };
}

NvmlProbe::~NvmlProbe() = default;

std::optional<NvmlInfo> NvmlProbe::Probe() {
  std::lock_guard lock(mu_);
  Expected<NvmlInfo> result = Status(Code::kInternal, "not probed");
  if (!lib_) {
    auto lib = NvmlLibrary::Open(path_);
    if (lib.ok()) {
      lib_ = std::move(lib).value();
    } else {
      result = lib.status();
    }
  }
  if (lib_) result = lib_->Query();
  if (!result.ok()) {
    last_ = result.status();
    if (!in_fallback_) {
      in_fallback_ = true;
      ++fallback_warnings_;
      warn_(last_.message() + "; using PCI/sysfs data only");
    } else {
      LOG_V(4, "NVML still unusable: {}", last_.message());
    }
    return std::nullopt;
  }
  last_ = Status::Ok();
  if (in_fallback_) {
    in_fallback_ = false;
    info_("NVML at " + path_ + " is usable again; adding its data to discovery");
  }
  for (const auto& w : result->warnings) {
    if (std::find(warned_.begin(), warned_.end(), w) != warned_.end()) continue;
    warned_.push_back(w);
    warn_("NVML: " + w);
  }
  return std::move(result).value();
}

Status NvmlProbe::last_status() const {
  std::lock_guard lock(mu_);
  return last_;
}

int NvmlProbe::fallback_warnings() const {
  std::lock_guard lock(mu_);
  return fallback_warnings_;
}

// --- pure helpers --------------------------------------------------------------------------------

std::optional<std::string> CudaVersionToSemver(int v) {
  if (v <= 0) return std::nullopt;
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10) + ".0";
}

std::optional<std::string> NvmlArchitectureName(unsigned arch) {
  // nvmlDeviceArchitecture_t values (public NVML ABI).
  switch (arch) {
    case 2:
      return "Kepler";
    case 3:
      return "Maxwell";
    case 4:
      return "Pascal";
    case 5:
      return "Volta";
    case 6:
      return "Turing";
    case 7:
      return "Ampere";
    case 8:
      return "Ada";
    case 9:
      return "Hopper";
    case 10:
      return "Blackwell";
    default:
      return std::nullopt;
  }
}

namespace {

// The device's normalised PCI bus ID: its identity's, else its pciBusID (or
// resource.kubernetes.io/pciBusID) attribute.
std::optional<std::string> BusIdOf(const model::Device& d) {
  if (!d.identity.pci_bus_id.empty()) return NormalizePciBusId(d.identity.pci_bus_id);
  auto attr = d.attributes.find("pciBusID");
  if (attr == d.attributes.end()) attr = d.attributes.find("resource.kubernetes.io/pciBusID");
  if (attr == d.attributes.end() || attr->second.type() != model::AttrValue::Type::kString) {
    return std::nullopt;
  }
  return NormalizePciBusId(attr->second.string_value());
}

}  // namespace

size_t EnrichWithNvml(std::vector<model::Device>& devices, const NvmlInfo& info) {
  std::map<std::string, const NvmlGpu*> by_bus;
  for (const auto& g : info.gpus) {
    if (auto b = NormalizePciBusId(g.bus_id)) by_bus.emplace(*b, &g);
  }
  const std::optional<std::string> cuda = CudaVersionToSemver(info.cuda_driver_version);
  size_t enriched = 0;
  for (auto& d : devices) {
    auto bus = BusIdOf(d);
    if (!bus) continue;
    auto it = by_bus.find(*bus);
    if (it == by_bus.end()) continue;
    const NvmlGpu& g = *it->second;
    auto set = [&d](const std::string& k, model::AttrValue v) {
      d.attributes.insert_or_assign(k, std::move(v));
    };
    if (!g.uuid.empty()) {
      set("uuid", model::AttrValue::String(g.uuid));
      d.identity.uuid = g.uuid;
    }
    // nvidia-smi -i takes the UUID, which is stable across reboots and re-enumeration.
    if (d.timeslice_control == model::TimeSliceControl::kNvidiaSmi && !g.uuid.empty()) {
      d.timeslice_target = g.uuid;
    }
    if (!g.name.empty()) set("productName", model::AttrValue::String(g.name));
    if (!Trim(info.driver_version).empty()) {
      if (NormalizeVersion(info.driver_version) || d.attributes.count("driverVersion") == 0) {
        SetVersionAttribute(d.attributes, "driverVersion", info.driver_version);
      } else {
        // Not a version at all: a version PCI/sysfs found stays, NVML's string is kept raw.
        set("driverVersionRaw",
            model::AttrValue::String(model::TruncateAttributeString(Trim(info.driver_version))));
      }
    }
    if (cuda) {
      set("cudaDriverVersion", model::AttrValue::Version(*cuda));
      // The runtime API version every vendor publishes under one name (KAR-0001).
      set("runtimeVersion", model::AttrValue::Version(*cuda));
    }
    if (g.cc_major && g.cc_minor && *g.cc_major >= 0 && *g.cc_minor >= 0) {
      set("computeCapability", model::AttrValue::Version(std::to_string(*g.cc_major) + "." +
                                                         std::to_string(*g.cc_minor) + ".0"));
    }
    if (g.architecture) {
      if (auto name = NvmlArchitectureName(*g.architecture)) {
        set("architecture", model::AttrValue::String(*name));
      }
    }
    if (g.memory_total > 0) {
      d.capacity.insert_or_assign("memory", model::CanonicalBinaryQuantity(g.memory_total));
    }
    ++enriched;
  }
  return enriched;
}

// --- NvmlEnrichedBackend -------------------------------------------------------------------------

NvmlEnrichedBackend::NvmlEnrichedBackend(std::unique_ptr<Backend> base, std::string library_path)
    : base_(std::move(base)), probe_(std::move(library_path)) {}

std::string NvmlEnrichedBackend::Name() const { return base_->Name() + "+nvml"; }

namespace {

// `now` with the fields NVML could not read this time taken from `was` (the same GPU).
NvmlGpu FillFrom(NvmlGpu now, const NvmlGpu& was) {
  if (now.uuid.empty()) now.uuid = was.uuid;
  if (now.name.empty()) now.name = was.name;
  if (now.memory_total == 0) now.memory_total = was.memory_total;
  if (!now.cc_major || !now.cc_minor) {
    now.cc_major = was.cc_major;
    now.cc_minor = was.cc_minor;
  }
  if (!now.architecture) now.architecture = was.architecture;
  return now;
}

}  // namespace

NvmlInfo NvmlEnrichedBackend::MergeWithLastGood(const std::vector<model::Device>& devices,
                                                const std::optional<NvmlInfo>& now) {
  std::set<std::string> present;
  for (const auto& d : devices) {
    if (auto bus = BusIdOf(d)) present.insert(*bus);
  }
  for (auto it = good_gpus_.begin(); it != good_gpus_.end();) {
    it = present.count(it->first) != 0 ? std::next(it) : good_gpus_.erase(it);
  }
  if (now) {
    if (!Trim(now->driver_version).empty()) good_.driver_version = now->driver_version;
    if (now->cuda_driver_version > 0) good_.cuda_driver_version = now->cuda_driver_version;
    for (const auto& g : now->gpus) {
      auto bus = NormalizePciBusId(g.bus_id);
      if (!bus || present.count(*bus) == 0) continue;  // only facts of devices `base` lists
      auto was = good_gpus_.find(*bus);
      bool same = was != good_gpus_.end() && (g.uuid.empty() || g.uuid == was->second.uuid);
      good_gpus_.insert_or_assign(*bus, same ? FillFrom(g, was->second) : g);
    }
    if (keeping_) spdlog::info("NVML answers again; its facts are current again");
    keeping_ = false;
  } else if (!good_gpus_.empty() && !keeping_) {
    keeping_ = true;
    spdlog::warn(
        "NVML failed ({}); keeping the NVML facts of {} GPUs from its last answer until it "
        "answers again",
        probe_.last_status().message(), good_gpus_.size());
  }
  NvmlInfo facts = good_;
  facts.gpus.clear();
  for (const auto& [bus, g] : good_gpus_) facts.gpus.push_back(g);
  return facts;
}

Expected<std::vector<model::Device>> NvmlEnrichedBackend::Discover() {
  ASSIGN_OR_RETURN(std::vector<model::Device> devices, base_->Discover());
  auto info = probe_.Probe();
  std::lock_guard<std::mutex> lock(mu_);
  EnrichWithNvml(devices, MergeWithLastGood(devices, info));
  last_info_ = std::move(info);
  return devices;
}

std::optional<NvmlInfo> NvmlEnrichedBackend::last_info() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_info_;
}

}  // namespace accel_dra::discovery
