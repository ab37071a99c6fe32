// Doubt is not deletion: only the apiserver's own NotFound for the requested object maps to
// Code::kNotFound. A bare "404 page not found" (what a server that does not serve a group version
// answers, e.g. during an upgrade) or a Status about another object is Unavailable with HTTP 404.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "accel_dra/kube/client.h"
#include "fake_apiserver.h"
#include "fake_transport.h"
#include "internal.h"

namespace accel_dra::kube {
namespace {

using internal::ObjectAddressedBy;
using internal::StatusFromHttp;
using std::chrono::milliseconds;
using testing::FakeApiServer;
using testing::FakeRequest;
using testing::FakeResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::StatusBody;

const std::string kClaimPath = "/apis/resource.k8s.io/v1/namespaces/ns1/resourceclaims/c1";

std::string NotFoundFor(const std::string& name, const std::string& kind = "resourceclaims",
                        const std::string& group = "resource.k8s.io") {
  Json details = {{"name", name}};
  if (!kind.empty()) details["kind"] = kind;
  if (!group.empty()) details["group"] = group;
  return StatusBody(404, "NotFound", "resourceclaims.resource.k8s.io \"" + name + "\" not found",
                    details);
}

TEST(KubeNotFoundTest, StatusNotFoundNamingTheObjectIsNotFound) {
  Status st = StatusFromHttp("GET", kClaimPath, 404, NotFoundFor("c1"));
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.http_status(), 404);
  EXPECT_EQ(
      st.message(),
      "GET " + kClaimPath + ": HTTP 404 NotFound: resourceclaims.resource.k8s.io \"c1\" not found");
  // Kind and group are checked only where given.
  EXPECT_EQ(StatusFromHttp("GET", kClaimPath, 404, NotFoundFor("c1", "", "")).code(),
            Code::kNotFound);
  // Core group: no group in the details.
  EXPECT_EQ(StatusFromHttp("GET", "/api/v1/nodes/n1", 404, NotFoundFor("n1", "nodes", "")).code(),
            Code::kNotFound);
}

TEST(KubeNotFoundTest, BarePageNotFoundIsADoubtNotNotFound) {
  Status st = StatusFromHttp("GET", kClaimPath, 404, "404 page not found\n");
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_EQ(st.http_status(), 404);
  EXPECT_THAT(st.message(),
              HasSubstr("GET " + kClaimPath + ": HTTP 404 NotFound: 404 page not found"));
  EXPECT_THAT(st.message(),
              HasSubstr("not taken as \"not found\": the answer is not a Kubernetes Status (the "
                        "apiserver may not serve this API version right now"));
  // Empty body, HTML, JSON that is no Status: the same.
  EXPECT_EQ(StatusFromHttp("GET", kClaimPath, 404, "").code(), Code::kUnavailable);
  EXPECT_EQ(StatusFromHttp("GET", kClaimPath, 404, "<html>nope</html>").code(), Code::kUnavailable);
  EXPECT_EQ(StatusFromHttp("GET", kClaimPath, 404, R"({"reason":"NotFound"})").code(),
            Code::kUnavailable);
}

TEST(KubeNotFoundTest, StatusAboutAnotherObjectOrWithoutDetailsIsADoubt) {
  Status other = StatusFromHttp("GET", kClaimPath, 404, NotFoundFor("c2"));
  EXPECT_EQ(other.code(), Code::kUnavailable);
  EXPECT_EQ(other.http_status(), 404);
  EXPECT_THAT(other.message(),
              HasSubstr("(not taken as \"not found\": the Status is about "
                        "resourceclaims.resource.k8s.io \"c2\", not resourceclaims \"c1\")"));
  EXPECT_EQ(StatusFromHttp("GET", kClaimPath, 404, NotFoundFor("c1", "resourceslices")).code(),
            Code::kUnavailable);
  EXPECT_EQ(StatusFromHttp("GET", kClaimPath, 404, NotFoundFor("c1", "", "example.com")).code(),
            Code::kUnavailable);
  Status bare = StatusFromHttp("GET", kClaimPath, 404, StatusBody(404, "NotFound", "gone"));
  EXPECT_EQ(bare.code(), Code::kUnavailable);
  EXPECT_THAT(bare.message(), HasSubstr("the Status names no object (no details.name)"));
  Status reason = StatusFromHttp("GET", kClaimPath, 404, StatusBody(404, "Gone", "x"));
  EXPECT_EQ(reason.code(), Code::kUnavailable);
  EXPECT_THAT(reason.message(), HasSubstr("the Status has reason \"Gone\", not NotFound"));
}

TEST(KubeNotFoundTest, CollectionRequestsNeedOnlyTheReason) {
  // Creating in a namespace that does not exist: the Status names the namespace.
  Status st = StatusFromHttp("POST", "/api/v1/namespaces/gone/pods", 404,
                             NotFoundFor("gone", "namespaces", ""));
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(
      StatusFromHttp("POST", "/api/v1/namespaces/gone/pods", 404, "404 page not found").code(),
      Code::kUnavailable);
}

TEST(KubeNotFoundTest, ObjectAddressedByPath) {
  auto o = ObjectAddressedBy(kClaimPath);
  EXPECT_EQ(o.group, "resource.k8s.io");
  EXPECT_EQ(o.resource, "resourceclaims");
  EXPECT_EQ(o.name, "c1");
  o = ObjectAddressedBy("/api/v1/namespaces/ns1/pods/p%2Dx/log?container=c");
  EXPECT_EQ(o.group, "");
  EXPECT_EQ(o.resource, "pods");
  EXPECT_EQ(o.name, "p-x");
  o = ObjectAddressedBy("/api/v1/namespaces/ns1");
  EXPECT_EQ(o.resource, "namespaces");
  EXPECT_EQ(o.name, "ns1");
  o = ObjectAddressedBy("/apis/resource.k8s.io/v1/resourceslices?fieldSelector=a");
  EXPECT_EQ(o.resource, "resourceslices");
  EXPECT_EQ(o.name, "");
  o = ObjectAddressedBy("/apis/resource.k8s.io");
  EXPECT_EQ(o.resource, "");
  EXPECT_EQ(o.name, "");
}

RetryPolicy NoRetry() {
  RetryPolicy p;
  p.max_attempts = 1;
  return p;
}

// The same over the wire, through ResourceApi::GetResourceClaim and the libcurl transport.
class KubeNotFoundWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RestConfig c;
    c.server = server_.url();
    c.timeout = milliseconds(3000);
    auto client = Client::Create(c, NoRetry());
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
    api_ = std::make_unique<ResourceApi>(client_.get());
  }
  int Discoveries() const {
    int n = 0;
    for (const auto& r : server_.requests()) n += r.target == "/apis/resource.k8s.io" ? 1 : 0;
    return n;
  }

  FakeApiServer server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<ResourceApi> api_;
};

