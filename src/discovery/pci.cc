#include "accel_dra/discovery/pci.h"

#include "accel_dra/common/strings.h"

extern "C" {
#include <pci/pci.h>
}

#include <algorithm>
#include <cctype>
#include <charconv>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <map>

#include "accel_dra/common/log.h"
#include "accel_dra/discovery/version.h"

namespace accel_dra::discovery {
namespace fs = std::filesystem;

namespace {

// ---- libpci name lookup -------------------------------------------------------------------------
// libpci reports fatal problems (e.g. a malformed ids file) through access->error, which must not
// return. Ours logs and longjmp()s back into LookupName, whose frame holds nothing that needs a
// destructor, so nothing is leaked or skipped on the C++ side.
thread_local std::jmp_buf* tls_pci_jmp = nullptr;

__attribute__((format(printf, 1, 2), noreturn)) void PciError(char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  spdlog::warn("libpci: {}", buf);
  if (tls_pci_jmp != nullptr) std::longjmp(*tls_pci_jmp, 1);
  std::abort();  // unreachable: every libpci call we make is under LookupName's setjmp
}

__attribute__((format(printf, 1, 2))) void PciQuiet(char* fmt, ...) { (void)fmt; }

// Returns false when libpci failed (error handler fired); `out` is empty when not found.
bool LookupName(pci_access* acc, int flags, int vendor, int device, char* buf, int size,
                const char** out) {
  std::jmp_buf jb;
  tls_pci_jmp = &jb;
  if (setjmp(jb) != 0) {
    tls_pci_jmp = nullptr;
    *out = nullptr;
    return false;
  }
  *out = pci_lookup_name(acc, buf, size, flags, vendor, device);
  tls_pci_jmp = nullptr;
  return true;
}

// ---- vendors ------------------------------------------------------------------------------------
struct VendorInfo {
  uint32_t id;
  const char* key;                   // the "vendor" attribute
  const char* display;               // for fallback product names
  const char* display_type;          // type for class 0x03, nullptr: not kept
  const char* accel_type;            // type for class 0x12, nullptr: not kept
  std::vector<std::string> drivers;  // accelerator kernel drivers (for a device without class)
};

const std::vector<VendorInfo>& Vendors() {
  static const std::vector<VendorInfo> kVendors = {
      {0x10de, "nvidia", "NVIDIA", "gpu", "gpu", {"nvidia", "nouveau"}},
      {0x1002, "amd", "AMD", "gpu", "gpu", {"amdgpu"}},
      {0x8086, "intel", "Intel", "gpu", nullptr, {"i915", "xe"}},
      {0x1da3, "habana", "Habana", nullptr, "accelerator", {"habanalabs"}},
      {0x17cb, "qualcomm", "Qualcomm", nullptr, "accelerator", {"qaic"}},
      {0x1de0, "groq", "Groq", nullptr, "accelerator", {}},
      {0x1e52, "tenstorrent", "Tenstorrent", nullptr, "accelerator", {"tenstorrent"}},
  };
  return kVendors;
}

const VendorInfo* FindVendor(uint32_t id) {
  for (const auto& v : Vendors()) {
    if (v.id == id) return &v;
  }
  return nullptr;
}

// Display functions that are never accelerators (BMC and virtual VGA): skipped without a warning.
bool IsQuietVendor(uint32_t id) {
  switch (id) {
    case 0x1a03:  // ASPEED (BMC)
    case 0x102b:  // Matrox (BMC)
    case 0x1b36:  // Red Hat QXL
    case 0x1af4:  // virtio-gpu
    case 0x15ad:  // VMware SVGA
    case 0x1234:  // QEMU/Bochs VGA
    case 0x1414:  // Microsoft Hyper-V
    case 0x80ee:  // VirtualBox
      return true;
    default:
      return false;
  }
}

// "0x10de" → 0x10de when it fits in max_digits hex digits.
std::optional<uint32_t> ParseHexId(std::string_view s, size_t max_digits) {
  if (s.size() < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return std::nullopt;
  s.remove_prefix(2);
  if (s.size() > max_digits) return std::nullopt;
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

template <typename T>
std::optional<T> ParseDec(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string Hex(uint32_t v, int width) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%0*x", width, v);
  return buf;
}

// dddd:bb:dd.f as sysfs names PCI functions: hex, any case, a domain of 4 to 8 digits.
bool IsBdf(std::string_view s) {
  const size_t colon = s.find(':');
  if (colon < 4 || colon > 8 || s.size() != colon + 8) return false;
  const size_t d = colon;  // bus at d+1, device at d+4, function at d+7
  if (s[d + 3] != ':' || s[d + 6] != '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == d || i == d + 3 || i == d + 6 || i == d + 7) continue;
    if (std::isxdigit(static_cast<unsigned char>(s[i])) == 0) return false;
  }
  return s[d + 7] >= '0' && s[d + 7] <= '7';
}

// Hex digits only (no 0x), at most max_digits.
bool ParseHexDigits(std::string_view s, size_t max_digits, unsigned long& out) {
  if (s.empty() || s.size() > max_digits) return false;
  unsigned long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size()) return false;
  out = v;
  return true;
}

// Normalised bus IDs in PCI address order (numerically by domain, then bus, device, function).
bool BdfLess(const std::string& a, const std::string& b) {
  size_t da = a.find(':');
  size_t db = b.find(':');
  return da != db ? da < db : a < b;
}

bool Printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7f;  // bytes ≥ 0x80 are UTF-8
  });
}

