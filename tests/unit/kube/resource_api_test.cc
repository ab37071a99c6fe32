// ResourceApi: discovery, paths, selectors and resource.k8s.io version conversion.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "accel_dra/kube/client.h"
#include "fake_transport.h"

namespace accel_dra::kube {
namespace {
using std::chrono::milliseconds;
using testing::FakeTransport;
using ::testing::HasSubstr;
using testing::NotFoundBodyFor;
using testing::Resp;
using testing::StatusBody;

Json ApiGroup(const std::vector<std::string>& versions) {
  Json g = {{"kind", "APIGroup"}, {"apiVersion", "v1"}, {"name", "resource.k8s.io"}};
  g["versions"] = Json::array();
  for (const auto& v : versions) {
    g["versions"].push_back({{"groupVersion", "resource.k8s.io/" + v}, {"version", v}});
  }
  return g;
}

// A ResourceSlice in the v1 shape, as the driver builds it.
Json V1Slice() {
  return Json::parse(R"({
    "metadata": {"name": "node1-accel-dra.dev-abc"},
    "spec": {
      "driver": "accel-dra.dev",
      "nodeName": "node1",
      "pool": {"name": "node1", "generation": 1, "resourceSliceCount": 1},
      "devices": [
        {"name": "gpu-0",
         "attributes": {"model": {"string": "X100"}, "index": {"int": 0}},
         "capacity": {"memory": {"value": "16Gi"}}},
        {"name": "gpu-1"}
      ]
    }
  })");
}

class KubeResourceApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = std::make_unique<FakeTransport>();
    fake_ = t.get();
    RetryPolicy retry;
    retry.max_attempts = 1;
    client_ = std::make_unique<Client>(std::move(t), retry, milliseconds(2000));
    api_ = std::make_unique<ResourceApi>(client_.get());
  }

  // Serves discovery with `versions`, echoes writes, and records everything.
  void Serve(const std::vector<std::string>& versions) {
    fake_->OnDo([versions](const FakeTransport::Call& c) -> Expected<HttpResponse> {
      if (c.path == "/apis/resource.k8s.io") return Resp(200, ApiGroup(versions).dump());
      if (c.method == "POST" || c.method == "PUT") {
        Json echoed = Json::parse(c.body);
        echoed["metadata"]["resourceVersion"] = "77";
        return Resp(c.method == "POST" ? 201 : 200, echoed.dump());
      }
      return Resp(404, NotFoundBodyFor(c.path));
    });
  }

  std::vector<FakeTransport::Call> NonDiscoveryCalls() {
    std::vector<FakeTransport::Call> out;
    for (auto& c : fake_->calls()) {
      if (c.path != "/apis/resource.k8s.io") out.push_back(c);
    }
    return out;
  }

  FakeTransport* fake_ = nullptr;
  std::unique_ptr<Client> client_;
  std::unique_ptr<ResourceApi> api_;
};

TEST_F(KubeResourceApiTest, DiscoveryPrefersV1ThenV1beta2ThenV1beta1) {
  struct Case {
    std::vector<std::string> served;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{{{"v1beta1", "v1beta2", "v1"}, "v1"},
                                         {{"v1", "v1alpha3"}, "v1"},
                                         {{"v1beta1", "v1beta2"}, "v1beta2"},
                                         {{"v1alpha3", "v1beta1"}, "v1beta1"}}) {
    SetUp();
    Serve(c.served);
    auto v = api_->Version();
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(*v, c.want);
  }
}

TEST_F(KubeResourceApiTest, DiscoveryIsCached) {
  Serve({"v1"});
  ASSERT_TRUE(api_->Version().ok());
  ASSERT_TRUE(api_->Version().ok());
  (void)api_->GetResourceClaim("ns", "c");
  (void)api_->DeleteResourceSlice("s");
  int discovery = 0;
  for (auto& c : fake_->calls()) discovery += c.path == "/apis/resource.k8s.io" ? 1 : 0;
  EXPECT_EQ(discovery, 1);
}

TEST_F(KubeResourceApiTest, WaitForVersionRetriesOnlyWhileUnreachableAndUntilTheDeadline) {
  auto discoveries = [this] {
    int n = 0;
    for (auto& c : fake_->calls()) n += c.path == "/apis/resource.k8s.io" ? 1 : 0;
    return n;
  };
  auto later = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  fake_->Push(Unavailable("connection refused"));
  fake_->Push(Resp(503, StatusBody(503, "ServiceUnavailable", "starting")));
  Serve({"v1"});
  auto v = WaitForVersion(*api_, later, milliseconds(1));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, "v1");
  EXPECT_EQ(discoveries(), 3);

  SetUp();  // not transient: returned at once
  fake_->Push(Resp(403, StatusBody(403, "Forbidden", "no")));
  v = WaitForVersion(*api_, later, milliseconds(1));
  EXPECT_EQ(v.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(discoveries(), 1);

  SetUp();  // the deadline has passed: the last error
  fake_->OnDo([](const FakeTransport::Call&) -> Expected<HttpResponse> {
    return Unavailable("connection refused");
  });
  v = WaitForVersion(*api_, std::chrono::steady_clock::now(), milliseconds(1));
  EXPECT_EQ(v.status().code(), Code::kUnavailable);
  EXPECT_THAT(v.status().message(), HasSubstr("connection refused"));
  EXPECT_EQ(discoveries(), 1);
}

