// CDI naming rules (vendor, class, device name, kind) and version arithmetic.

#include <array>
#include <charconv>
#include <string>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/common/strings.h"

namespace accel_dra::cdi {
namespace {

bool IsLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsLetter(c) || IsDigit(c); }

std::string DescribeChar(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  auto u = static_cast<unsigned char>(c);
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 0xf];
}

// Shared shape of all CDI names: a first character class, inner characters from `inner_extra`
// plus letters and digits, a letter or digit at the end.
Status CheckName(std::string_view what, std::string_view name, bool first_must_be_letter,
                 std::string_view inner_extra, std::string_view rule, size_t max_len) {
  if (name.empty()) return InvalidArgument("invalid CDI " + std::string(what) + ": it is empty");
  auto fail = [&](const std::string& why) {
    return InvalidArgument("invalid CDI " + std::string(what) + " " + Quote(name) + ": " + why +
                           " (" + std::string(rule) + ")");
  };
  if (max_len != 0 && name.size() > max_len) {
    return fail("longer than " + std::to_string(max_len) + " characters");
  }
  char first = name.front();
  if (first_must_be_letter ? !IsLetter(first) : !IsAlnum(first)) {
    return fail(first_must_be_letter ? "must start with a letter"
                                     : "must start with a letter or digit");
  }
  for (size_t i = 1; i < name.size(); ++i) {
    char c = name[i];
    if (!IsAlnum(c) && inner_extra.find(c) == std::string_view::npos) {
      return fail(DescribeChar(c) + " at position " + std::to_string(i) + " is not allowed");
    }
  }
  if (!IsAlnum(name.back())) return fail("must end with a letter or digit");
  return Status::Ok();
}

constexpr std::array<std::string_view, 8> kKnownVersions = {"0.3.0", "0.4.0", "0.5.0", "0.6.0",
                                                            "0.7.0", "0.8.0", "1.0.0", "1.1.0"};

}  // namespace

bool IsKnownVersion(std::string_view version) {
  for (auto v : kKnownVersions) {
    if (v == version) return true;
  }
  return false;
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& s) -> long {
    long n = 0;
    auto dot = s.find('.');
    std::string_view part = s.substr(0, dot);
    std::from_chars(part.data(), part.data() + part.size(), n);
    s = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    return n;
  };
  while (!a.empty() || !b.empty()) {
    long x = next(a);
    long y = next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

Status ValidateVendorName(std::string_view vendor) {
  return CheckName("vendor", vendor, /*first_must_be_letter=*/true, "._-",
                   "a vendor starts with a letter, ends with a letter or digit and contains only "
                   "letters, digits, '.', '_' and '-'",
                   253);
}

Status ValidateClassName(std::string_view class_name) {
  return CheckName("class", class_name, /*first_must_be_letter=*/true, "._-",
                   "a class starts with a letter, ends with a letter or digit, contains only "
                   "letters, digits, '.', '_' and '-' and has at most 63 characters",
                   63);
}

Status ValidateDeviceName(std::string_view name) {
  return CheckName("device name", name, /*first_must_be_letter=*/false, "_.:-",
                   "a device name starts and ends with a letter or digit and contains only "
                   "letters, digits, '_', '.', ':' and '-'",
                   0);
}

Status ValidateKind(std::string_view kind) {
  auto slash = kind.find('/');
  if (slash == std::string_view::npos || kind.find('/', slash + 1) != std::string_view::npos) {
    return InvalidArgument("invalid CDI kind " + Quote(kind) +
                           ": it must be <vendor>/<class> with exactly one '/'");
  }
  RETURN_IF_ERROR(ValidateVendorName(kind.substr(0, slash)));
  return ValidateClassName(kind.substr(slash + 1));
}

Status ValidateClaimUid(std::string_view claim_uid) {
  if (claim_uid.empty()) return InvalidArgument("invalid claim UID: it is empty");
  Status st = ValidateDeviceName(claim_uid);
  if (!st.ok()) {
    return InvalidArgument("invalid claim UID " + Quote(claim_uid) +
                           ": it must be usable in CDI device names and file names (" +
                           st.message() + ")");
  }
  return Status::Ok();
}

std::string VendorForDriver(std::string_view driver_name) {
  return "k8s." + std::string(driver_name);
}

std::string KindForDriver(std::string_view driver_name) {
  return VendorForDriver(driver_name) + "/" + std::string(kDeviceClass);
}

Expected<std::string> ClaimDeviceName(std::string_view claim_uid, std::string_view device_name) {
  RETURN_IF_ERROR(ValidateClaimUid(claim_uid));
  if (device_name.empty()) return InvalidArgument("invalid device name: it is empty");
  std::string name = std::string(claim_uid) + "-" + std::string(device_name);
  Status st = ValidateDeviceName(name);
  if (!st.ok()) {
    return InvalidArgument("device " + Quote(device_name) + " of claim " + std::string(claim_uid) +
                           " cannot be named in CDI: " + st.message());
  }
  return name;
}

Expected<std::string> QualifiedDeviceId(std::string_view kind, std::string_view name) {
  RETURN_IF_ERROR(ValidateKind(kind));
  RETURN_IF_ERROR(ValidateDeviceName(name));
  return std::string(kind) + "=" + std::string(name);
}

Expected<std::string> ClaimDeviceId(std::string_view driver_name, std::string_view claim_uid,
                                    std::string_view device_name) {
  ASSIGN_OR_RETURN(std::string name, ClaimDeviceName(claim_uid, device_name));
  return QualifiedDeviceId(KindForDriver(driver_name), name);
}

Expected<std::string> ClaimSpecFileName(std::string_view driver_name, std::string_view claim_uid) {
  RETURN_IF_ERROR(ValidateKind(KindForDriver(driver_name)));
  RETURN_IF_ERROR(ValidateClaimUid(claim_uid));
  return VendorForDriver(driver_name) + "-" + std::string(kDeviceClass) + "_" +
         std::string(claim_uid) + ".json";
}

std::string EnvKeyForDevice(std::string_view device_name) {
  std::string key(device_name);
  for (char& c : key) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    } else if (!IsLetter(c) && !IsDigit(c)) {
      c = '_';
    }
  }
  return key;
}

std::string VisibleDevicesVariable(std::string_view claim_uid) {
  return std::string(kVisibleDevicesPrefix) + "_" + EnvKeyForDevice(claim_uid);
}

}  // namespace accel_dra::cdi