// The kernel module named by sysfs: /sys/bus/pci/drivers/<drv>/module → ../../../../module/<m>.
std::string Basename(const fs::path& p) {
  fs::path n = p.lexically_normal();
  if (!n.has_filename()) n = n.parent_path();
  return n.filename().string();
}

// First version-looking token (digits and dots, at least one dot) on the "NVRM version:" line.
std::optional<std::string> ParseNvrmVersion(std::string_view content) {
  size_t pos = content.find("NVRM version:");
  if (pos == std::string_view::npos) return std::nullopt;
  std::string_view line = content.substr(pos + 13);
  line = line.substr(0, line.find('\n'));
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])) != 0) ++i;
    size_t start = i;
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])) == 0) ++i;
    std::string_view tok = line.substr(start, i - start);
    if (!tok.empty() && std::isdigit(static_cast<unsigned char>(tok[0])) != 0 &&
        tok.find('.') != std::string_view::npos && std::all_of(tok.begin(), tok.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.';
        })) {
      return std::string(tok);
    }
  }
  return std::nullopt;
}

// "Device Minor: \t 3" in /proc/driver/nvidia/gpus/<bdf>/information.
std::optional<int> ParseDeviceMinor(std::string_view content) {
  size_t pos = content.find("Device Minor:");
  if (pos == std::string_view::npos) return std::nullopt;
  std::string_view rest = content.substr(pos + 13);
  return ParseDec<int>(Trim(rest.substr(0, rest.find('\n'))));
}

// The kernel driver a PCI function in sysfs directory `dev` is bound to, and its module (the
// driver's name when sysfs names none); both empty when it is unbound.
std::pair<std::string, std::string> BoundDriver(Env* env, const HostRoot& root,
                                                const fs::path& dev) {
  std::string driver;
  std::string module;
  if (auto link = env->ReadLink(root.Path((dev / "driver").string())); link.ok()) {
    driver = Basename(*link);
    fs::path drv_dir = link->is_absolute() ? *link : (dev / *link).lexically_normal();
    if (auto m = env->ReadLink(root.Path((drv_dir / "module").string())); m.ok()) {
      module = Basename(*m);
    } else {
      module = driver;
    }
  }
  return {driver, module};
}

