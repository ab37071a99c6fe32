#include "accel_dra/slices/publisher.h"

#include <algorithm>
#include <random>

#include "accel_dra/common/log.h"
#include "accel_dra/common/metrics.h"

namespace accel_dra::slices {
namespace {

// True when every key of `want` is present in `have` with an equal value (recursively), and
// arrays have equal length. Tolerates fields the apiserver adds (defaults, metadata), except in a
// device's "attributes" and "capacity" maps, which the apiserver never extends: there the key sets
// must be equal, so that an attribute that went away (e.g. a Node's runtime information) is
// unpublished too.
bool Contains(const Json& have, const Json& want, bool exact_keys = false) {
  if (want.is_object()) {
    if (!have.is_object()) return false;
    if (exact_keys && have.size() != want.size()) return false;
    // A device that lost all its attributes or capacities omits the key altogether.
    for (const char* k : {"attributes", "capacity"}) {
      if (have.contains(k) && !want.contains(k) && want.contains("name")) return false;
    }
    for (const auto& [k, v] : want.items()) {
      auto it = have.find(k);
      if (it == have.end() || !Contains(*it, v, k == "attributes" || k == "capacity")) {
        return false;
      }
    }
    return true;
  }
  if (want.is_array()) {
    if (!have.is_array() || have.size() != want.size()) return false;
    for (size_t i = 0; i < want.size(); ++i) {
      if (!Contains(have[i], want[i])) return false;
    }
    return true;
  }
  return have == want;
}

// The devices without their "taints" (for comparing with an apiserver that drops them).
// Not inlined: inlined into Reconcile at -O2+, GCC 12 reports a bogus -Warray-bounds in the
// std::map erase behind Json::erase (GCC meta-bug 56456, bogus -Warray-bounds), fatal under -Werror
// in Release builds.
[[gnu::noinline]] Json WithoutTaints(Json devices) {
  for (auto& d : devices) {
    if (d.is_object()) d.erase("taints");
  }
  return devices;
}

// Contains() tolerates extra fields, but taints are ours: a device the apiserver still has with
// taints we no longer want (healthy again) is a difference.
bool NoStaleTaints(const Json& have, const Json& want) {
  for (size_t i = 0; i < want.size() && i < have.size(); ++i) {
    if (have[i].contains("taints") && !want[i].contains("taints")) return false;
  }
  return true;
}

// True when `sent` carries device taints that the apiserver's answer `written` lacks: the
// DRADeviceTaints feature gate is off there (alpha in Kubernetes 1.33-1.35) and the field was
// dropped.
bool TaintsDropped(const Json& sent, const Json& written) {
  const auto devices = Json::json_pointer("/spec/devices");
  if (!sent.contains(devices) || !written.contains(devices)) return false;
  const Json& s = sent.at(devices);
  const Json& w = written.at(devices);
  for (size_t i = 0; i < s.size() && i < w.size(); ++i) {
    if (s[i].contains("taints") && !w[i].contains("taints")) return true;
  }
  return false;
}

int64_t GetInt(const Json& j, const Json::json_pointer& p) {
  if (!j.contains(p)) return 0;
  const Json& v = j.at(p);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

std::string GetStr(const Json& j, const Json::json_pointer& p) {
  if (!j.contains(p)) return "";
  const Json& v = j.at(p);
  return v.is_string() ? v.get<std::string>() : "";
}

const Json::json_pointer kGen("/spec/pool/generation");
const Json::json_pointer kCount("/spec/pool/resourceSliceCount");
const Json::json_pointer kPool("/spec/pool/name");
const Json::json_pointer kDevices("/spec/devices");
const Json::json_pointer kName("/metadata/name");
const Json::json_pointer kRv("/metadata/resourceVersion");

// Which existing slice each desired chunk goes to (-1: none, create one), and which existing
// slices are taken.
struct Pairing {
  std::vector<int> match;
  std::vector<bool> used;
};

// Pairs desired chunks with existing slices of identical content.
Pairing PairIdentical(const std::vector<std::vector<Json>>& chunks,
                      const std::vector<Json>& existing, bool ignore_taints) {
  Pairing p{std::vector<int>(chunks.size(), -1), std::vector<bool>(existing.size(), false)};
  for (size_t c = 0; c < chunks.size(); ++c) {
    Json want_devices = chunks[c];
    if (ignore_taints) want_devices = WithoutTaints(std::move(want_devices));
    for (size_t e = 0; e < existing.size(); ++e) {
      if (!p.used[e] && existing[e].contains(kDevices) &&
          Contains(existing[e].at(kDevices), want_devices) &&
          (ignore_taints || NoStaleTaints(existing[e].at(kDevices), want_devices))) {
        p.match[c] = static_cast<int>(e);
        p.used[e] = true;
        break;
      }
    }
  }
  return p;
}

// True when the pool needs no writes: no slices of another pool, one slice per chunk, each chunk
// paired with an identical slice, every slice at the highest generation with the right count.
bool PoolInSync(const std::vector<Json>& existing, bool other_pools, const Pairing& p,
                int64_t max_gen, int64_t want_count) {
  return !other_pools && static_cast<int64_t>(existing.size()) == want_count &&
         std::all_of(p.match.begin(), p.match.end(), [](int m) { return m >= 0; }) &&
         std::all_of(existing.begin(), existing.end(), [&](const Json& s) {
           return GetInt(s, kGen) == max_gen && GetInt(s, kCount) == want_count;
         });
}

// Reuses unpaired existing slices for unpaired chunks; the chunks still unpaired are created.
void PairRemaining(Pairing& p) {
  for (size_t c = 0; c < p.match.size(); ++c) {
    if (p.match[c] >= 0) continue;
    for (size_t e = 0; e < p.used.size(); ++e) {
      if (!p.used[e]) {
        p.match[c] = static_cast<int>(e);
        p.used[e] = true;
        break;
      }
    }
  }
}

}  // namespace

// This node's slices of our driver, as listed.
struct SlicePublisher::Listed {
  std::vector<Json> existing;      // of our pool
  std::vector<Json> foreign_pool;  // our driver + node, another pool name: obsolete
  int64_t max_gen = 0;             // the highest generation in `existing`
};

SlicePublisher::SlicePublisher(kube::ResourceApi* api, Options options)
    : api_(api), options_(std::move(options)) {}

SlicePublisher::~SlicePublisher() { Stop(); }

std::string SlicePublisher::FieldSelector() const {
  return "spec.nodeName=" + options_.pool.node_name + ",spec.driver=" + options_.pool.driver;
}

void SlicePublisher::Start() {
  reconcile_thread_ = std::thread([this] { ReconcileLoop(); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
}

void SlicePublisher::Update(model::InventoryPtr inventory) {
  std::lock_guard<std::mutex> lock(mu_);
  if (desired_ && inventory && *desired_ == *inventory) return;
  desired_ = std::move(inventory);
  stats_.in_sync = false;
  cv_.notify_all();
}

void SlicePublisher::MarkDirty() {
  std::lock_guard<std::mutex> lock(mu_);
  dirty_ = true;
  cv_.notify_all();
}

bool SlicePublisher::WaitInSync(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return stats_.in_sync || stop_requested_; }) &&
         stats_.in_sync;
}

void SlicePublisher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_requested_ = true;
    cv_.notify_all();
  }
  stop_ = true;
  if (reconcile_thread_.joinable()) reconcile_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
}

