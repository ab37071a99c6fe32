#pragma once
// Fakes shared by the plugin_server tests: a ClaimPreparer that records calls, measures
// concurrency and returns configurable results, and a settable DeviceHealthSource.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/plugin/claim_preparer.h"
#include "accel_dra/plugin/health_source.h"

namespace accel_dra::plugin::fakes {

using std::chrono::milliseconds;

class FakePreparer : public ClaimPreparer {
 public:
  std::map<std::string, PrepareResult> Prepare(const std::vector<ClaimRef>& claims) override {
    Enter();
    std::map<std::string, PrepareResult> out;
    {
      std::lock_guard<std::mutex> l(mu_);
      prepare_calls_.push_back(claims);
      for (const ClaimRef& c : claims) {
        if (omit_.count(c.uid)) continue;
        auto it = prepare_results_.find(c.uid);
        out[c.uid] = it != prepare_results_.end() ? it->second : DefaultResult(c);
      }
      for (const auto& [uid, r] : extra_prepare_results_) out[uid] = r;
    }
    Leave();
    return out;
  }

  std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) override {
    Enter();
    std::map<std::string, std::string> out;
    {
      std::lock_guard<std::mutex> l(mu_);
      unprepare_calls_.push_back(claims);
      for (const ClaimRef& c : claims) {
        if (omit_.count(c.uid)) continue;
        auto it = unprepare_errors_.find(c.uid);
        out[c.uid] = it != unprepare_errors_.end() ? it->second : "";
      }
    }
    Leave();
    return out;
  }

  static PrepareResult DefaultResult(const ClaimRef& c) {
    PrepareResult r;
    r.devices.push_back(PreparedDevice{
        {"gpu"}, "node-a", "gpu-0", {"k8s.accel-dra.dev/gpu=" + c.uid + "-gpu-0"}, std::nullopt});
    return r;
  }

  void SetPrepareResult(const std::string& uid, PrepareResult r) {
    std::lock_guard<std::mutex> l(mu_);
    prepare_results_[uid] = std::move(r);
  }
  void SetExtraPrepareResult(const std::string& uid, PrepareResult r) {
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
  std::vector<ClaimRef> last_prepare_claims() const {
    std::lock_guard<std::mutex> l(mu_);
    return prepare_calls_.empty() ? std::vector<ClaimRef>{} : prepare_calls_.back();
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
  std::map<std::string, PrepareResult> prepare_results_;
  std::map<std::string, PrepareResult> extra_prepare_results_;
  std::map<std::string, std::string> unprepare_errors_;
  std::set<std::string> omit_;
  std::vector<std::vector<ClaimRef>> prepare_calls_;
  std::vector<std::vector<ClaimRef>> unprepare_calls_;
};

class FakeHealthSource : public DeviceHealthSource {
 public:
  DeviceHealthSnapshot Snapshot() override {
    std::lock_guard<std::mutex> l(mu_);
    return snap_;
  }
  void Set(std::vector<DeviceHealth> devices) {
    std::lock_guard<std::mutex> l(mu_);
    snap_.generation++;
    snap_.devices = std::move(devices);
  }

 private:
  std::mutex mu_;
  DeviceHealthSnapshot snap_;
};

}  // namespace accel_dra::plugin::fakes
