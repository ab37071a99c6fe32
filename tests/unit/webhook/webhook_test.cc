// The admission webhook's answers (webhook::Review) and its HTTP handler.

#include "accel_dra/webhook/webhook.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "accel_dra/config/device_config.h"
#include "http_get.h"

namespace accel_dra::webhook {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kDriver[] = "accel-dra.dev";

Json Params(const std::string& interval) {
  return {{"apiVersion", "accel-dra.dev/v1alpha1"},
          {"kind", "DeviceConfig"},
          {"sharing", {{"strategy", "TimeSlicing"}, {"timeSlicing", {{"interval", interval}}}}}};
}

Json Configs(const std::string& interval, const std::string& driver = kDriver) {
  return Json::array({{{"requests", {"gpu"}},
                       {"opaque", {{"driver", driver}, {"parameters", Params(interval)}}}}});
}

Json ClaimSpec(const Json& configs) {
  return {{"devices",
           {{"requests", Json::array({{{"name", "gpu"}, {"exactly", {{"deviceClassName", "c"}}}}})},
            {"config", configs}}}};
}

Json ReviewOf(const std::string& kind, const std::string& version, const Json& object,
              const std::string& operation = "CREATE",
              const std::string& admission = "admission.k8s.io/v1") {
  return {{"apiVersion", admission},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "req-1"},
            {"kind", {{"group", "resource.k8s.io"}, {"version", version}, {"kind", kind}}},
            {"operation", operation},
            {"namespace", "ns"},
            {"name", "c"},
            {"object", object}}}};
}

Json Claim(const Json& configs) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"spec", ClaimSpec(configs)}};
}

Json Template(const Json& configs) {
  return {{"kind", "ResourceClaimTemplate"}, {"spec", {{"spec", ClaimSpec(configs)}}}};
}

TEST(WebhookReviewTest, RejectsAnInvalidConfigInEveryVersionAndKind) {
  for (const std::string version : {"v1", "v1beta1", "v1beta2"}) {
    for (const auto& [kind, object, path] :
         {std::tuple{"ResourceClaim", Claim(Configs("VeryLong")), "spec.devices.config[0]"},
          std::tuple{"ResourceClaimTemplate", Template(Configs("VeryLong")),
                     "spec.spec.devices.config[0]"}}) {
      auto answer = Review(ReviewOf(kind, version, object), kDriver);
      ASSERT_TRUE(answer.ok()) << answer.status().message();
      const Json& r = (*answer)["response"];
      EXPECT_EQ(r["uid"], "req-1");
      EXPECT_EQ(r["allowed"], false) << kind << " " << version;
      EXPECT_EQ(r["status"]["code"], 422);
      EXPECT_EQ(r["status"]["reason"], "Invalid");
      std::string message = r["status"]["message"];
      EXPECT_THAT(message, HasSubstr("invalid config for driver accel-dra.dev in " +
                                     std::string(path) + " (requests: gpu): "));
      EXPECT_THAT(message, HasSubstr("sharing.timeSlicing.interval: unknown value \"VeryLong\""));
    }
  }
}

// The user sees at creation exactly what prepare would report when the pod starts: the same
// parser message, after a prefix naming where the config is.
TEST(WebhookReviewTest, MessageIsThePrepareMessage) {
  Json allocation = {
      {"results",
       Json::array(
           {{{"request", "gpu"}, {"driver", kDriver}, {"pool", "n"}, {"device", "gpu-0"}}})},
      {"config",
       Json::array({{{"source", "FromClaim"},
                     {"requests", {"gpu"}},
                     {"opaque", {{"driver", kDriver}, {"parameters", Params("VeryLong")}}}}})}};
  auto prepare = config::ResolveAllocationConfigs(allocation, kDriver);
  ASSERT_FALSE(prepare.ok());
  auto answer = Review(ReviewOf("ResourceClaim", "v1", Claim(Configs("VeryLong"))), kDriver);
  ASSERT_TRUE(answer.ok());
  std::string denial = (*answer)["response"]["status"]["message"];
  auto detail = [](const std::string& m) { return m.substr(m.find("): ") + 3); };
  EXPECT_EQ(detail(denial), detail(prepare.status().message()));
  EXPECT_THAT(
      prepare.status().message(),
      HasSubstr("status.allocation.devices.config[0] (from the ResourceClaim, requests: gpu)"));
}

TEST(WebhookReviewTest, AdmitsValidConfigsOtherDriversOtherKindsAndDeletes) {
  for (const auto& review :
       {ReviewOf("ResourceClaim", "v1", Claim(Configs("Long"))),
        ReviewOf("ResourceClaim", "v1", Claim(Configs("VeryLong", "gpu.example.com"))),
        ReviewOf("ResourceClaim", "v1", Claim(Json())),
        ReviewOf("DeviceClass", "v1", Json{{"spec", {{"config", Configs("VeryLong")}}}}),
        ReviewOf("ResourceClaim", "v1", Json(), "DELETE")}) {
    auto answer = Review(review, kDriver);
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ((*answer)["response"]["allowed"], true) << review.dump();
    EXPECT_FALSE((*answer)["response"].contains("status"));
  }
}

TEST(WebhookReviewTest, AnswersInTheRequestsAdmissionVersion) {
  auto answer = Review(
      ReviewOf("ResourceClaim", "v1", Claim(Configs("Long")), "CREATE", "admission.k8s.io/v1beta1"),
      kDriver);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ((*answer)["apiVersion"], "admission.k8s.io/v1beta1");
  EXPECT_EQ((*answer)["kind"], "AdmissionReview");
}

TEST(WebhookReviewTest, MalformedInputIsAnErrorOrADenialNeverACrash) {
  EXPECT_FALSE(Review(Json::array(), kDriver).ok());
  EXPECT_FALSE(Review(Json{{"kind", "AdmissionReview"}}, kDriver).ok());
  Json bad_configs = Claim(Json("not an array"));
  auto answer = Review(ReviewOf("ResourceClaim", "v1", bad_configs), kDriver);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ((*answer)["response"]["allowed"], false);
  EXPECT_THAT((*answer)["response"]["status"]["message"].get<std::string>(),
              HasSubstr("spec.devices.config must be an array"));
}

TEST(WebhookServeTest, PlainHttpHandlerAnswersReviewsAndRejectsGarbage) {
  // TLS is exercised against the real apiserver (tests/integration/test_operations.py); the
  // handler is the same.
  http::ServerOptions o;
  auto server = Serve(o, kDriver);
  ASSERT_TRUE(server.ok()) << server.status().message();
  int port = (*server)->port();
  auto ok =
      test_support::HttpRequest(port, "POST", kValidatePath,
                                ReviewOf("ResourceClaim", "v1", Claim(Configs("VeryLong"))).dump());
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(Json::parse(ok.body)["response"]["allowed"], false);
  EXPECT_EQ(test_support::HttpRequest(port, "POST", kValidatePath, "{nope").status, 400);
  EXPECT_EQ(test_support::HttpRequest(port, "GET", kValidatePath).status, 405);
  EXPECT_EQ(test_support::HttpRequest(port, "GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace accel_dra::webhook
