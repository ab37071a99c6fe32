// ResourceApi: resource.k8s.io discovery, paths, and v1 <-> served-version conversion.

#include <algorithm>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/log.h"
#include "accel_dra/kube/client.h"
#include "internal.h"

namespace accel_dra::kube {
namespace internal {
namespace {

constexpr std::string_view kGroup = "resource.k8s.io";

// Moves the members of obj[key] (an object) into obj itself and removes obj[key].
void InlineMember(Json& obj, const char* key) {
  if (!obj.is_object()) return;
  auto it = obj.find(key);
  if (it == obj.end()) return;
  Json fields = std::move(*it);
  obj.erase(key);
  if (fields.is_object()) {
    for (auto& [k, value] : fields.items()) obj[k] = std::move(value);
  }
}

void SetTypeMeta(Json& obj, std::string_view version, std::string_view kind) {
  if (!obj.is_object()) return;
  obj["apiVersion"] = std::string(kGroup) + "/" + std::string(version);
  if (!obj.contains("kind")) obj["kind"] = kind;
}

}  // namespace

Json SliceToWire(const Json& v1_slice, const std::string& version) {
  Json out = v1_slice;
  SetTypeMeta(out, version, "ResourceSlice");
  if (version != "v1beta1") return out;
  Json* devices = JsonAt(out, {"spec", "devices"});
  if (devices == nullptr || !devices->is_array()) return out;
  for (Json& device : *devices) {
    if (!device.is_object() || device.contains("basic")) continue;
    Json wire = Json::object();
    Json basic = Json::object();
    for (auto& [key, value] : device.items()) {
      if (key == "name") {
        wire["name"] = value;
      } else {
        basic[key] = value;
      }
    }
    wire["basic"] = std::move(basic);
    device = std::move(wire);
  }
  return out;
}

Json SliceFromWire(const Json& wire_slice, const std::string& version) {
  Json out = wire_slice;
  SetTypeMeta(out, "v1", "ResourceSlice");
  if (version != "v1beta1") return out;
  Json* devices = JsonAt(out, {"spec", "devices"});
  if (devices == nullptr || !devices->is_array()) return out;
  for (Json& device : *devices) InlineMember(device, "basic");
  return out;
}

Json ClaimFromWire(const Json& wire_claim, const std::string& version) {
  Json out = wire_claim;
  SetTypeMeta(out, "v1", "ResourceClaim");
  if (version != "v1beta1") return out;
  // v1beta1 requests carry the "exactly" fields inline; v1 nests them under "exactly".
  Json* requests = JsonAt(out, {"spec", "devices", "requests"});
  if (requests == nullptr || !requests->is_array()) return out;
  for (Json& request : *requests) {
    if (!request.is_object() || request.contains("exactly") || request.contains("firstAvailable")) {
      continue;
    }
    Json converted = Json::object();
    Json exactly = Json::object();
    for (auto& [key, value] : request.items()) {
      if (key == "name") {
        converted["name"] = value;
      } else {
        exactly[key] = value;
      }
    }
    if (!exactly.empty()) converted["exactly"] = std::move(exactly);
    request = std::move(converted);
  }
  return out;
}

}  // namespace internal

Expected<std::string> WaitForVersion(ResourceApi& api,
                                     std::chrono::steady_clock::time_point deadline,
                                     std::chrono::milliseconds interval) {
  while (true) {
    auto version = api.Version();
    if (version.ok()) return version;
    Code c = version.status().code();
    bool transient = c == Code::kUnavailable || c == Code::kDeadlineExceeded;
    if (!transient || std::chrono::steady_clock::now() >= deadline) return version;
    std::this_thread::sleep_for(interval);
  }
}

Expected<std::string> ResourceApi::Version() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!version_.empty()) return version_;
  auto group = client_->Get("/apis/resource.k8s.io");
  if (!group.ok()) {
    // A group the server does not serve is a bare 404 (not a NotFound Status): any 404 here.
    if (group.status().http_status() == 404) {
      Status st = FailedPrecondition(
          "the apiserver does not serve the resource.k8s.io API group (is dynamic resource "
          "allocation enabled?): " +
          group.status().message());
      st.set_http_status(404);
      return st;
    }
    return group.status().WithContext("discovering resource.k8s.io versions");
  }
  std::vector<std::string> served;
  auto versions = group->is_object() ? group->find("versions") : group->end();
  if (versions != group->end() && versions->is_array()) {
    for (const Json& v : *versions) {
      if (!v.is_object()) continue;
      auto name = v.find("version");
      if (name != v.end() && name->is_string()) served.push_back(name->get<std::string>());
    }
  }
  for (const char* wanted : {"v1", "v1beta2", "v1beta1"}) {
    if (std::find(served.begin(), served.end(), wanted) != served.end()) {
      version_ = wanted;
      return version_;
    }
  }
  std::string list;
  for (const std::string& v : served) list += (list.empty() ? "" : ", ") + v;
  return FailedPrecondition("the apiserver serves resource.k8s.io versions [" + list +
                            "] but none of v1, v1beta2, v1beta1");
}

