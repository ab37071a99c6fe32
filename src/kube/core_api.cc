// CoreApi: the core/v1 calls of the conformance probe.

#include "accel_dra/kube/client.h"
#include "internal.h"

namespace accel_dra::kube {
namespace {

std::string NsPath(const std::string& ns, const std::string& resource,
                   const std::string& name = "") {
  std::string p = "/api/v1/namespaces/" + internal::UrlEncode(ns) + "/" + resource;
  // Appended, not `"/" + std::string&&`: GCC 12 bug 105329 (-Wrestrict false positive at -O2+).
  if (!name.empty()) p.append("/").append(internal::UrlEncode(name));
  return p;
}

Expected<std::vector<Json>> Items(Expected<Json> list) {
  if (!list.ok()) return list.status();
  std::vector<Json> out;
  auto items = list->is_object() ? list->find("items") : list->end();
  if (items != list->end() && items->is_array()) {
    for (const Json& i : *items) out.push_back(i);
  }
  return out;
}

Status IgnoreNotFound(Status st) { return st.code() == Code::kNotFound ? Status::Ok() : st; }

}  // namespace

Expected<Json> CoreApi::ServerVersion() { return client_->Get("/version"); }

Expected<Json> CoreApi::CreateNamespace(const std::string& name, const Json& labels) {
  Json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
  if (labels.is_object() && !labels.empty()) ns["metadata"]["labels"] = labels;
  return client_->Post("/api/v1/namespaces", ns);
}

Expected<Json> CoreApi::GetNamespace(const std::string& name) {
  return client_->Get("/api/v1/namespaces/" + internal::UrlEncode(name));
}

Status CoreApi::DeleteNamespace(const std::string& name) {
  return IgnoreNotFound(client_->Delete("/api/v1/namespaces/" + internal::UrlEncode(name)));
}

Expected<Json> CoreApi::GetServiceAccount(const std::string& ns, const std::string& name) {
  return client_->Get(NsPath(ns, "serviceaccounts", name));
}

Expected<Json> CoreApi::CreatePod(const std::string& ns, const Json& pod) {
  return client_->Post(NsPath(ns, "pods"), pod);
}

Expected<Json> CoreApi::GetPod(const std::string& ns, const std::string& name) {
  return client_->Get(NsPath(ns, "pods", name));
}

Expected<std::vector<Json>> CoreApi::ListPods(const std::string& ns,
                                              const std::string& label_selector) {
  std::string p = NsPath(ns, "pods");
  if (!label_selector.empty()) p = internal::AddQuery(p, "labelSelector", label_selector);
  return Items(client_->Get(p));
}

Status CoreApi::DeletePod(const std::string& ns, const std::string& name, int grace_seconds) {
  std::string p = NsPath(ns, "pods", name);
  if (grace_seconds >= 0)
    p = internal::AddQuery(p, "gracePeriodSeconds", std::to_string(grace_seconds));
  return IgnoreNotFound(client_->Delete(p));
}

Expected<std::string> CoreApi::PodLogs(const std::string& ns, const std::string& name,
                                       const std::string& container) {
  std::string p = NsPath(ns, "pods", name) + "/log";
  if (!container.empty()) p = internal::AddQuery(p, "container", container);
  return client_->GetText(p);
}

Expected<std::vector<Json>> CoreApi::ListNodes(const std::string& label_selector) {
  std::string p = "/api/v1/nodes";
  if (!label_selector.empty()) p = internal::AddQuery(p, "labelSelector", label_selector);
  return Items(client_->Get(p));
}

Expected<std::vector<Json>> CoreApi::ListEvents(const std::string& ns,
                                                const std::string& field_selector) {
  std::string p = NsPath(ns, "events");
  if (!field_selector.empty()) p = internal::AddQuery(p, "fieldSelector", field_selector);
  return Items(client_->Get(p));
}

}  // namespace accel_dra::kube
