#include "accel_dra/discovery/version.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "accel_dra/common/names.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/discovery/pci.h"

namespace accel_dra::discovery {
namespace {

bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-'; }

// A dot-separated semver identifier list; numeric identifiers lose leading zeros when
// `strip_zeros` (prerelease), build metadata keeps them. nullopt when not valid.
std::optional<std::string> NormalizeIdents(std::string_view s, bool strip_zeros) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view id = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (id.empty() || !std::all_of(id.begin(), id.end(), IsIdentChar)) return std::nullopt;
    if (strip_zeros && std::all_of(id.begin(), id.end(), IsDigit)) {
      while (id.size() > 1 && id[0] == '0') id.remove_prefix(1);
    }
    if (!out.empty()) out += '.';
    out += id;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

// No control characters, and UTF-8 (the attribute is sent in a JSON body).
bool Printable(std::string_view s) {
  return IsValidUtf8(s) && std::all_of(s.begin(), s.end(), [](char c) {
           auto u = static_cast<unsigned char>(c);
           return u >= 0x20 && u != 0x7f;
         });
}

}  // namespace

std::optional<std::string> NormalizeVersion(std::string_view raw) {
  std::string_view v = TrimView(raw);
  if (v.size() > 1 && (v[0] == 'v' || v[0] == 'V') && IsDigit(v[1])) v.remove_prefix(1);
  std::vector<std::string> core;
  size_t i = 0;
  while (true) {
    size_t start = i;
    while (i < v.size() && IsDigit(v[i])) ++i;
    if (i == start) break;
    std::string_view digits = v.substr(start, i - start);
    while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
    if (digits.size() > 18) return std::nullopt;  // beyond what the apiserver's semver accepts
    core.emplace_back(digits);
    if (i + 1 < v.size() && v[i] == '.' && IsDigit(v[i + 1])) {
      ++i;
      continue;
    }
    break;
  }
  if (core.empty()) return std::nullopt;
  const bool extra_components = core.size() > 3;
  core.resize(3, "0");  // pad ("560.35") or keep three ("1.2.3.4")
  std::string out = core[0] + "." + core[1] + "." + core[2];
  if (extra_components) return out;
  // A semver suffix right after the core is kept when it is valid; anything else is dropped.
  std::string_view rest = v.substr(i);
  size_t plus = rest.find('+');
  std::string_view pre = rest.substr(0, plus);
  std::string_view build = plus == std::string_view::npos ? std::string_view{} : rest.substr(plus);
  std::string suffix;
  bool valid = true;
  if (!pre.empty()) {
    auto p = pre[0] == '-' ? NormalizeIdents(pre.substr(1), true) : std::nullopt;
    if (p) {
      suffix += "-" + *p;
    } else {
      valid = false;
    }
  }
  if (valid && !build.empty()) {
    auto b = NormalizeIdents(build.substr(1), false);
    if (b) {
      suffix += "+" + *b;
    } else {
      valid = false;
    }
  }
  if (valid && out.size() + suffix.size() <= 64) out += suffix;
  return out;
}

VersionOutcome SetVersionAttribute(std::map<std::string, model::AttrValue>& attrs,
                                   const std::string& name, std::string_view raw_in) {
  const std::string raw_name = name + "Raw";
  std::string_view raw = TrimView(raw_in);
  if (raw.empty()) {
    attrs.erase(name);
    attrs.erase(raw_name);
    return VersionOutcome::kAbsent;
  }
  auto norm = NormalizeVersion(raw);
  if (norm && IsSemver(*norm)) {
    attrs.insert_or_assign(name, model::AttrValue::Version(*norm));
  } else {
    norm.reset();
    attrs.erase(name);
  }
  if (!Printable(raw)) {
    attrs.erase(raw_name);
    return VersionOutcome::kUnprintable;
  }
  if (norm && *norm == raw) {
    attrs.erase(raw_name);
    return VersionOutcome::kExact;
  }
  attrs.insert_or_assign(raw_name, model::AttrValue::String(model::TruncateAttributeString(raw)));
  return norm ? VersionOutcome::kNormalized : VersionOutcome::kRawOnly;
}

}  // namespace accel_dra::discovery
