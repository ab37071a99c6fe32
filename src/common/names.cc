#include "accel_dra/common/names.h"

#include <cctype>

namespace accel_dra {
namespace {

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

// A dot-separated list of non-empty identifiers [0-9A-Za-z-]; numeric ones without leading
// zeros when `numeric_rule` is set (prerelease), anything for build metadata.
bool DotList(std::string_view s, bool numeric_rule) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t end = s.find('.', start);
    std::string_view id = s.substr(start, end == std::string_view::npos ? s.npos : end - start);
    if (id.empty()) return false;
    bool all_digits = true;
    for (char c : id) {
      if (!IsIdentChar(c)) return false;
      if (!IsDigit(c)) all_digits = false;
    }
    if (numeric_rule && all_digits && id.size() > 1 && id[0] == '0') return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

// A MAJOR/MINOR/PATCH number: digits, no leading zero, and small enough for the uint64 the
// apiserver parses it into.
bool NumericPart(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  constexpr std::string_view kMax = "18446744073709551615";
  if (s.size() > kMax.size() || (s.size() == kMax.size() && s > kMax)) return false;
  return s.size() == 1 || s[0] != '0';
}

}  // namespace

bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!IsAlnumLower(s.front()) || !IsAlnumLower(s.back())) return false;
  for (char c : s) {
    if (!IsAlnumLower(c) && c != '-') return false;
  }
  return true;
}

bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t end = s.find('.', start);
    std::string_view label = s.substr(start, end == std::string_view::npos ? s.npos : end - start);
    if (!IsDnsLabel(label)) return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

bool IsCIdentifier(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  if (IsDigit(s[0])) return false;
  for (char c : s) {
    if (!(c == '_' || IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

bool IsSemver(std::string_view s) {
  std::string_view core = s;
  std::string_view pre;
  std::string_view build;
  if (auto plus = core.find('+'); plus != std::string_view::npos) {
    build = core.substr(plus + 1);
    core = core.substr(0, plus);
    if (!DotList(build, false)) return false;
  }
  if (auto dash = core.find('-'); dash != std::string_view::npos) {
    pre = core.substr(dash + 1);
    core = core.substr(0, dash);
    if (!DotList(pre, true)) return false;
  }
  size_t d1 = core.find('.');
  if (d1 == std::string_view::npos) return false;
  size_t d2 = core.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return false;
  return NumericPart(core.substr(0, d1)) && NumericPart(core.substr(d1 + 1, d2 - d1 - 1)) &&
         NumericPart(core.substr(d2 + 1));
}

}  // namespace accel_dra
