#pragma once
// Helpers shared by the kube client's translation units. Not part of the public API.

#include <string>
#include <string_view>

#include "accel_dra/common/status.h"
#include "accel_dra/kube/client.h"

namespace accel_dra::kube::internal {

// Standard (RFC 4648) base64 with padding; ASCII whitespace is ignored. Returns false on bad input.
bool Base64Decode(std::string_view in, std::string* out);

// Percent-encodes everything except RFC 3986 unreserved characters.
std::string UrlEncode(std::string_view in);

// Appends "key=value" (value URL-encoded) to `path` with '?' or '&' as appropriate.
std::string AddQuery(const std::string& path, std::string_view key, std::string_view value);

// True when the query string of `path` already has parameter `key`.
bool HasQueryParam(const std::string& path, std::string_view key);

// The Status for a non-2xx apiserver answer, with the apiserver's Status.message when present.
Status StatusFromHttp(const std::string& method, const std::string& path, int http_status,
                      const std::string& body);

// resource.k8s.io version conversion. The driver always works on the v1 shape; `version` is the
// version served on the wire ("v1", "v1beta2" or "v1beta1").
Json SliceToWire(const Json& v1_slice, const std::string& version);
Json SliceFromWire(const Json& wire_slice, const std::string& version);
Json ClaimFromWire(const Json& wire_claim, const std::string& version);
// v1 ResourceClaim or ResourceClaimTemplate → the served version (v1beta1: "exactly" inlined).
Json ClaimToWire(const Json& v1_obj, const std::string& version);

}  // namespace accel_dra::kube::internal
