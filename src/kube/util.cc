// Small helpers: base64, URL encoding, query strings and HTTP error mapping.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "internal.h"

namespace accel_dra::kube::internal {

bool Base64Decode(std::string_view in, std::string* out) {
  static constexpr std::array<int8_t, 256> kTable = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < kAlphabet.size(); ++i) {
      t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
    }
    return t;
  }();
  out->clear();
  out->reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  int symbols = 0;
  int padding = 0;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      ++symbols;
      continue;
    }
    if (padding > 0) return false;  // data after padding
    int8_t v = kTable[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (padding > 2) return false;
  // Padded input must be a whole number of quads; unpadded input may not end in a lone symbol.
  if (padding > 0 && symbols % 4 != 0) return false;
  if (symbols % 4 == 1) return false;
  return true;
}

std::string UrlEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '_' || u == '.' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

std::string UrlDecode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::string AddQuery(const std::string& path, std::string_view key, std::string_view value) {
  std::string out = path;
  const size_t q = out.find('?');
  if (q == std::string::npos) {
    out.push_back('?');
  } else if (q + 1 != out.size() && out.back() != '&') {
    out.push_back('&');
  }
  out.append(key);
  out.push_back('=');
  out += UrlEncode(value);
  return out;
}

bool HasQueryParam(const std::string& path, std::string_view key) {
  const size_t q = path.find('?');
  if (q == std::string::npos) return false;
  std::string_view query(path);
  query.remove_prefix(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    std::string_view name = param.substr(0, param.find('='));
    if (name == key) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

namespace {

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 502:
      return "BadGateway";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";
  }
}

// A short printable excerpt of a non-Status error body.
std::string Excerpt(const std::string& body) {
  constexpr size_t kMax = 256;
  std::string out;
  for (char c : body.substr(0, kMax)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7F ? c : ' ');
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (body.size() > kMax) out += "...";
  return out;
}

}  // namespace

ObjectOfPath ObjectAddressedBy(std::string_view path) {
  ObjectOfPath out;
  path = path.substr(0, path.find('?'));
  std::vector<std::string> segments;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    size_t slash = path.find('/');
    segments.push_back(UrlDecode(path.substr(0, slash)));
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
  }
  // /api/<version>/... (core, group "") or /apis/<group>/<version>/...
  size_t first = 0;
  if (segments.size() >= 2 && segments[0] == "api") {
    first = 2;
  } else if (segments.size() >= 3 && segments[0] == "apis") {
    out.group = segments[1];
    first = 3;
  } else {
    return {};  // discovery, /version, /healthz ...: no object
  }
  std::vector<std::string> rest(segments.begin() + static_cast<ptrdiff_t>(first), segments.end());
  // namespaces/<ns>/<resource>/... is a namespaced request; namespaces/<name> the Namespace.
  if (rest.size() >= 3 && rest[0] == "namespaces") rest.erase(rest.begin(), rest.begin() + 2);
  if (rest.empty()) return {};
  out.resource = rest[0];
  if (rest.size() >= 2) out.name = rest[1];
  return out;
}

namespace {

std::string JsonStringAt(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

// Why a 404 answer does not prove that the object `path` addresses is gone ("" when it does): a
// Status of reason NotFound whose details name that object (kind and group where given) does.
std::string NotFoundDoubt(const std::string& path, const Json& body) {
  if (JsonStringAt(body, "kind") != "Status") {
    return "the answer is not a Kubernetes Status (the apiserver may not serve this API version "
           "right now, e.g. during an upgrade), so it does not say that the object is gone";
  }
  if (JsonStringAt(body, "reason") != "NotFound") {
    return "the Status has reason \"" + JsonStringAt(body, "reason") + "\", not NotFound";
  }
  const ObjectOfPath want = ObjectAddressedBy(path);
  if (want.name.empty()) return "";  // a collection or another path: reason NotFound is all
  const Json empty = Json::object();
  auto d = body.find("details");
  const Json& details = d != body.end() && d->is_object() ? *d : empty;
  const std::string name = JsonStringAt(details, "name");
  const std::string kind = JsonStringAt(details, "kind");
  const std::string group = JsonStringAt(details, "group");
  const std::string wanted = want.resource + " \"" + want.name + "\"";
  if (name.empty()) return "the Status names no object (no details.name), not " + wanted;
  if (name != want.name || (!kind.empty() && kind != want.resource) ||
      (!group.empty() && group != want.group)) {
    std::string named = (kind.empty() ? std::string("object") : kind) +
                        (group.empty() ? "" : "." + group) + " \"" + name + "\"";
    return "the Status is about " + named + ", not " + wanted;
  }
  return "";
}

}  // namespace

Status StatusFromHttp(const std::string& method, const std::string& path, int http_status,
                      const std::string& body) {
  std::string message;
  std::string reason;
  Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    message = JsonStringAt(parsed, "message");
    reason = JsonStringAt(parsed, "reason");
  }

  Code code = Code::kInternal;
  std::string doubt;
  if (http_status == 400 || http_status == 422) {
    code = Code::kInvalidArgument;
  } else if (http_status == 401) {
    code = Code::kUnauthenticated;
  } else if (http_status == 403) {
    code = Code::kPermissionDenied;
  } else if (http_status == 404) {
    // Only the apiserver's own NotFound for this object says it is gone; any other 404 (a bare
    // "404 page not found" from a mux that does not serve the group version) is a doubt.
    doubt = NotFoundDoubt(path, parsed);
    code = doubt.empty() ? Code::kNotFound : Code::kUnavailable;
  } else if (http_status == 409) {
    code = reason == "AlreadyExists" ? Code::kAlreadyExists : Code::kConflict;
  } else if (http_status == 410) {
    code = Code::kFailedPrecondition;
  } else if (http_status == 413) {
    code = Code::kResourceExhausted;
  } else if (http_status == 429 || (http_status >= 500 && http_status <= 599)) {
    code = Code::kUnavailable;
  } else if (http_status >= 400 && http_status <= 499) {
    code = Code::kFailedPrecondition;
  }

  std::string text = method + " " + path + ": HTTP " + std::to_string(http_status);
  const std::string_view phrase = reason.empty() ? ReasonPhrase(http_status) : reason;
  // Appended piecewise, not `" " + std::string&&`: GCC 12 bug 105329 (-Wrestrict false positive
  // at -O2+ when operator+ inlines basic_string::insert).
  if (!phrase.empty()) text.append(" ").append(phrase);
  if (!message.empty()) {
    text += ": " + message;
  } else if (!body.empty()) {
    text += ": " + Excerpt(body);
  }
  if (!doubt.empty()) text += " (not taken as \"not found\": " + doubt + ")";
  Status st(code, std::move(text));
  st.set_http_status(http_status);
  return st;
}

}  // namespace accel_dra::kube::internal
