// PrometheusRecorder and the /metrics /healthz /readyz endpoint.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "accel_dra/metrics/prometheus.h"
#include "http_get.h"

namespace accel_dra::metrics {
namespace {

using test_support::HttpGet;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(PrometheusRecorderTest, CountsClaimOperationsByReasonWithHistogramBuckets) {
  PrometheusRecorder r("1.2.3", "accel-dra.dev");
  for (int i = 0; i < 5; ++i) r.ClaimOperationDone(ClaimOperation::kPrepare, "", 0.003);
  r.ClaimOperationDone(ClaimOperation::kPrepare, "invalid_config", 0.2);
  r.ClaimOperationDone(ClaimOperation::kUnprepare, "", 0.0005);
  std::string s = r.Scrape();
  EXPECT_THAT(s, HasSubstr("accel_dra_build_info{driver=\"accel-dra.dev\",version=\"1.2.3\"} 1"));
  EXPECT_THAT(s, HasSubstr("# TYPE accel_dra_prepare_requests_total counter"));
  EXPECT_THAT(s, HasSubstr("accel_dra_prepare_requests_total 6"));
  EXPECT_THAT(s, HasSubstr("accel_dra_prepare_errors_total{reason=\"invalid_config\"} 1"));
  EXPECT_THAT(s, HasSubstr("# TYPE accel_dra_prepare_duration_seconds histogram"));
  EXPECT_THAT(s, HasSubstr("accel_dra_prepare_duration_seconds_bucket{le=\"0.0025\"} 0"));
  EXPECT_THAT(s, HasSubstr("accel_dra_prepare_duration_seconds_bucket{le=\"0.005\"} 5"));
  EXPECT_THAT(s, HasSubstr("accel_dra_prepare_duration_seconds_bucket{le=\"0.25\"} 6"));
  EXPECT_THAT(s, HasSubstr("accel_dra_prepare_duration_seconds_count 6"));
  EXPECT_THAT(s, HasSubstr("accel_dra_unprepare_requests_total 1"));
  EXPECT_THAT(s, HasSubstr("accel_dra_unprepare_duration_seconds_bucket{le=\"0.001\"} 1"));
  EXPECT_THAT(s, Not(HasSubstr("accel_dra_unprepare_errors_total{")));
}

TEST(PrometheusRecorderTest, DevicesSliceWritesCheckpointAndApiserver) {
  PrometheusRecorder r("v", "d");
  r.DevicesPublished({{{"gpu", "Healthy"}, 3}, {{"gpu", "DeviceNodeMissing"}, 1}});
  r.DevicesPublished({{{"gpu", "Healthy"}, 4}});  // the unhealthy one recovered
  r.SliceWrite("create", true);
  r.SliceWrite("update", false);
  r.CheckpointWrite(0.002, true);
  r.CheckpointWrite(0.002, false);
  r.ApiRequest("GET", 200, 0.004);
  r.ApiRequest("PUT", 409, 0.004);
  std::string s = r.Scrape();
  EXPECT_THAT(s, HasSubstr("accel_dra_published_devices{health=\"Healthy\",type=\"gpu\"} 4"));
  EXPECT_THAT(s, Not(HasSubstr("DeviceNodeMissing")));
  EXPECT_THAT(s, HasSubstr("accel_dra_resourceslice_writes_total{operation=\"create\"} 1"));
  EXPECT_THAT(s, HasSubstr("accel_dra_resourceslice_writes_total{operation=\"update\"} 1"));
  EXPECT_THAT(s, HasSubstr("accel_dra_resourceslice_write_errors_total{operation=\"update\"} 1"));
  EXPECT_THAT(s, HasSubstr("accel_dra_checkpoint_write_duration_seconds_count 2"));
  EXPECT_THAT(s, HasSubstr("accel_dra_checkpoint_write_errors_total 1"));
  EXPECT_THAT(
      s,
      HasSubstr("accel_dra_apiserver_request_duration_seconds_count{code=\"200\",verb=\"GET\"} 1"));
  EXPECT_THAT(
      s,
      HasSubstr("accel_dra_apiserver_request_duration_seconds_count{code=\"409\",verb=\"PUT\"} 1"));
}

TEST(PrometheusRecorderTest, ReadyOnlyAfterRegistrationAndFirstPublish) {
  PrometheusRecorder r("v", "d");
  EXPECT_THAT(r.NotReady(), HasSubstr("kubelet has not registered"));
  EXPECT_THAT(r.NotReady(), HasSubstr("ResourceSlices not published"));
  r.SlicesPublished();
  EXPECT_EQ(r.NotReady(), "kubelet has not registered the plugin");
  r.KubeletRegistered(true);
  EXPECT_EQ(r.NotReady(), "");
  r.KubeletRegistered(false);  // kubelet reported a failed registration
  EXPECT_THAT(r.NotReady(), HasSubstr("kubelet has not registered"));
}

TEST(MetricsEndpointTest, ServesMetricsHealthAndReadiness) {
  PrometheusRecorder r("v", "d");
  bool alive = true;
  auto server = ServeEndpoint({"127.0.0.1", 0}, r, [&alive] {
    return alive ? Status() : FailedPrecondition("kubelet socket /x is gone");
  });
  ASSERT_TRUE(server.ok()) << server.status().message();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  r.ClaimOperationDone(ClaimOperation::kPrepare, "", 0.01);
  auto m = HttpGet(port, "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.body, HasSubstr("accel_dra_prepare_requests_total 1"));
  EXPECT_EQ(HttpGet(port, "/healthz").status, 200);
  auto ready = HttpGet(port, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, HasSubstr("not ready: kubelet has not registered the plugin"));
  r.SlicesPublished();
  EXPECT_EQ(HttpGet(port, "/readyz").status, 503);
  r.KubeletRegistered(true);
  EXPECT_EQ(HttpGet(port, "/readyz").status, 200);
  alive = false;
  auto health = HttpGet(port, "/healthz");
  EXPECT_EQ(health.status, 503);
  EXPECT_THAT(health.body, HasSubstr("kubelet socket /x is gone"));
  EXPECT_EQ(HttpGet(port, "/other").status, 404);
}

TEST(MetricsEndpointTest, TakenPortIsAnErrorValue) {
  PrometheusRecorder r("v", "d");
  auto first = ServeEndpoint({"127.0.0.1", 0}, r, nullptr);
  ASSERT_TRUE(first.ok());
  auto second = ServeEndpoint({"127.0.0.1", (*first)->port()}, r, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(),
              HasSubstr("cannot serve HTTP on 127.0.0.1:" + std::to_string((*first)->port())));
}

TEST(MetricsRecorderTest, DefaultRecorderIsANoOpAndSetMetricsInstalls) {
  PrometheusRecorder r("v", "d");
  Metrics().ClaimOperationDone(ClaimOperation::kPrepare, "", 1);  // no-op, no crash
  SetMetrics(&r);
  Metrics().ClaimOperationDone(ClaimOperation::kPrepare, "", 1);
  SetMetrics(nullptr);
  Metrics().ClaimOperationDone(ClaimOperation::kPrepare, "", 1);
  EXPECT_THAT(r.Scrape(), HasSubstr("accel_dra_prepare_requests_total 1"));
}

}  // namespace
}  // namespace accel_dra::metrics