TEST_F(KubeResourceApiTest, DiscoveryFailures) {
  Serve({"v1alpha3"});
  auto v = api_->Version();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(v.status().message(), HasSubstr("[v1alpha3]"));

  SetUp();
  fake_->Push(
      Resp(404, StatusBody(404, "NotFound", "the server could not find the requested resource")));
  v = api_->Version();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(v.status().message(), HasSubstr("does not serve the resource.k8s.io API group"));

  // A failed discovery is not cached.
  Serve({"v1"});
  v = api_->Version();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, "v1");
}

TEST_F(KubeResourceApiTest, V1SliceGoesOutUnchangedButForApiVersion) {
  Serve({"v1"});
  auto created = api_->CreateResourceSlice(V1Slice());
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto calls = NonDiscoveryCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "POST");
  EXPECT_EQ(calls[0].path, "/apis/resource.k8s.io/v1/resourceslices");
  Json wire = Json::parse(calls[0].body);
  EXPECT_EQ(wire["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(wire["kind"], "ResourceSlice");
  EXPECT_EQ(wire["spec"]["devices"], V1Slice()["spec"]["devices"]);
  EXPECT_EQ((*created)["metadata"]["resourceVersion"], "77");
}

TEST_F(KubeResourceApiTest, V1beta1SliceIsConvertedBothWays) {
  Serve({"v1beta1"});
  auto created = api_->CreateResourceSlice(V1Slice());
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto calls = NonDiscoveryCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].path, "/apis/resource.k8s.io/v1beta1/resourceslices");
  Json wire = Json::parse(calls[0].body);
  EXPECT_EQ(wire["apiVersion"], "resource.k8s.io/v1beta1");
  EXPECT_EQ(wire["spec"]["devices"][0], Json::parse(R"({"name": "gpu-0", "basic": {
      "attributes": {"model": {"string": "X100"}, "index": {"int": 0}},
      "capacity": {"memory": {"value": "16Gi"}}}})"));
  EXPECT_EQ(wire["spec"]["devices"][1], Json::parse(R"({"name": "gpu-1", "basic": {}})"));
  EXPECT_EQ(wire["spec"]["driver"], "accel-dra.dev");

  // The server's answer (v1beta1 shape) comes back in the v1 shape.
  Json back = *created;
  EXPECT_EQ(back["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(back["spec"]["devices"], V1Slice()["spec"]["devices"]);
  EXPECT_EQ(back["metadata"]["resourceVersion"], "77");
}

TEST_F(KubeResourceApiTest, V1beta2SliceIsNotReshaped) {
  Serve({"v1beta2"});
  Json slice = V1Slice();
  ASSERT_TRUE(api_->UpdateResourceSlice(slice).ok());
  auto calls = NonDiscoveryCalls();
  ASSERT_EQ(calls.size(), 1u);
  Json wire = Json::parse(calls[0].body);
  EXPECT_EQ(wire["apiVersion"], "resource.k8s.io/v1beta2");
  EXPECT_EQ(wire["spec"]["devices"], slice["spec"]["devices"]);
}

TEST_F(KubeResourceApiTest, UpdatePutsToTheNamedSlice) {
  Serve({"v1"});
  auto updated = api_->UpdateResourceSlice(V1Slice());
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  auto calls = NonDiscoveryCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "PUT");
  EXPECT_EQ(calls[0].path, "/apis/resource.k8s.io/v1/resourceslices/node1-accel-dra.dev-abc");

  Json nameless = V1Slice();
  nameless["metadata"].erase("name");
  auto r = api_->UpdateResourceSlice(nameless);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST_F(KubeResourceApiTest, ListUsesEncodedSelectorsAndConverts) {
  fake_->OnDo([](const FakeTransport::Call& c) -> Expected<HttpResponse> {
    if (c.path == "/apis/resource.k8s.io") return Resp(200, ApiGroup({"v1beta1"}).dump());
    Json list = {{"kind", "ResourceSliceList"},
                 {"apiVersion", "resource.k8s.io/v1beta1"},
                 {"metadata", {{"resourceVersion", "500"}}}};
    list["items"] = Json::array({Json::parse(R"({"metadata":{"name":"s1"},"spec":{"devices":[
           {"name":"gpu-0","basic":{"attributes":{"model":{"string":"X100"}}}}]}})")});
    return Resp(200, list.dump());
  });
  auto list = api_->ListResourceSlices("app=x,tier in (a b)", "spec.nodeName=node1");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  auto calls = NonDiscoveryCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].path,
            "/apis/resource.k8s.io/v1beta1/resourceslices?labelSelector=app%3Dx%2Ctier%20in%20%28a%"
            "20b%29&fieldSelector=spec.nodeName%3Dnode1");
  EXPECT_EQ(list->resource_version, "500");
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0]["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(list->items[0]["kind"], "ResourceSlice");
  EXPECT_EQ(list->items[0]["spec"]["devices"][0],
            Json::parse(R"({"name":"gpu-0","attributes":{"model":{"string":"X100"}}})"));

  // No selectors: no query string.
  ASSERT_TRUE(api_->ListResourceSlices("", "").ok());
  EXPECT_EQ(NonDiscoveryCalls().back().path, "/apis/resource.k8s.io/v1beta1/resourceslices");
}