// The type a function of a known vendor is published as, by its class (display 0x03,
// accelerator 0x12); nullptr: not kept.
const char* PublishedType(const VendorInfo& vi, std::optional<uint32_t> cls,
                          const std::string& driver) {
  if (cls) {
    uint32_t base = *cls >> 16;
    if (base == 0x03) return vi.display_type;
    if (base == 0x12) return vi.accel_type;
    return nullptr;
  }
  if (!driver.empty() &&
      std::find(vi.drivers.begin(), vi.drivers.end(), driver) != vi.drivers.end()) {
    // No class, but bound to the vendor's accelerator driver: keep it with what is known.
    return vi.display_type != nullptr ? vi.display_type : vi.accel_type;
  }
  return nullptr;
}

}  // namespace

// ---- public helpers -----------------------------------------------------------------------------
std::optional<std::string> NormalizePciBusId(std::string_view bus_id) {
  bus_id = TrimView(bus_id);
  unsigned long domain = 0;
  unsigned long bus = 0;
  unsigned long dev = 0;
  unsigned long fn = 0;
  size_t dot = bus_id.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  if (!ParseHexDigits(bus_id.substr(dot + 1), 1, fn) || fn > 7) return std::nullopt;
  std::string_view head = bus_id.substr(0, dot);
  size_t c2 = head.rfind(':');
  if (c2 == std::string_view::npos) return std::nullopt;
  if (!ParseHexDigits(head.substr(c2 + 1), 2, dev) || dev > 0x1f) return std::nullopt;
  head = head.substr(0, c2);
  size_t c1 = head.rfind(':');
  std::string_view bus_s = c1 == std::string_view::npos ? head : head.substr(c1 + 1);
  if (!ParseHexDigits(bus_s, 2, bus)) return std::nullopt;
  if (c1 != std::string_view::npos && !ParseHexDigits(head.substr(0, c1), 8, domain)) {
    return std::nullopt;
  }
  char out[32];
  std::snprintf(out, sizeof(out), "%04lx:%02lx:%02lx.%lx", domain, bus, dev, fn);
  return std::string(out);
}

std::string PciDeviceName(std::string_view type, std::string_view bdf) {
  std::string name(type);
  name += '-';
  for (char c : bdf) name += (c == ':' || c == '.') ? '-' : c;
  return name;
}

nlohmann::json DevicesToJson(const std::vector<model::Device>& devices) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : devices) {
    nlohmann::json j = {{"name", d.name}};
    nlohmann::json attrs = nlohmann::json::object();
    for (const auto& [k, v] : d.attributes) attrs[k] = v.ToJson();
    j["attributes"] = std::move(attrs);
    nlohmann::json caps = nlohmann::json::object();
    for (const auto& [k, v] : d.capacity) caps[k] = v;
    j["capacity"] = std::move(caps);
    j["deviceNodes"] = d.device_nodes;
    out.push_back(std::move(j));
  }
  return out;
}

// ---- backend ------------------------------------------------------------------------------------
struct PciBackend::Names {
  pci_access* acc = nullptr;
  bool failed = false;  // the database could not be loaded: fall back for good
  ~Names() {
    if (acc != nullptr) pci_cleanup(acc);
  }
};

struct PciBackend::Found {
  std::string bdf;
  std::string type;
  model::Device device;
};

PciBackend::PciBackend(Env* env, HostRoot root, PciOptions options)
    : env_(env), root_(std::move(root)), options_(std::move(options)) {}

PciBackend::~PciBackend() = default;

void PciBackend::WarnOnce(const std::string& key, const std::string& message) {
  if (warned_.insert(key).second) spdlog::warn("pci discovery: {}", message);
}

std::optional<std::string> PciBackend::ReadTrimmed(const std::string& who,
                                                   const fs::path& host_path,
                                                   bool missing_is_fine) {
  auto r = env_->ReadFile(root_.Path(host_path.string()));
  if (!r.ok()) {
    if (missing_is_fine && r.status().code() == Code::kNotFound) return std::nullopt;
    WarnOnce(who + "|" + host_path.string(), who + ": cannot read " + host_path.string() + " (" +
                                                 r.status().message() + "); leaving it out");
    return std::nullopt;
  }
  return Trim(*r);
}

