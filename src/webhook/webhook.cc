// The validating admission webhook (see webhook.h).

#include "accel_dra/webhook/webhook.h"

#include <exception>
#include <utility>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/log.h"
#include "accel_dra/config/device_config.h"

namespace accel_dra::webhook {
namespace {

using Json = nlohmann::json;

// The configs of `kind` in `object` and their path, or null for a kind we do not check.
const Json* ConfigsOf(const std::string& kind, const Json& object, std::string& path) {
  if (kind == "ResourceClaim") {
    path = "spec.devices.config";
    return JsonAt(object, {"spec", "devices", "config"});
  }
  if (kind == "ResourceClaimTemplate") {
    path = "spec.spec.devices.config";
    return JsonAt(object, {"spec", "spec", "devices", "config"});
  }
  return nullptr;
}

// Empty when `request` is allowed, else why not.
std::string Denial(const Json& request, const std::string& driver_name) {
  if (JsonString(request, {"operation"}) == "DELETE") return "";
  if (JsonString(request, {"kind", "group"}) != "resource.k8s.io") return "";
  const Json* object = JsonAt(request, {"object"});
  if (object == nullptr || !object->is_object()) return "";
  std::string path;
  const Json* configs = ConfigsOf(JsonString(request, {"kind", "kind"}), *object, path);
  if (configs == nullptr) return "";
  Status st = config::ValidateSpecConfigs(*configs, driver_name, path);
  return st.ok() ? "" : st.message();
}

}  // namespace

Expected<Json> Review(const Json& review, const std::string& driver_name) {
  if (!review.is_object() || JsonString(review, {"kind"}) != "AdmissionReview") {
    return InvalidArgument("not an AdmissionReview");
  }
  const Json* request = JsonAt(review, {"request"});
  if (request == nullptr || !request->is_object()) {
    return InvalidArgument("AdmissionReview without a request");
  }
  std::string api_version = JsonString(review, {"apiVersion"});
  if (api_version.empty()) api_version = "admission.k8s.io/v1";
  Json response = {{"uid", JsonString(*request, {"uid"})}, {"allowed", true}};
  std::string denial = Denial(*request, driver_name);
  if (!denial.empty()) {
    response["allowed"] = false;
    response["status"] = {{"code", 422}, {"reason", "Invalid"}, {"message", denial}};
    spdlog::info("denied {} {} {}/{}: {}", JsonString(*request, {"operation"}),
                 JsonString(*request, {"kind", "kind"}), JsonString(*request, {"namespace"}),
                 JsonString(*request, {"name"}), denial);
  }
  return Json{{"apiVersion", api_version}, {"kind", "AdmissionReview"}, {"response", response}};
}

Expected<std::unique_ptr<http::Server>> Serve(http::ServerOptions options,
                                              const std::string& driver_name) {
  std::map<std::string, http::Handler> handlers;
  handlers[kValidatePath] = [driver_name](const http::Request& req) {
    if (req.method != "POST") return http::Response{405, "text/plain", "POST an AdmissionReview\n"};
    Json review = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    auto answer = Review(review, driver_name);
    if (!answer.ok()) return http::Response{400, "text/plain", answer.status().message() + "\n"};
    return http::Response{200, "application/json", answer->dump()};
  };
  auto ok = [](const http::Request&) { return http::Response{200, "text/plain", "ok\n"}; };
  handlers["/healthz"] = ok;
  handlers["/readyz"] = ok;
  return http::Server::Start(std::move(options), std::move(handlers));
}

}  // namespace accel_dra::webhook
