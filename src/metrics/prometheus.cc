// PrometheusRecorder and the metrics/health endpoint.

#include "accel_dra/metrics/prometheus.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>
#include <utility>
#include <vector>

namespace accel_dra::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Claim operations take milliseconds (a checkpoint fsync, a CDI write) to seconds (an
// apiserver round trip under load, nvidia-smi).
const Histogram::BucketBoundaries kOperationBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25,  0.5,    1,     2.5,  5,     10,   30};
const Histogram::BucketBoundaries kWriteBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,   0.025,   0.05,   0.1,   0.25,   1};

Family<Counter>& CounterFamily(prometheus::Registry& r, const std::string& name,
                               const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
Family<Gauge>& GaugeFamily(prometheus::Registry& r, const std::string& name,
                           const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}
Family<Histogram>& HistogramFamily(prometheus::Registry& r, const std::string& name,
                                   const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

struct OperationMetrics {
  Counter* requests = nullptr;
  Family<Counter>* errors = nullptr;
  Histogram* duration = nullptr;
};

OperationMetrics MakeOperation(prometheus::Registry& r, const std::string& op) {
  OperationMetrics o;
  o.requests = &CounterFamily(r, "accel_dra_" + op + "_requests_total",
                              "Claims kubelet asked to " + op + ", successful or not.")
                    .Add({});
  o.errors = &CounterFamily(r, "accel_dra_" + op + "_errors_total",
                            "Claims whose " + op + " failed, by reason.");
  o.duration = &HistogramFamily(r, "accel_dra_" + op + "_duration_seconds",
                                "Time to " + op + " one claim, successful or not.")
                    .Add({}, kOperationBuckets);
  return o;
}

}  // namespace

struct PrometheusRecorder::Families {
  OperationMetrics prepare;
  OperationMetrics unprepare;
  Family<Gauge>* devices = nullptr;
  Family<Counter>* slice_writes = nullptr;
  Family<Counter>* slice_write_errors = nullptr;
  Histogram* checkpoint_write = nullptr;
  Counter* checkpoint_write_errors = nullptr;
  Family<Histogram>* api = nullptr;
  Gauge* registered = nullptr;
  Gauge* published = nullptr;
};

PrometheusRecorder::PrometheusRecorder(const std::string& version, const std::string& driver_name)
    : registry_(std::make_shared<prometheus::Registry>()), f_(std::make_unique<Families>()) {
  auto& r = *registry_;
  GaugeFamily(r, "accel_dra_build_info", "The plugin's version and driver name (always 1).")
      .Add({{"version", version}, {"driver", driver_name}})
      .Set(1);
  f_->prepare = MakeOperation(r, "prepare");
  f_->unprepare = MakeOperation(r, "unprepare");
  f_->devices = &GaugeFamily(r, "accel_dra_published_devices",
                             "Devices handed to the ResourceSlice publisher, by type and health.");
  f_->slice_writes = &CounterFamily(r, "accel_dra_resourceslice_writes_total",
                                    "ResourceSlice writes (create, update, delete).");
  f_->slice_write_errors = &CounterFamily(r, "accel_dra_resourceslice_write_errors_total",
                                          "ResourceSlice writes that failed.");
  f_->checkpoint_write =
      &HistogramFamily(r, "accel_dra_checkpoint_write_duration_seconds",
                       "Time to write the checkpoint file (temp file, fsync, rename).")
           .Add({}, kWriteBuckets);
  f_->checkpoint_write_errors = &CounterFamily(r, "accel_dra_checkpoint_write_errors_total",
                                               "Checkpoint file writes that failed.")
                                     .Add({});
  f_->api = &HistogramFamily(r, "accel_dra_apiserver_request_duration_seconds",
                             "apiserver request attempts (watches excluded) by HTTP verb and "
                             "status code (0: no answer).");
  f_->registered = &GaugeFamily(r, "accel_dra_kubelet_registered",
                                "1 while kubelet has accepted the plugin's registration.")
                        .Add({});
  f_->published = &GaugeFamily(r, "accel_dra_resourceslices_published",
                               "1 once the node's ResourceSlices were published.")
                       .Add({});
}

PrometheusRecorder::~PrometheusRecorder() = default;

void PrometheusRecorder::ClaimOperationDone(ClaimOperation op, std::string_view error_reason,
                                            double seconds) {
  auto& o = op == ClaimOperation::kPrepare ? f_->prepare : f_->unprepare;
  o.requests->Increment();
  o.duration->Observe(seconds);
  if (!error_reason.empty()) o.errors->Add({{"reason", std::string(error_reason)}}).Increment();
}

void PrometheusRecorder::DevicesPublished(const DeviceCounts& counts) {
  std::lock_guard<std::mutex> lock(devices_mu_);
  for (auto it = device_gauges_.begin(); it != device_gauges_.end();) {
    if (counts.count(it->first) == 0) {
      f_->devices->Remove(it->second);
      it = device_gauges_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [key, n] : counts) {
    auto& g = device_gauges_[key];
    if (g == nullptr) g = &f_->devices->Add({{"type", key.first}, {"health", key.second}});
    g->Set(n);
  }
}

void PrometheusRecorder::SliceWrite(std::string_view operation, bool ok) {
  prometheus::Labels labels{{"operation", std::string(operation)}};
  f_->slice_writes->Add(labels).Increment();
  if (!ok) f_->slice_write_errors->Add(labels).Increment();
}

void PrometheusRecorder::CheckpointWrite(double seconds, bool ok) {
  f_->checkpoint_write->Observe(seconds);
  if (!ok) f_->checkpoint_write_errors->Increment();
}

void PrometheusRecorder::ApiRequest(std::string_view verb, int code, double seconds) {
  f_->api->Add({{"verb", std::string(verb)}, {"code", std::to_string(code)}}, kOperationBuckets)
      .Observe(seconds);
}

void PrometheusRecorder::KubeletRegistered(bool registered) {
  registered_ = registered;
  f_->registered->Set(registered ? 1 : 0);
}

void PrometheusRecorder::SlicesPublished() {
  published_ = true;
  f_->published->Set(1);
}

std::string PrometheusRecorder::Scrape() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

std::string PrometheusRecorder::NotReady() const {
  std::string missing;
  if (!registered_) missing = "kubelet has not registered the plugin";
  if (!published_) {
    missing += std::string(missing.empty() ? "" : "; ") + "ResourceSlices not published yet";
  }
  return missing;
}

Expected<std::unique_ptr<http::Server>> ServeEndpoint(const EndpointOptions& options,
                                                      const PrometheusRecorder& recorder,
                                                      std::function<Status()> alive) {
  std::map<std::string, http::Handler> handlers;
  handlers["/metrics"] = [&recorder](const http::Request&) {
    return http::Response{200, "text/plain; version=0.0.4; charset=utf-8", recorder.Scrape()};
  };
  handlers["/healthz"] = [alive = std::move(alive)](const http::Request&) {
    Status st = alive ? alive() : Status();
    return st.ok() ? http::Response{200, "text/plain; charset=utf-8", "ok\n"}
                   : http::Response{503, "text/plain; charset=utf-8", st.message() + "\n"};
  };
  handlers["/readyz"] = [&recorder](const http::Request&) {
    std::string missing = recorder.NotReady();
    return missing.empty()
               ? http::Response{200, "text/plain; charset=utf-8", "ok\n"}
               : http::Response{503, "text/plain; charset=utf-8", "not ready: " + missing + "\n"};
  };
  http::ServerOptions sopts;
  sopts.address = options.address;
  sopts.port = options.port;
  return http::Server::Start(sopts, std::move(handlers));
}

}  // namespace accel_dra::metrics