FakeResponse Group(const std::string& version) {
  return FakeResponse::Json(
      200, Json{{"kind", "APIGroup"}, {"versions", {{{"version", version}}}}}.dump());
}

TEST_F(KubeNotFoundWireTest, GetResourceClaimTellsGoneFromNotServed) {
  server_.Enqueue(Group("v1"));
  server_.Enqueue(FakeResponse::NotFound("resource.k8s.io", "resourceclaims", "c1"));
  auto gone = api_->GetResourceClaim("ns1", "c1");
  EXPECT_EQ(gone.status().code(), Code::kNotFound) << gone.status().ToString();

  server_.Enqueue(FakeResponse::PageNotFound());
  auto doubt = api_->GetResourceClaim("ns1", "c1");
  EXPECT_EQ(doubt.status().code(), Code::kUnavailable) << doubt.status().ToString();
  EXPECT_EQ(doubt.status().http_status(), 404);
  EXPECT_THAT(doubt.status().message(), HasSubstr("404 page not found"));
  EXPECT_THAT(doubt.status().message(), Not(HasSubstr("\n")));

  server_.Enqueue(Group("v1"));  // the bare 404 made the client discover the version again
  server_.Enqueue(FakeResponse::NotFound("resource.k8s.io", "resourceclaims", "someone-else"));
  auto other = api_->GetResourceClaim("ns1", "c1");
  EXPECT_EQ(other.status().code(), Code::kUnavailable) << other.status().ToString();
}

TEST_F(KubeNotFoundWireTest, NotServedVersionIsDiscoveredAgain) {
  // An upgrade stops serving v1beta1: the bare 404 makes the next call discover v1.
  server_.Enqueue(Group("v1beta1"));
  server_.Enqueue(FakeResponse::PageNotFound());
  auto first = api_->GetResourceClaim("ns1", "c1");
  EXPECT_EQ(first.status().code(), Code::kUnavailable);
  server_.Enqueue(Group("v1"));
  server_.Enqueue(FakeResponse::Json(
      200,
      R"({"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{"name":"c1"}})"));
  auto second = api_->GetResourceClaim("ns1", "c1");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(Discoveries(), 2);
  EXPECT_EQ(server_.requests().back().target,
            "/apis/resource.k8s.io/v1/namespaces/ns1/resourceclaims/c1");
  // A real NotFound keeps the version.
  server_.Enqueue(FakeResponse::NotFound("resource.k8s.io", "resourceclaims", "c1"));
  EXPECT_EQ(api_->GetResourceClaim("ns1", "c1").status().code(), Code::kNotFound);
  server_.Enqueue(FakeResponse::NotFound("resource.k8s.io", "resourceclaims", "c1"));
  EXPECT_EQ(api_->GetResourceClaim("ns1", "c1").status().code(), Code::kNotFound);
  EXPECT_EQ(Discoveries(), 2);
}

TEST_F(KubeNotFoundWireTest, DeleteOfAnObjectNotServedIsNotGone) {
  // The publisher takes NotFound on a delete as done; a bare 404 is not.
  server_.Enqueue(Group("v1"));
  server_.Enqueue(FakeResponse::NotFound("resource.k8s.io", "resourceslices", "s1"));
  EXPECT_EQ(api_->DeleteResourceSlice("s1").code(), Code::kNotFound);
  server_.Enqueue(FakeResponse::PageNotFound());
  Status st = api_->DeleteResourceSlice("s1");
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
  server_.Enqueue(FakeResponse::PageNotFound());
  EXPECT_EQ(api_->DeleteObject("deviceclasses", "", "x").code(), Code::kUnavailable);
}

}  // namespace
}  // namespace accel_dra::kube