SlicePublisher::Stats SlicePublisher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void SlicePublisher::ReconcileLoop() {
  std::mt19937 rng(std::random_device{}());
  auto backoff = options_.backoff_min;
  auto next_resync = std::chrono::steady_clock::now() + options_.resync;
  bool retry = false;
  while (true) {
    model::InventoryPtr want;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto wake = [this] {
        return stop_requested_ || dirty_ || (desired_ && desired_ != published_);
      };
      if (retry) {
        std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
        cv_.wait_for(lock, std::chrono::milliseconds(jitter(rng)),
                     [this] { return stop_requested_; });
      } else {
        cv_.wait_until(lock, next_resync, wake);
      }
      if (stop_requested_) return;
      if (!desired_) continue;  // nothing to publish yet
      want = desired_;
      dirty_ = false;
    }
    Status st = Reconcile(want);
    std::lock_guard<std::mutex> lock(mu_);
    if (st.ok()) {
      published_ = want;
      retry = false;
      backoff = options_.backoff_min;
      next_resync = std::chrono::steady_clock::now() + options_.resync;
      stats_.in_sync = (desired_ == want) && !dirty_;
      stats_.last_error.clear();
      Metrics().SlicesPublished();
    } else {
      retry = true;
      backoff = std::min(backoff * 2, options_.backoff_max);
      stats_.in_sync = false;
      stats_.last_error = st.message();
      spdlog::warn("publishing ResourceSlices failed (will retry): {}", st.message());
    }
    cv_.notify_all();
  }
}