std::string PciBackend::ProductName(const std::string& vendor_display, uint32_t vendor,
                                    int64_t device) {
  std::string fallback = device < 0
                             ? vendor_display + " device"
                             : vendor_display + " device " + Hex(static_cast<uint32_t>(device), 4);
  if (device < 0) return fallback;
  if (!names_) {
    names_ = std::make_unique<Names>();
    if (!options_.ids_file.empty() && !env_->Exists(options_.ids_file)) {
      spdlog::warn(
          "pci discovery: PCI ID database {} not found; product names fall back to "
          "\"<vendor> device 0x<id>\"",
          options_.ids_file.string());
      names_->failed = true;
    } else {
      names_->acc = pci_alloc();
      names_->acc->error = PciError;
      names_->acc->warning = PciQuiet;
      names_->acc->debug = PciQuiet;
      names_->acc->id_lookup_mode = 0;  // no ~/.cache, no DNS
      if (!options_.ids_file.empty()) {
        // libpci keeps the pointer; options_ outlives names_.
        pci_set_name_list_path(names_->acc, const_cast<char*>(options_.ids_file.c_str()), 0);
      }
      if (!options_.use_hwdb) {
        pci_set_param(names_->acc, const_cast<char*>("hwdb.disable"), const_cast<char*>("1"));
      }
    }
  }
  if (names_->failed || names_->acc == nullptr) return fallback;
  int flags = PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS;
  if (!options_.use_hwdb) flags |= PCI_LOOKUP_NO_HWDB;
  char buf[256];
  const char* name = nullptr;
  if (!LookupName(names_->acc, flags, static_cast<int>(vendor), static_cast<int>(device), buf,
                  sizeof(buf), &name)) {
    spdlog::warn(
        "pci discovery: PCI ID database {} could not be loaded; product names fall back "
        "to \"<vendor> device 0x<id>\"",
        options_.ids_file.empty() ? std::string("(libpci default)") : options_.ids_file.string());
    names_->failed = true;
    return fallback;
  }
  if (name == nullptr || name[0] == '\0' || !Printable(name)) return fallback;
  return model::TruncateAttributeString(Trim(name));
}

// Where a PCI function lives in sysfs. `listed` is the entry under /sys/bus/pci/devices as
// Discover found it; `dev` the directory it resolves to (the symlink resolved by path arithmetic).
struct PciBackend::Sysfs {
  std::string bdf;  // normalised (NormalizePciBusId)
  fs::path listed;
  fs::path dev;
  std::optional<std::string> pcie_root;  // "pciDDDD:BB" when `dev` is under /sys/devices/pci*
};

struct PciBackend::Identity {
  uint32_t vendor = 0;
  std::optional<uint32_t> cls;
  const char* vendor_key = nullptr;      // the "vendor" attribute
  const char* vendor_display = nullptr;  // for fallback product names
  std::string module;                    // kernel module of the bound driver; empty: unbound
  const char* type = nullptr;            // the published type
};

std::optional<PciBackend::Found> PciBackend::Probe(const std::string& bdf) {
  const Sysfs at = Locate(bdf);
  std::optional<Identity> id = Identify(at);
  if (!id) return std::nullopt;
  Found f;
  f.bdf = at.bdf;
  f.type = id->type;
  AddIdentity(at, *id, f.device);
  AddIds(at, *id, f.device);
  AddNumaNode(at, f.device);
  AddDriverVersion(at, id->module, f.device);
  AddMemory(at, AddDeviceNodes(at, *id, f.device), f.device);
  return f;
}

PciBackend::Sysfs PciBackend::Locate(const std::string& bdf) {
  Sysfs at;
  at.bdf = NormalizePciBusId(bdf).value_or(bdf);  // Discover() passes only well-formed entries
  const fs::path devices_dir = "/sys/bus/pci/devices";
  at.listed = devices_dir / bdf;
  // Where the device really lives: resolve the symlink by path arithmetic.
  at.dev = at.listed;
  if (auto link = env_->ReadLink(root_.Path(at.listed.string())); link.ok()) {
    at.dev = (link->is_absolute() ? *link : devices_dir / *link).lexically_normal();
  }
  auto it = at.dev.begin();
  std::vector<std::string> parts;
  for (; it != at.dev.end() && parts.size() < 4; ++it) parts.push_back(it->string());
  if (parts.size() == 4 && parts[0] == "/" && parts[1] == "sys" && parts[2] == "devices" &&
      parts[3].rfind("pci", 0) == 0) {
    at.pcie_root = parts[3];
  }
  return at;
}

