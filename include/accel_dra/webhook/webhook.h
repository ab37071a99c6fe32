#pragma once
// The validating admission webhook: rejects ResourceClaims and ResourceClaimTemplates whose
// opaque config for this driver is invalid, at creation, with the message prepare would give
// when the pod starts (config::ValidateSpecConfigs, the same parser and checks).
//
// Promises:
//  - Review() answers every AdmissionReview (admission.k8s.io/v1 or v1beta1, answered in the
//    request's version) for resource.k8s.io v1, v1beta1 and v1beta2 ResourceClaims
//    (spec.devices.config) and ResourceClaimTemplates (spec.spec.devices.config). Other kinds,
//    DELETE and objects without this driver's configs are allowed. A denial carries code 422,
//    reason Invalid and the parser's message; it names the field path.
//  - A request that is not an AdmissionReview is an error value (the HTTP layer answers 400);
//    one bad request never affects another.
//  - Serve() runs the webhook over HTTPS on `options` with POST /validate, plus GET /healthz
//    and /readyz (200 while serving) for probes.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "accel_dra/common/status.h"
#include "accel_dra/http/server.h"

namespace accel_dra::webhook {

inline constexpr char kValidatePath[] = "/validate";

// The AdmissionReview answer to `review`.
Expected<nlohmann::json> Review(const nlohmann::json& review, const std::string& driver_name);

Expected<std::unique_ptr<http::Server>> Serve(http::ServerOptions options,
                                              const std::string& driver_name);

}  // namespace accel_dra::webhook