Status SlicePublisher::Reconcile(const model::InventoryPtr& inventory) {
  DesiredPool desired = BuildPool(*inventory, options_.pool);
  for (const auto& p : desired.problems) spdlog::warn("device {}", p);
  ASSIGN_OR_RETURN(Listed listed, ListPool());

  const int64_t want_count = static_cast<int64_t>(desired.chunks.size());
  Pairing pairing = PairIdentical(desired.chunks, listed.existing, taints_dropped_.load());
  if (PoolInSync(listed.existing, !listed.foreign_pool.empty(), pairing, listed.max_gen,
                 want_count)) {
    RecordInSync(listed);
    return Status::Ok();
  }

  // One new generation for every slice of the pool; slices left over are deleted last.
  const int64_t generation = std::max(listed.max_gen, last_generation_) + 1;
  PairRemaining(pairing);
  Writes writes;
  RETURN_IF_ERROR(WriteSlices(desired.chunks, listed.existing, pairing.match, generation, writes));
  for (size_t e = 0; e < listed.existing.size(); ++e) {
    if (!pairing.used[e]) RETURN_IF_ERROR(DeleteSlice(listed.existing[e], writes));
  }
  for (const auto& s : listed.foreign_pool) RETURN_IF_ERROR(DeleteSlice(s, writes));
  RecordPublished(generation, desired.chunks.size(), inventory->devices().size(), writes);
  return Status::Ok();
}

Expected<SlicePublisher::Listed> SlicePublisher::ListPool() {
  ASSIGN_OR_RETURN(auto list, api_->ListResourceSlices("", FieldSelector()));
  Listed listed;
  for (auto& s : list.items) {
    (GetStr(s, kPool) == options_.pool.pool() ? listed.existing : listed.foreign_pool)
        .push_back(std::move(s));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.lists++;
    list_resource_version_ = list.resource_version;
  }
  for (const auto& s : listed.existing) listed.max_gen = std::max(listed.max_gen, GetInt(s, kGen));
  return listed;
}

void SlicePublisher::RecordInSync(const Listed& listed) {
  std::lock_guard<std::mutex> lock(mu_);
  last_generation_ = std::max(last_generation_, listed.max_gen);
  stats_.generation = listed.max_gen;
  stats_.slices = listed.existing.size();
}

// Writes chunk c into existing[match[c]] (PUT) or, when match[c] < 0, a new slice (POST).
Status SlicePublisher::WriteSlices(const std::vector<std::vector<Json>>& chunks,
                                   const std::vector<Json>& existing, const std::vector<int>& match,
                                   int64_t generation, Writes& writes) {
  const auto count = static_cast<int64_t>(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    Json obj = MakeSlice(options_.pool, chunks[c], generation, count);
    Expected<Json> written = Status();
    if (match[c] >= 0) {
      const Json& old = existing[static_cast<size_t>(match[c])];
      obj["metadata"]["name"] = GetStr(old, kName);
      obj["metadata"]["resourceVersion"] = GetStr(old, kRv);
      obj["metadata"].erase("generateName");
      written = api_->UpdateResourceSlice(obj);
      writes.updates++;
    } else {
      written = api_->CreateResourceSlice(obj);
      writes.creates++;
    }
    Metrics().SliceWrite(match[c] >= 0 ? "update" : "create", written.ok());
    if (!written.ok()) return written.status().WithContext("writing ResourceSlice");
    if (TaintsDropped(obj, *written) && !taints_dropped_.exchange(true)) {
      spdlog::error(
          "the apiserver dropped the device taints of ResourceSlice {}: enable the "
          "DRADeviceTaints feature gate (kube-apiserver and kube-scheduler) for --device-taints; "
          "devices are published without taints",
          GetStr(*written, kName));
    }
    std::lock_guard<std::mutex> lock(mu_);
    own_versions_.insert(GetStr(*written, kRv));
  }
  return Status::Ok();
}