std::optional<PciBackend::Identity> PciBackend::Identify(const Sysfs& at) {
  const std::string& bdf = at.bdf;
  auto vendor_s = ReadTrimmed(bdf, at.dev / "vendor", false);
  if (!vendor_s) return std::nullopt;
  auto vendor = ParseHexId(*vendor_s, 4);
  if (!vendor) {
    WarnOnce(bdf + "|vendor", bdf + ": malformed vendor \"" +
                                  model::TruncateAttributeString(*vendor_s) + "\"; device skipped");
    return std::nullopt;
  }
  std::optional<uint32_t> cls;
  if (auto s = ReadTrimmed(bdf, at.dev / "class", false)) {
    cls = ParseHexId(*s, 6);
    if (!cls)
      WarnOnce(bdf + "|class",
               bdf + ": malformed class \"" + model::TruncateAttributeString(*s) + "\"");
  }
  const VendorInfo* vi = FindVendor(*vendor);
  if (vi == nullptr) {
    uint32_t base = cls ? (*cls >> 16) : 0;
    if ((base == 0x03 || base == 0x12) && !IsQuietVendor(*vendor)) {
      if (warned_.insert("vendor|" + Hex(*vendor, 4)).second) {
        spdlog::info("pci discovery: skipping {} devices of unknown vendor {} (first: {})",
                     base == 0x03 ? "display" : "accelerator", Hex(*vendor, 4), bdf);
      }
    }
    return std::nullopt;
  }

  auto [driver, module] = BoundDriver(env_, root_, at.dev);
  const char* type = PublishedType(*vi, cls, driver);
  if (type == nullptr) return std::nullopt;
  return Identity{*vendor, cls, vi->key, vi->display, std::move(module), type};
}

void PciBackend::AddIdentity(const Sysfs& at, const Identity& id, model::Device& d) {
  auto& a = d.attributes;
  a.emplace("type", model::AttrValue::String(id.type));
  a.emplace("vendor", model::AttrValue::String(id.vendor_key));
  a.emplace("vendorID", model::AttrValue::String(Hex(id.vendor, 4)));
  a.emplace("pciBusID", model::AttrValue::String(at.bdf));
  a.emplace(model::kStdPciBusIdAttribute, model::AttrValue::String(at.bdf));
  d.identity.pci_bus_id = at.bdf;
  // NVIDIA display-class GPUs: TimeSlicing is applied with nvidia-smi (-i takes the bus ID; NVML
  // enrichment replaces it with the UUID).
  if (id.vendor == 0x10de && id.cls && (*id.cls >> 16) == 0x03) {
    d.timeslice_control = model::TimeSliceControl::kNvidiaSmi;
    d.timeslice_target = at.bdf;
  }
  if (at.pcie_root) {
    a.emplace(model::kStdPcieRootAttribute, model::AttrValue::String(*at.pcie_root));
  } else {
    WarnOnce(at.bdf + "|pcieRoot", at.bdf + ": " + at.listed.string() +
                                       " does not lead under /sys/devices/pci*; no pcieRoot");
  }
}

