#include "accel_dra/model/device.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>

#include "accel_dra/common/strings.h"

namespace accel_dra::model {

AttrValue AttrValue::Int(int64_t v) { return {Type::kInt, v, ""}; }
AttrValue AttrValue::Bool(bool v) { return {Type::kBool, v ? 1 : 0, ""}; }
AttrValue AttrValue::String(std::string v) {
  // Host text (a module's link name, NVML's strings) may be any bytes; the slice body is JSON.
  if (!IsValidUtf8(v)) v = TruncateAttributeString(ValidUtf8(v));
  return {Type::kString, 0, std::move(v)};
}
AttrValue AttrValue::Version(std::string v) { return {Type::kVersion, 0, std::move(v)}; }

nlohmann::json AttrValue::ToJson() const {
  switch (type_) {
    case Type::kInt:
      return {{"int", int_}};
    case Type::kBool:
      return {{"bool", int_ != 0}};
    case Type::kString:
      return {{"string", str_}};
    case Type::kVersion:
      return {{"version", str_}};
  }
  return nlohmann::json::object();
}

Inventory::Inventory(std::vector<Device> devices) : devices_(std::move(devices)) {
  std::sort(devices_.begin(), devices_.end(),
            [](const Device& a, const Device& b) { return a.name < b.name; });
  std::set<std::string> seen;
  for (const auto& d : devices_) {
    for (const auto& n : std::set<std::string>(d.device_nodes.begin(), d.device_nodes.end())) {
      if (!seen.insert(n).second) shared_nodes_.insert(n);
    }
  }
}

bool IsSharedControlNode(std::string_view path) {
  static constexpr std::array<std::string_view, 5> kShared = {"/dev/nvidiactl", "/dev/nvidia-uvm",
                                                              "/dev/nvidia-uvm-tools",
                                                              "/dev/nvidia-modeset", "/dev/kfd"};
  return std::find(kShared.begin(), kShared.end(), path) != kShared.end() ||
         path.starts_with("/dev/nvidia-caps/");
}

std::string PhysicalOverlap(const DeviceIdentity& a, const std::vector<std::string>& a_nodes,
                            const DeviceIdentity& b, const std::vector<std::string>& b_nodes,
                            const std::set<std::string>& shared_nodes) {
  if (!a.pci_bus_id.empty() && a.pci_bus_id == b.pci_bus_id) {
    return "PCI bus ID " + a.pci_bus_id;
  }
  if (!a.uuid.empty() && a.uuid == b.uuid) return "UUID " + a.uuid;
  for (const auto& n : a_nodes) {
    if (IsSharedControlNode(n) || shared_nodes.count(n) != 0) continue;
    if (std::find(b_nodes.begin(), b_nodes.end(), n) != b_nodes.end()) return "device node " + n;
  }
  return "";
}

std::string IdentityChange(const DeviceIdentity& was, const DeviceIdentity& now) {
  if (!was.pci_bus_id.empty() && !now.pci_bus_id.empty() && was.pci_bus_id != now.pci_bus_id) {
    return "PCI bus ID " + now.pci_bus_id + ", was " + was.pci_bus_id;
  }
  if (!was.uuid.empty() && !now.uuid.empty() && was.uuid != now.uuid) {
    return "UUID " + now.uuid + ", was " + was.uuid;
  }
  return "";
}

const Device* Inventory::Find(const std::string& name) const {
  auto it = std::lower_bound(devices_.begin(), devices_.end(), name,
                             [](const Device& d, const std::string& n) { return d.name < n; });
  return it != devices_.end() && it->name == name ? &*it : nullptr;
}

std::string CanonicalBinaryQuantity(uint64_t bytes) {
  static constexpr std::array<const char*, 6> kSuffixes = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  if (bytes == 0) return "0";
  int idx = -1;
  uint64_t v = bytes;
  while (v % 1024 == 0 && idx + 1 < static_cast<int>(kSuffixes.size())) {
    v /= 1024;
    ++idx;
  }
  return std::to_string(v) + (idx >= 0 ? kSuffixes[static_cast<size_t>(idx)] : "");
}

Expected<uint64_t> ParseQuantityBytes(const std::string& q) {
  size_t i = 0;
  while (i < q.size() && std::isdigit(static_cast<unsigned char>(q[i])) != 0) ++i;
  if (i == 0) return InvalidArgument("quantity \"" + q + "\" must start with digits");
  uint64_t base = 0;
  for (size_t k = 0; k < i; ++k) {
    if (base > (std::numeric_limits<uint64_t>::max() - 9) / 10) {
      return InvalidArgument("quantity \"" + q + "\" is too large");
    }
    base = base * 10 + static_cast<uint64_t>(q[k] - '0');
  }
  std::string suffix = q.substr(i);
  static const std::array<std::pair<const char*, uint64_t>, 13> kMult = {{
      {"", 1},
      {"Ki", 1ULL << 10},
      {"Mi", 1ULL << 20},
      {"Gi", 1ULL << 30},
      {"Ti", 1ULL << 40},
      {"Pi", 1ULL << 50},
      {"Ei", 1ULL << 60},
      {"k", 1000ULL},
      {"M", 1000ULL * 1000},
      {"G", 1000ULL * 1000 * 1000},
      {"T", 1000ULL * 1000 * 1000 * 1000},
      {"P", 1000ULL * 1000 * 1000 * 1000 * 1000},
      {"E", 1000ULL * 1000 * 1000 * 1000 * 1000 * 1000},
  }};
  for (const auto& [s, m] : kMult) {
    if (suffix == s) {
      if (base > std::numeric_limits<uint64_t>::max() / m) {
        return InvalidArgument("quantity \"" + q + "\" is too large");
      }
      return base * m;
    }
  }
  return InvalidArgument("quantity \"" + q +
                         "\" has an unknown suffix; use a plain byte count or one of "
                         "Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E");
}

namespace {
// Cut to at most `max` bytes: UTF-8 safe, at a word boundary when one is not too far back, no
// trailing blanks or punctuation.
std::string_view CutAt(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  // Never split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  std::string_view t = s.substr(0, cut);
  if (std::isspace(static_cast<unsigned char>(s[cut])) == 0) {  // cut inside a word
    size_t sp = t.find_last_of(' ');
    if (sp != std::string_view::npos && sp >= max / 2) t = t.substr(0, sp);
  }
  while (!t.empty() && (std::isspace(static_cast<unsigned char>(t.back())) != 0 ||
                        std::string_view(",;:-/([").find(t.back()) != std::string_view::npos)) {
    t.remove_suffix(1);
  }
  return t;
}

// The closer for a bracket left open in `t` ('\0' when none).
char UnclosedBracket(std::string_view t) {
  std::string stack;
  for (char c : t) {
    if (c == '[' || c == '(') stack.push_back(c);
    if ((c == ']' || c == ')') && !stack.empty()) stack.pop_back();
  }
  if (stack.empty()) return '\0';
  return stack.back() == '[' ? ']' : ')';
}
}  // namespace

std::string TruncateAttributeString(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  std::string_view t = CutAt(s, max);
  if (UnclosedBracket(t) == '\0' || max < 2) return std::string(t);
  // "Navi 31 [Radeon Pro W7900 With" → "Navi 31 [Radeon Pro W7900]": close what was cut open.
  t = CutAt(s, max - 1);
  std::string out(t);
  if (char closer = UnclosedBracket(t); closer != '\0') out += closer;
  return out;
}

}  // namespace accel_dra::model
