#pragma once
// Validators for the name and value formats the Kubernetes API enforces, so we can refuse or
// repair bad data before the apiserver rejects a whole ResourceSlice.

#include <string_view>

namespace accel_dra {

// RFC 1123 label: lower-case alphanumerics and '-', starts and ends alphanumeric, ≤ 63 chars.
bool IsDnsLabel(std::string_view s);
// RFC 1123 subdomain: dot-separated labels, ≤ 253 chars.
bool IsDnsSubdomain(std::string_view s);
// C identifier [_a-zA-Z][_a-zA-Z0-9]*, ≤ max_len chars.
bool IsCIdentifier(std::string_view s, size_t max_len = 32);
// Strict semantic version 2.0.0 (MAJOR.MINOR.PATCH, no leading zeros, no "v", optional
// -prerelease and +build), as the apiserver requires for version attributes.
bool IsSemver(std::string_view s);

}  // namespace accel_dra