// deviceID, the subsystem IDs and the product name looked up by vendor and device ID.
void PciBackend::AddIds(const Sysfs& at, const Identity& id, model::Device& d) {
  const std::string& bdf = at.bdf;
  auto& a = d.attributes;
  int64_t device_id = -1;
  if (auto s = ReadTrimmed(bdf, at.dev / "device", false)) {
    if (auto parsed = ParseHexId(*s, 4)) {
      device_id = *parsed;
      a.emplace("deviceID", model::AttrValue::String(Hex(*parsed, 4)));
    } else {
      WarnOnce(bdf + "|device",
               bdf + ": malformed device id \"" + model::TruncateAttributeString(*s) + "\"");
    }
  }
  for (const auto& [file, attr] : {std::pair{"subsystem_vendor", "subsystemVendorID"},
                                   std::pair{"subsystem_device", "subsystemDeviceID"}}) {
    if (auto s = ReadTrimmed(bdf, at.dev / file, true)) {
      if (auto parsed = ParseHexId(*s, 4)) {
        a.emplace(attr, model::AttrValue::String(Hex(*parsed, 4)));
      } else {
        WarnOnce(bdf + "|" + file,
                 bdf + ": malformed " + file + " \"" + model::TruncateAttributeString(*s) + "\"");
      }
    }
  }
  a.emplace("productName",
            model::AttrValue::String(ProductName(id.vendor_display, id.vendor, device_id)));
}

void PciBackend::AddNumaNode(const Sysfs& at, model::Device& d) {
  if (auto s = ReadTrimmed(at.bdf, at.dev / "numa_node", true)) {
    auto n = ParseDec<int64_t>(*s);
    if (!n || *n < -1 || *n > 65535) {
      WarnOnce(at.bdf + "|numa_node", at.bdf + ": malformed numa_node \"" +
                                          model::TruncateAttributeString(*s) + "\"; no numaNode");
    } else if (*n >= 0) {
      d.attributes.emplace("numaNode", model::AttrValue::Int(*n));
      d.attributes.emplace(model::kStdNumaNodeAttribute, model::AttrValue::Int(*n));
    }
  }
}

// Kernel driver and its version: /sys/module/<m>/version, for nvidia also the NVRM line of
// /proc/driver/nvidia/version.
void PciBackend::AddDriverVersion(const Sysfs& at, const std::string& module, model::Device& d) {
  if (module.empty()) return;
  auto& a = d.attributes;
  a.emplace("driverName", model::AttrValue::String(model::TruncateAttributeString(module)));
  std::optional<std::string> raw =
      ReadTrimmed(at.bdf, fs::path("/sys/module") / module / "version", true);
  if (!raw && module == "nvidia") {
    if (auto s = ReadTrimmed(at.bdf, "/proc/driver/nvidia/version", true)) {
      raw = ParseNvrmVersion(*s);
      if (!raw) {
        WarnOnce("nvrm|version", "no version in /proc/driver/nvidia/version (\"" +
                                     model::TruncateAttributeString(*s) + "\")");
      }
    }
  }
  if (!raw) return;
  switch (SetVersionAttribute(a, "driverVersion", *raw)) {
    case VersionOutcome::kRawOnly:
      WarnOnce("version|" + module + "|" + *raw,
               "driver " + module + " version \"" + model::TruncateAttributeString(*raw) +
                   "\" cannot be read as a semantic version; publishing only driverVersionRaw");
      break;
    case VersionOutcome::kUnprintable:
      WarnOnce("version|" + module,
               "driver " + module + " version has unprintable characters; no driverVersionRaw");
      break;
    default:
      break;
  }
}