Status SlicePublisher::DeleteSlice(const Json& slice, Writes& writes) {
  std::string name = GetStr(slice, kName);
  {
    std::lock_guard<std::mutex> lock(mu_);
    own_deletes_.insert(name);
  }
  Status st = api_->DeleteResourceSlice(name);
  Metrics().SliceWrite("delete", st.ok() || st.code() == Code::kNotFound);
  if (!st.ok() && st.code() != Code::kNotFound) return st.WithContext("deleting ResourceSlice");
  writes.deletes++;
  return Status::Ok();
}

void SlicePublisher::RecordPublished(int64_t generation, size_t slices, size_t devices,
                                     const Writes& writes) {
  std::lock_guard<std::mutex> lock(mu_);
  last_generation_ = generation;
  stats_.generation = generation;
  stats_.slices = slices;
  stats_.creates += writes.creates;
  stats_.updates += writes.updates;
  stats_.deletes += writes.deletes;
  spdlog::info(
      "published pool {} generation {}: {} devices in {} slices ({} created, {} updated, "
      "{} deleted)",
      options_.pool.pool(), generation, devices, slices, writes.creates, writes.updates,
      writes.deletes);
}

void SlicePublisher::WatchLoop() {
  auto backoff = options_.backoff_min;
  while (!stop_) {
    std::string rv;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Watch from the resourceVersion of the latest list; wait for one to exist.
      cv_.wait_for(lock, std::chrono::milliseconds(500),
                   [this] { return stop_requested_ || !list_resource_version_.empty(); });
      if (stop_requested_) return;
      rv = list_resource_version_;
    }
    if (rv.empty()) continue;
    std::string last_rv = rv;
    Status st = api_->WatchResourceSlices(
        "", FieldSelector(), rv,
        [&](const kube::WatchEvent& ev) {
          std::string erv = GetStr(ev.object, kRv);
          if (!erv.empty()) last_rv = erv;
          if (ev.type == "BOOKMARK") return true;
          bool foreign = true;
          {
            std::lock_guard<std::mutex> lock(mu_);
            if (ev.type == "DELETED") {
              foreign = own_deletes_.erase(GetStr(ev.object, kName)) == 0;
            } else {
              foreign = own_versions_.erase(erv) == 0;
            }
          }
          if (foreign) {
            LOG_V(2, "ResourceSlice {} {} by someone else; reconciling", GetStr(ev.object, kName),
                  ev.type);
            MarkDirty();
          }
          return true;
        },
        options_.watch_timeout, &stop_);
    if (stop_) return;
    std::unique_lock<std::mutex> lock(mu_);
    if (st.ok()) {
      list_resource_version_ = last_rv;  // continue where the stream ended
      backoff = options_.backoff_min;
      continue;
    }
    // Expired resourceVersion or a failure: re-list (which also re-checks our slices).
    LOG_V(1, "ResourceSlice watch ended: {}", st.message());
    list_resource_version_.clear();
    dirty_ = true;
    cv_.notify_all();
    if (st.code() != Code::kFailedPrecondition) {
      cv_.wait_for(lock, backoff, [this] { return stop_requested_; });
    }
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

Status SlicePublisher::DeleteAll() {
  ASSIGN_OR_RETURN(auto list, api_->ListResourceSlices("", FieldSelector()));
  for (const auto& s : list.items) {
    Status st = api_->DeleteResourceSlice(GetStr(s, kName));
    if (!st.ok() && st.code() != Code::kNotFound) return st.WithContext("deleting ResourceSlice");
  }
  spdlog::info("deleted {} ResourceSlices of driver {} on node {}", list.items.size(),
               options_.pool.driver, options_.pool.node_name);
  return Status::Ok();
}

}  // namespace accel_dra::slices