void ResourceApi::ForgetVersionIfNotServed(const Status& st) {
  if (st.http_status() != 404 || st.code() == Code::kNotFound) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!version_.empty()) {
    spdlog::warn(
        "resource.k8s.io/{} answered a 404 that is not a NotFound; discovering the served "
        "version again at the next call",
        version_);
  }
  version_.clear();
}

std::string ResourceApi::Base() {
  std::lock_guard<std::mutex> lock(mu_);
  return "/apis/resource.k8s.io/" + version_;
}

namespace {

std::string SlicesPath(std::string base, const std::string& label_selector,
                       const std::string& field_selector) {
  std::string path = std::move(base) + "/resourceslices";
  if (!label_selector.empty()) path = internal::AddQuery(path, "labelSelector", label_selector);
  if (!field_selector.empty()) path = internal::AddQuery(path, "fieldSelector", field_selector);
  return path;
}

Expected<std::string> SliceName(const Json& slice) {
  if (slice.is_object()) {
    auto meta = slice.find("metadata");
    if (meta != slice.end() && meta->is_object()) {
      auto name = meta->find("name");
      if (name != meta->end() && name->is_string() && !name->get<std::string>().empty()) {
        return name->get<std::string>();
      }
    }
  }
  return InvalidArgument("ResourceSlice has no metadata.name");
}

}  // namespace

Expected<ResourceApi::SliceList> ResourceApi::ListResourceSlices(
    const std::string& label_selector, const std::string& field_selector) {
  ASSIGN_OR_RETURN(std::string version, Version());
  ASSIGN_OR_RETURN(Json list, client_->Get(SlicesPath(Base(), label_selector, field_selector)));
  SliceList out;
  if (!list.is_object()) return DataLoss("ResourceSliceList from the apiserver is not an object");
  auto items = list.find("items");
  if (items != list.end() && items->is_array()) {
    out.items.reserve(items->size());
    for (const Json& item : *items) out.items.push_back(internal::SliceFromWire(item, version));
  }
  auto meta = list.find("metadata");
  if (meta != list.end() && meta->is_object()) {
    auto rv = meta->find("resourceVersion");
    if (rv != meta->end() && rv->is_string()) out.resource_version = rv->get<std::string>();
  }
  return out;
}

Status ResourceApi::WatchResourceSlices(const std::string& label_selector,
                                        const std::string& field_selector,
                                        const std::string& resource_version,
                                        const std::function<bool(const WatchEvent&)>& on_event,
                                        std::chrono::milliseconds timeout,
                                        const std::atomic<bool>* stop) {
  auto version = Version();
  if (!version.ok()) return version.status();
  std::string path = SlicesPath(Base(), label_selector, field_selector);
  if (!resource_version.empty()) {
    path = internal::AddQuery(path, "resourceVersion", resource_version);
  }
  const std::string ver = version.value();
  return client_->Watch(
      path,
      [&](const WatchEvent& event) {
        if (event.type == "ERROR") return on_event(event);
        WatchEvent converted{event.type, internal::SliceFromWire(event.object, ver)};
        return on_event(converted);
      },
      timeout, stop);
}

Expected<Json> ResourceApi::CreateResourceSlice(const Json& slice) {
  ASSIGN_OR_RETURN(std::string version, Version());
  ASSIGN_OR_RETURN(Json created, client_->Post(Base() + "/resourceslices",
                                               internal::SliceToWire(slice, version)));
  return internal::SliceFromWire(created, version);
}

Expected<Json> ResourceApi::UpdateResourceSlice(const Json& slice) {
  ASSIGN_OR_RETURN(std::string name, SliceName(slice));
  ASSIGN_OR_RETURN(std::string version, Version());
  ASSIGN_OR_RETURN(Json updated,
                   client_->Put(Base() + "/resourceslices/" + internal::UrlEncode(name),
                                internal::SliceToWire(slice, version)));
  return internal::SliceFromWire(updated, version);
}

Status ResourceApi::DeleteResourceSlice(const std::string& name) {
  if (name.empty()) return InvalidArgument("DeleteResourceSlice: empty name");
  auto version = Version();
  if (!version.ok()) return version.status();
  return client_->Delete(Base() + "/resourceslices/" + internal::UrlEncode(name));
}

Expected<Json> ResourceApi::GetResourceClaim(const std::string& ns, const std::string& name) {
  if (ns.empty() || name.empty()) {
    return InvalidArgument("GetResourceClaim: namespace and name must be set");
  }
  ASSIGN_OR_RETURN(std::string version, Version());
  // The version just returned, not Base(): another thread may forget it meanwhile.
  auto claim =
      client_->Get("/apis/resource.k8s.io/" + version + "/namespaces/" + internal::UrlEncode(ns) +
                   "/resourceclaims/" + internal::UrlEncode(name));
  if (!claim.ok()) {
    ForgetVersionIfNotServed(claim.status());
    return claim.status();
  }
  return internal::ClaimFromWire(*claim, version);
}