// Device nodes, only those present under <root>/dev.
std::vector<std::string> PciBackend::AddDeviceNodes(const Sysfs& at, const Identity& id,
                                                    model::Device& d) {
  const std::string& bdf = at.bdf;
  auto add_node = [&](const std::string& node) {
    if (env_->Exists(root_.Path(node)) &&
        std::find(d.device_nodes.begin(), d.device_nodes.end(), node) == d.device_nodes.end()) {
      d.device_nodes.push_back(node);
    }
  };
  const bool nvidia = id.vendor == 0x10de && id.module == "nvidia";
  if (nvidia) {
    if (auto s = ReadTrimmed(bdf, "/proc/driver/nvidia/gpus/" + bdf + "/information", false)) {
      if (auto minor = ParseDeviceMinor(*s); minor && *minor >= 0) {
        add_node("/dev/nvidia" + std::to_string(*minor));
      } else {
        WarnOnce(bdf + "|minor", bdf + ": no \"Device Minor\" in /proc/driver/nvidia/gpus/" + bdf +
                                     "/information; no /dev/nvidiaN node");
      }
    }
  }
  // DRM nodes (card first, then render) and compute-accel nodes.
  std::vector<std::string> drm_cards;
  if (auto names = env_->ListDir(root_.Path((at.dev / "drm").string())); names.ok()) {
    std::vector<std::string> renders;
    for (const auto& n : *names) {
      if (n.rfind("card", 0) == 0 && ParseDec<int>(std::string_view(n).substr(4))) {
        drm_cards.push_back(n);
      } else if (n.rfind("renderD", 0) == 0 && ParseDec<int>(std::string_view(n).substr(7))) {
        renders.push_back(n);
      }
    }
    for (const auto& n : drm_cards) add_node("/dev/dri/" + n);
    for (const auto& n : renders) add_node("/dev/dri/" + n);
  }
  if (auto names = env_->ListDir(root_.Path((at.dev / "accel").string())); names.ok()) {
    for (const auto& n : *names) {
      if (n.rfind("accel", 0) == 0 && ParseDec<int>(std::string_view(n).substr(5))) {
        add_node("/dev/accel/" + n);
      }
    }
  }
  if (nvidia) {
    for (const char* n : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"})
      add_node(n);
  }
  if (id.vendor == 0x1002 && id.module == "amdgpu") add_node("/dev/kfd");
  return drm_cards;
}

// Memory where the kernel driver reports it: the first non-zero of amdgpu's mem_info_vram_total,
// Intel's lmem_total_bytes on the device or on one of its DRM cards.
void PciBackend::AddMemory(const Sysfs& at, const std::vector<std::string>& drm_cards,
                           model::Device& d) {
  std::vector<fs::path> mem_files = {at.dev / "mem_info_vram_total", at.dev / "lmem_total_bytes"};
  for (const auto& c : drm_cards) mem_files.push_back(at.dev / "drm" / c / "lmem_total_bytes");
  for (const auto& p : mem_files) {
    auto s = ReadTrimmed(at.bdf, p, true);
    if (!s) continue;
    auto bytes = ParseDec<uint64_t>(*s);
    if (!bytes) {
      WarnOnce(at.bdf + "|" + p.string(), at.bdf + ": malformed " + p.filename().string() + " \"" +
                                              model::TruncateAttributeString(*s) + "\"");
      continue;
    }
    if (*bytes > 0) {
      d.capacity.emplace("memory", model::CanonicalBinaryQuantity(*bytes));
      break;
    }
  }
}

Expected<std::vector<model::Device>> PciBackend::Discover() {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    const fs::path dir = root_.Path("/sys/bus/pci/devices");
    auto entries = env_->ListDir(dir);
    if (!entries.ok()) {
      return Status(entries.status().code(), "PCI discovery: cannot list " + dir.string() + ": " +
                                                 entries.status().message());
    }
    std::vector<Found> found;
    for (const auto& e : *entries) {
      if (!IsBdf(e)) {
        WarnOnce("entry|" + e, "ignoring " + dir.string() + "/" + e + ": not a PCI address");
        continue;
      }
      if (auto f = Probe(e)) found.push_back(std::move(*f));
    }
    std::sort(found.begin(), found.end(),
              [](const Found& x, const Found& y) { return BdfLess(x.bdf, y.bdf); });
    std::map<std::string, int> per_type;
    std::vector<model::Device> out;
    out.reserve(found.size());
    for (auto& f : found) {
      int index = per_type[f.type]++;
      f.device.name = PciDeviceName(f.type, f.bdf);
      f.device.attributes.emplace("index", model::AttrValue::Int(index));
      out.push_back(std::move(f.device));
    }
    return out;
  } catch (const std::exception& e) {
    return Internal(std::string("PCI discovery failed: ") + e.what());
  }
}

}  // namespace accel_dra::discovery
