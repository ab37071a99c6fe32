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

// Undoes UrlEncode (any %XX); a malformed escape is kept as is.
std::string UrlDecode(std::string_view in);

// Appends "key=value" (value URL-encoded) to `path` with '?' or '&' as appropriate.
std::string AddQuery(const std::string& path, std::string_view key, std::string_view value);

// True when the query string of `path` already has parameter `key`.
bool HasQueryParam(const std::string& path, std::string_view key);

// The object a request path addresses: /api/v1/[namespaces/NS/]RESOURCE/NAME[/SUB] or
// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE/NAME[/SUB] (the query ignored, NAME decoded);
// `name` is empty for collections, `resource` too for other paths (discovery, /version).
struct ObjectOfPath {
  std::string group;  // "" for the core group
  std::string resource;
  std::string name;
};
ObjectOfPath ObjectAddressedBy(std::string_view path);

// The Status for a non-2xx apiserver answer, with the apiserver's Status.message when present.
// HTTP 404 is NotFound only when the body is a Status of reason NotFound that, for a request on
// one object, names that object in details.name (and details.kind = its resource, details.group
// = its group, where given), as the apiserver's own answer does. Any other 404 (a bare
// "404 page not found" from a server that does not serve the group version, e.g. during an
// upgrade; a Status about another object) proves nothing: Unavailable with http_status() 404 and
// a message saying why it was not taken as "not found".
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
