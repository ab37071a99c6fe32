#pragma once
// Fakes shared by the plugin_server tests: a ClaimPreparer that records calls, measures
// concurrency and returns configurable results, and a settable DeviceHealthSource.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/model/claim.h"
#include "accel_dra/model/health.h"

namespace accel_dra::kubelet::fakes {

// A prepared device with only the wire fields set (all kubelet ever sees of it).
inline model::PreparedDevice WireDevice(std::vector<std::string> request_names, std::string pool,
                                        std::string device, std::vector<std::string> cdi_device_ids,
                                        std::optional<std::string> share_id) {
  model::PreparedDevice d;
  d.request_names = std::move(request_names);
  d.pool = std::move(pool);
  d.device = std::move(device);
  d.cdi_device_ids = std::move(cdi_device_ids);
  d.share_id = std::move(share_id);
  return d;
}

using std::chrono::milliseconds;

class FakePreparer : public model::ClaimPreparer {
 public:
  using model::ClaimPreparer::Prepare;
  std::map<std::string, model::PrepareResult> Prepare(const std::vector<model::ClaimRef>& claims,
                                                      const model::CallContext& context) override {
    Enter();
    std::map<std::string, model::PrepareResult> out;
    {
      std::lock_guard<std::mutex> l(mu_);
      prepare_calls_.push_back(claims);
      last_deadline_ = context.deadline();
      for (const model::ClaimRef& c : claims) {
        if (omit_.count(c.uid)) continue;
        auto it = prepare_results_.find(c.uid);
        out[c.uid] = it != prepare_results_.end() ? it->second : DefaultResult(c);
      }
      for (const auto& [uid, r] : extra_prepare_results_) out[uid] = r;
    }
    Leave();
    return out;
  }

  std::map<std::string, std::string> Unprepare(
      const std::vector<model::ClaimRef>& claims) override {
    Enter();
    std::map<std::string, std::string> out;
    {
      std::lock_guard<std::mutex> l(mu_);
      unprepare_calls_.push_back(claims);
      for (const model::ClaimRef& c : claims) {
        if (omit_.count(c.uid)) continue;
        auto it = unprepare_errors_.find(c.uid);
        out[c.uid] = it != unprepare_errors_.end() ? it->second : "";
      }
    }
    Leave();
    return out;
  }

  static model::PrepareResult DefaultResult(const model::ClaimRef& c) {
    model::PrepareResult r;
    r.devices.push_back(WireDevice({"gpu"}, "node-a", "gpu-0",
                                   {"k8s.accel-dra.dev/gpu=" + c.uid + "-gpu-0"}, std::nullopt));
    return r;
  }

  void SetPrepareResult(const std::string& uid, model::PrepareResult r) {
    std::lock_guard<std::mutex> l(mu_);
    prepare_results_[uid] = std::move(r);
  }
  void SetExtraPrepareResult(const std::string& uid, model::PrepareResult r) {
    std::lock_guard<std::mutex> l(mu_);
    extra_prepare_results_[uid] = std::move(r);
  }
  void SetUnprepareError(const std::string& uid, std::string err) {
    std::lock_guard<std::mutex> l(mu_);
    unprepare_errors_[uid] = std::move(err);
  }
  void Omit(const std::string& uid) {
    std::lock_guard<std::mutex> l(mu_);
    omit_.insert(uid);
  }
  // Each call blocks until `n` calls are in flight at once (or `timeout` passes).
  void HoldUntilConcurrent(int n, milliseconds timeout) {
    std::lock_guard<std::mutex> l(mu_);
    gate_ = n;
    gate_timeout_ = timeout;
  }
  int max_in_flight() const { return max_in_flight_.load(); }
  size_t prepare_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return prepare_calls_.size();
  }
  size_t unprepare_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return unprepare_calls_.size();
  }
  // The deadline the last Prepare was given (kubelet's, through the gRPC layer).
  std::optional<model::CallContext::Clock::time_point> last_deadline() const {
    std::lock_guard<std::mutex> l(mu_);
    return last_deadline_;
  }
  std::vector<model::ClaimRef> last_prepare_claims() const {
    std::lock_guard<std::mutex> l(mu_);
    return prepare_calls_.empty() ? std::vector<model::ClaimRef>{} : prepare_calls_.back();
  }

 private:
  void Enter() {
    std::unique_lock<std::mutex> l(mu_);
    int now = ++in_flight_;
    int prev = max_in_flight_.load();
    while (now > prev && !max_in_flight_.compare_exchange_weak(prev, now)) {
    }
    cv_.notify_all();
    if (gate_ > 0) {
      cv_.wait_for(l, gate_timeout_, [this] { return max_in_flight_.load() >= gate_; });
    }
  }
  void Leave() {
    std::lock_guard<std::mutex> l(mu_);
    --in_flight_;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::atomic<int> max_in_flight_{0};
  int gate_ = 0;
  milliseconds gate_timeout_{0};
  std::map<std::string, model::PrepareResult> prepare_results_;
  std::map<std::string, model::PrepareResult> extra_prepare_results_;
  std::map<std::string, std::string> unprepare_errors_;
  std::set<std::string> omit_;
  std::vector<std::vector<model::ClaimRef>> prepare_calls_;
  std::optional<model::CallContext::Clock::time_point> last_deadline_;
  std::vector<std::vector<model::ClaimRef>> unprepare_calls_;
};

class FakeHealthSource : public model::DeviceHealthSource {
 public:
  model::DeviceHealthSnapshot Snapshot() override {
    std::lock_guard<std::mutex> l(mu_);
    return snap_;
  }
  void Set(std::vector<model::DeviceHealth> devices) {
    std::lock_guard<std::mutex> l(mu_);
    snap_.generation++;
    snap_.devices = std::move(devices);
  }

 private:
  std::mutex mu_;
  model::DeviceHealthSnapshot snap_;
};

}  // namespace accel_dra::kubelet::fakes
