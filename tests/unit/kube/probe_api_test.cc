// The kube client's calls for accel-dra-probe: raw GET (pod logs), generic resource.k8s.io
// objects with v1beta1 conversion, discovery of served resources, and CoreApi paths.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "accel_dra/kube/client.h"
#include "fake_transport.h"

namespace accel_dra::kube {
namespace {
using std::chrono::milliseconds;
using testing::FakeTransport;
using testing::NotFoundBodyFor;
using testing::Resp;
using testing::StatusBody;

class KubeProbeApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = std::make_unique<FakeTransport>();
    fake_ = t.get();
    RetryPolicy retry;
    retry.max_attempts = 1;
    client_ = std::make_unique<Client>(std::move(t), retry, milliseconds(2000));
  }
  void Serve(const std::string& version) {
    fake_->OnDo([version](const FakeTransport::Call& c) -> Expected<HttpResponse> {
      if (c.path == "/apis/resource.k8s.io") {
        return Resp(200, Json{{"versions", {{{"version", version}}}}}.dump());
      }
      if (c.path == "/apis/resource.k8s.io/" + version) {
        return Resp(200, Json{{"resources",
                               {{{"name", "resourceslices"}},
                                {{"name", "deviceclasses"}},
                                {{"name", "resourceclaims/status"}},
                                {{"name", "resourceclaims"}}}}}
                             .dump());
      }
      if (c.method == "POST") return Resp(201, c.body);
      if (c.path.find("/log") != std::string::npos)
        return Resp(200, "RESULT: DONE=true\nplain text\n");
      if (c.method == "DELETE") return Resp(404, NotFoundBodyFor(c.path));
      return Resp(200, R"({"items": [{"metadata": {"name": "a"}}]})");
    });
  }
  FakeTransport* fake_ = nullptr;
  std::unique_ptr<Client> client_;
};

TEST_F(KubeProbeApiTest, GetTextReturnsTheBodyAsIs) {
  Serve("v1");
  CoreApi core(client_.get());
  auto logs = core.PodLogs("ns1", "p", "c1");
  ASSERT_TRUE(logs.ok()) << logs.status().ToString();
  EXPECT_EQ(*logs, "RESULT: DONE=true\nplain text\n");
  EXPECT_EQ(fake_->calls().back().path, "/api/v1/namespaces/ns1/pods/p/log?container=c1");
}

TEST_F(KubeProbeApiTest, CorePaths) {
  Serve("v1");
  CoreApi core(client_.get());
  ASSERT_TRUE(core.DeletePod("ns1", "p", 1).ok());  // 404 counts as deleted
  EXPECT_EQ(fake_->calls().back().path, "/api/v1/namespaces/ns1/pods/p?gracePeriodSeconds=1");
  ASSERT_TRUE(core.DeleteNamespace("ns1").ok());
  auto nodes = core.ListNodes("a=b");
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->size(), 1u);
  EXPECT_EQ(fake_->calls().back().path, "/api/v1/nodes?labelSelector=a%3Db");
  auto ns = core.CreateNamespace("ns1", {{"l", "v"}});
  ASSERT_TRUE(ns.ok());
  EXPECT_EQ((*ns)["metadata"]["labels"]["l"], "v");
}

TEST_F(KubeProbeApiTest, ServedResourcesSkipsSubresources) {
  Serve("v1");
  ResourceApi api(client_.get());
  auto r = api.ServedResources();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (std::vector<std::string>{"deviceclasses", "resourceclaims", "resourceslices"}));
}

TEST_F(KubeProbeApiTest, ClaimTemplateIsInlinedForV1beta1) {
  Serve("v1beta1");
  ResourceApi api(client_.get());
  Json tmpl = Json::parse(R"({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
    "metadata": {"name": "t"}, "spec": {"spec": {"devices": {"requests": [
      {"name": "accel", "exactly": {"deviceClassName": "c", "count": 2}}]}}}})");
  ASSERT_TRUE(api.CreateObject("resourceclaimtemplates", "ns1", tmpl).ok());
  const auto call = fake_->calls().back();
  EXPECT_EQ(call.path, "/apis/resource.k8s.io/v1beta1/namespaces/ns1/resourceclaimtemplates");
  Json sent = Json::parse(call.body);
  EXPECT_EQ(sent["apiVersion"], "resource.k8s.io/v1beta1");
  EXPECT_EQ(sent["spec"]["spec"]["devices"]["requests"][0],
            Json::parse(R"({"name": "accel", "deviceClassName": "c", "count": 2})"));
}

TEST_F(KubeProbeApiTest, ClusterScopedObjectsAndNotFoundDelete) {
  Serve("v1");
  ResourceApi api(client_.get());
  Json cls = {{"kind", "DeviceClass"}, {"metadata", {{"name", "x"}}}};
  ASSERT_TRUE(api.CreateObject("deviceclasses", "", cls).ok());
  EXPECT_EQ(fake_->calls().back().path, "/apis/resource.k8s.io/v1/deviceclasses");
  EXPECT_TRUE(api.DeleteObject("deviceclasses", "", "x").ok());
  EXPECT_EQ(fake_->calls().back().path, "/apis/resource.k8s.io/v1/deviceclasses/x");
  auto list = api.ListObjects("resourceclaims", "", "a=b");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(fake_->calls().back().path,
            "/apis/resource.k8s.io/v1/resourceclaims?labelSelector=a%3Db");
}

}  // namespace
}  // namespace accel_dra::kube
