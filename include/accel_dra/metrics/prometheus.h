#pragma once
// The plugin's Prometheus metrics and its health endpoint.
//
// PrometheusRecorder implements common/metrics.h's MetricsRecorder with prometheus-cpp (the
// core library only; the endpoint is our http::Server). Metric names (docs/operations.md):
//   accel_dra_build_info{version,driver}                                    gauge, always 1
//   accel_dra_prepare_requests_total / accel_dra_unprepare_requests_total   counter, per claim
//   accel_dra_prepare_errors_total{reason} / accel_dra_unprepare_errors_total{reason}
//   accel_dra_prepare_duration_seconds / accel_dra_unprepare_duration_seconds   histogram
//   accel_dra_published_devices{type,health}                                gauge
//   accel_dra_resourceslice_writes_total{operation}                         counter
//   accel_dra_resourceslice_write_errors_total{operation}                   counter
//   accel_dra_checkpoint_write_duration_seconds                             histogram
//   accel_dra_checkpoint_write_errors_total                                 counter
//   accel_dra_apiserver_request_duration_seconds{verb,code}                 histogram
//   accel_dra_kubelet_registered                                            gauge 0/1
//   accel_dra_resourceslices_published                                      gauge 0/1
// Promises: thread-safe; Scrape() is the text exposition format 0.0.4; ready() is true once
// kubelet has accepted the registration (and not reported a failure since) and the node's
// ResourceSlices were published once.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "accel_dra/common/metrics.h"
#include "accel_dra/common/status.h"
#include "accel_dra/http/server.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace accel_dra::metrics {

class PrometheusRecorder : public MetricsRecorder {
 public:
  PrometheusRecorder(const std::string& version, const std::string& driver_name);
  ~PrometheusRecorder() override;

  void ClaimOperationDone(ClaimOperation op, std::string_view error_reason,
                          double seconds) override;
  void DevicesPublished(const DeviceCounts& counts) override;
  void SliceWrite(std::string_view operation, bool ok) override;
  void CheckpointWrite(double seconds, bool ok) override;
  void ApiRequest(std::string_view verb, int code, double seconds) override;
  void KubeletRegistered(bool registered) override;
  void SlicesPublished() override;

  std::string Scrape() const;
  // Empty when ready, else what is missing ("kubelet registration", ...).
  std::string NotReady() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
  std::mutex devices_mu_;
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> device_gauges_;
  std::atomic<bool> registered_{false};
  std::atomic<bool> published_{false};
};

struct EndpointOptions {
  std::string address = "127.0.0.1";
  int port = 0;
};

// Serves /metrics (the recorder's scrape), /healthz (200 while `alive` returns OK, else 503
// with its message) and /readyz (200 when the recorder is ready, else 503 naming what is
// missing) over HTTP.
Expected<std::unique_ptr<http::Server>> ServeEndpoint(const EndpointOptions& options,
                                                      const PrometheusRecorder& recorder,
                                                      std::function<Status()> alive);

}  // namespace accel_dra::metrics