Expected<Json> ResourceApi::GetNode(const std::string& name) {
  if (name.empty()) return InvalidArgument("GetNode: empty name");
  return client_->Get("/api/v1/nodes/" + internal::UrlEncode(name));
}

Status ResourceApi::WatchNode(const std::string& name, const std::string& resource_version,
                              const std::function<bool(const WatchEvent&)>& on_event,
                              std::chrono::milliseconds timeout, const std::atomic<bool>* stop) {
  if (name.empty()) return InvalidArgument("WatchNode: empty name");
  std::string path = internal::AddQuery("/api/v1/nodes", "fieldSelector", "metadata.name=" + name);
  if (!resource_version.empty()) {
    path = internal::AddQuery(path, "resourceVersion", resource_version);
  }
  return client_->Watch(path, on_event, timeout, stop);
}

}  // namespace accel_dra::kube

namespace accel_dra::kube {
namespace internal {

Json ClaimToWire(const Json& v1_obj, const std::string& version) {
  Json out = v1_obj;
  if (out.is_object()) {
    out["apiVersion"] = "resource.k8s.io/" + version;
  }
  if (version != "v1beta1" || !out.is_object()) return out;
  const bool is_template = out.value("kind", "") == "ResourceClaimTemplate";
  Json* requests = is_template ? JsonAt(out, {"spec", "spec", "devices", "requests"})
                               : JsonAt(out, {"spec", "devices", "requests"});
  if (requests == nullptr || !requests->is_array()) return out;
  for (Json& request : *requests) InlineMember(request, "exactly");
  return out;
}

}  // namespace internal

std::string ResourceApi::ObjectPath(const std::string& resource, const std::string& ns,
                                    const std::string& name) {
  std::string path = Base();
  if (!ns.empty()) path += "/namespaces/" + internal::UrlEncode(ns);
  path += "/" + resource;
  if (!name.empty()) path += "/" + internal::UrlEncode(name);
  return path;
}

namespace {
bool IsClaimish(const std::string& resource) {
  return resource == "resourceclaims" || resource == "resourceclaimtemplates";
}
}  // namespace

Expected<Json> ResourceApi::CreateObject(const std::string& resource, const std::string& ns,
                                         const Json& obj) {
  ASSIGN_OR_RETURN(std::string version, Version());
  Json wire = IsClaimish(resource) ? internal::ClaimToWire(obj, version) : obj;
  if (wire.is_object()) wire["apiVersion"] = "resource.k8s.io/" + version;
  ASSIGN_OR_RETURN(Json created, client_->Post(ObjectPath(resource, ns, ""), wire));
  return resource == "resourceclaims" ? internal::ClaimFromWire(created, version) : created;
}

Expected<Json> ResourceApi::GetObject(const std::string& resource, const std::string& ns,
                                      const std::string& name) {
  if (name.empty()) return InvalidArgument("GetObject " + resource + ": empty name");
  ASSIGN_OR_RETURN(std::string version, Version());
  ASSIGN_OR_RETURN(Json obj, client_->Get(ObjectPath(resource, ns, name)));
  if (resource == "resourceclaims") return internal::ClaimFromWire(obj, version);
  if (resource == "resourceslices") return internal::SliceFromWire(obj, version);
  return obj;
}

Expected<std::vector<Json>> ResourceApi::ListObjects(const std::string& resource,
                                                     const std::string& ns,
                                                     const std::string& label_selector) {
  ASSIGN_OR_RETURN(std::string version, Version());
  std::string path = ObjectPath(resource, ns, "");
  if (!label_selector.empty()) path = internal::AddQuery(path, "labelSelector", label_selector);
  ASSIGN_OR_RETURN(Json list, client_->Get(path));
  std::vector<Json> out;
  auto items = list.is_object() ? list.find("items") : list.end();
  if (items != list.end() && items->is_array()) {
    for (const Json& item : *items) {
      if (resource == "resourceclaims") {
        out.push_back(internal::ClaimFromWire(item, version));
      } else if (resource == "resourceslices") {
        out.push_back(internal::SliceFromWire(item, version));
      } else {
        out.push_back(item);
      }
    }
  }
  return out;
}

Status ResourceApi::DeleteObject(const std::string& resource, const std::string& ns,
                                 const std::string& name) {
  if (name.empty()) return InvalidArgument("DeleteObject " + resource + ": empty name");
  auto version = Version();
  if (!version.ok()) return version.status();
  Status st = client_->Delete(ObjectPath(resource, ns, name));
  return st.code() == Code::kNotFound ? Status::Ok() : st;
}

Expected<std::vector<std::string>> ResourceApi::ServedResources() {
  ASSIGN_OR_RETURN(std::string version, Version());
  ASSIGN_OR_RETURN(Json doc, client_->Get(Base()));
  std::vector<std::string> out;
  auto resources = doc.is_object() ? doc.find("resources") : doc.end();
  if (resources != doc.end() && resources->is_array()) {
    for (const Json& r : *resources) {
      std::string name = r.is_object() ? r.value("name", "") : "";
      if (!name.empty() && name.find('/') == std::string::npos) out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace accel_dra::kube
