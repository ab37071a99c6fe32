#include "accel_dra/discovery/device.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>

namespace accel_dra::discovery {

AttrValue AttrValue::Int(int64_t v) { return {Type::kInt, v, ""}; }
AttrValue AttrValue::Bool(bool v) { return {Type::kBool, v ? 1 : 0, ""}; }
AttrValue AttrValue::String(std::string v) { return {Type::kString, 0, std::move(v)}; }
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

}  // namespace accel_dra::discovery