TEST_F(KubeResourceApiTest, WatchSlicesConvertsEvents) {
  Serve({"v1beta1"});
  fake_->SetStream(
      R"({"type":"ADDED","object":{"apiVersion":"resource.k8s.io/v1beta1","kind":"ResourceSlice","metadata":{"name":"s1"},"spec":{"devices":[{"name":"d","basic":{"attributes":{"x":{"bool":true}}}}]}}})"
      "\n",
      9);
  std::vector<WatchEvent> events;
  Status st = api_->WatchResourceSlices(
      "", "spec.driver=accel-dra.dev", "500",
      [&](const WatchEvent& e) {
        events.push_back(e);
        return true;
      },
      milliseconds(1000));
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].object["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(events[0].object["spec"]["devices"][0],
            Json::parse(R"({"name":"d","attributes":{"x":{"bool":true}}})"));
  auto paths = fake_->stream_paths();
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0],
            "/apis/resource.k8s.io/v1beta1/resourceslices?fieldSelector=spec.driver%3Daccel-dra.dev"
            "&resourceVersion=500&watch=1&allowWatchBookmarks=true");
}

TEST_F(KubeResourceApiTest, DeleteClaimAndNodePaths) {
  fake_->OnDo([](const FakeTransport::Call& c) -> Expected<HttpResponse> {
    if (c.path == "/apis/resource.k8s.io") return Resp(200, ApiGroup({"v1"}).dump());
    return Resp(200, R"({"kind":"Whatever","metadata":{"name":"n"}})");
  });
  ASSERT_TRUE(api_->DeleteResourceSlice("s1").ok());
  ASSERT_TRUE(api_->GetResourceClaim("team-a", "claim-1").ok());
  ASSERT_TRUE(api_->GetNode("node1").ok());
  auto calls = NonDiscoveryCalls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].method, "DELETE");
  EXPECT_EQ(calls[0].path, "/apis/resource.k8s.io/v1/resourceslices/s1");
  EXPECT_EQ(calls[1].method, "GET");
  EXPECT_EQ(calls[1].path, "/apis/resource.k8s.io/v1/namespaces/team-a/resourceclaims/claim-1");
  EXPECT_EQ(calls[2].path, "/api/v1/nodes/node1");

  EXPECT_EQ(api_->GetResourceClaim("", "x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(api_->GetNode("").status().code(), Code::kInvalidArgument);
}

TEST_F(KubeResourceApiTest, V1beta1ClaimRequestsAreNestedUnderExactly) {
  fake_->OnDo([](const FakeTransport::Call& c) -> Expected<HttpResponse> {
    if (c.path == "/apis/resource.k8s.io") return Resp(200, ApiGroup({"v1beta1"}).dump());
    return Resp(200, R"({
      "apiVersion": "resource.k8s.io/v1beta1", "kind": "ResourceClaim",
      "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
      "spec": {"devices": {"requests": [
        {"name": "gpu", "deviceClassName": "accel", "allocationMode": "ExactCount", "count": 2},
        {"name": "any", "firstAvailable": [{"name": "big", "deviceClassName": "accel"}]}
      ]}},
      "status": {"allocation": {"devices": {"results": [
        {"request": "gpu", "driver": "accel-dra.dev", "pool": "node1", "device": "gpu-0"}]}}}
    })");
  });
  auto claim = api_->GetResourceClaim("ns", "c");
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  EXPECT_EQ((*claim)["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ((*claim)["spec"]["devices"]["requests"][0], Json::parse(R"({"name": "gpu",
      "exactly": {"deviceClassName": "accel", "allocationMode": "ExactCount", "count": 2}})"));
  EXPECT_EQ((*claim)["spec"]["devices"]["requests"][1]["firstAvailable"][0]["name"], "big");
  EXPECT_EQ((*claim)["status"]["allocation"]["devices"]["results"][0]["device"], "gpu-0");
}

TEST_F(KubeResourceApiTest, ErrorsPropagateWithContext) {
  fake_->OnDo([](const FakeTransport::Call& c) -> Expected<HttpResponse> {
    if (c.path == "/apis/resource.k8s.io") return Resp(200, ApiGroup({"v1"}).dump());
    return Resp(409, StatusBody(409, "AlreadyExists", "resourceslices \"s\" already exists"));
  });
  auto r = api_->CreateResourceSlice(V1Slice());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_THAT(r.status().message(), HasSubstr("POST /apis/resource.k8s.io/v1/resourceslices"));
  EXPECT_THAT(r.status().message(), HasSubstr("already exists"));
}

}  // namespace
}  // namespace accel_dra::kube
