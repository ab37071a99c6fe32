#pragma once
// Shared helpers for the Preparer tests: canned ResourceClaims (shaped like resource.k8s.io/v1
// objects from the apiserver), a claim getter serving them, an Env that counts and fails writes,
// and a fixture with a temp directory holding the checkpoint data dir, the CDI root and a fake
// host root (boot ID). The checkpoint, the CDI writer and the simulated inventory are the real
// ones.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/checkpoint/checkpoint.h"
#include "accel_dra/claims/preparer.h"
#include "accel_dra/common/env.h"
#include "accel_dra/discovery/simulated.h"

namespace accel_dra::claims::testing {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using model::ClaimState;

inline constexpr const char* kDriver = "accel-dra.dev";
inline constexpr const char* kNode = "node-a";
inline constexpr const char* kNamespace = "default";
inline constexpr const char* kOtherDriver = "net.example.com";
inline constexpr const char* kBootId = "11111111-2222-4333-8444-555555555555";
inline constexpr int kSimDevices = 128;  // gpu-0 ... gpu-127, device nodes /dev/accel<N>

// A UID shaped like the apiserver's (RFC 4122), distinct per n.
inline std::string Uid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "6f1c2d3e-0000-4000-8000-%012d", n);
  return buf;
}

inline model::ClaimRef Ref(const std::string& name, const std::string& uid) {
  return {kNamespace, name, uid};
}

// One allocation result.
struct Result {
  std::string request = "main";
  std::string device = "gpu-0";
  std::string driver = kDriver;
  std::string pool = kNode;
  bool admin_access = false;
  std::optional<std::string> share_id = std::nullopt;
};

// status.allocation.devices.config[] entry with opaque parameters.
inline Json OpaqueConfig(const std::string& source, std::vector<std::string> requests,
                         Json parameters, const std::string& driver = kDriver) {
  return {{"source", source},
          {"requests", requests},
          {"opaque", {{"driver", driver}, {"parameters", std::move(parameters)}}}};
}

inline Json DeviceConfigParams(Json sharing) {
  Json p = {{"apiVersion", "accel-dra.dev/v1alpha1"}, {"kind", "DeviceConfig"}};
  if (!sharing.is_null()) p["sharing"] = std::move(sharing);
  return p;
}

// A ResourceClaim as GET /apis/resource.k8s.io/v1/namespaces/<ns>/resourceclaims/<name> returns
// it. Without results (and `allocated` false) the claim has no status.allocation.
inline Json ClaimJson(const std::string& name, const std::string& uid,
                      const std::vector<Result>& results, Json configs = Json::array(),
                      bool allocated = true) {
  Json requests = Json::array();
  std::set<std::string> seen;
  for (const auto& r : results) {
    auto slash = r.request.find('/');
    std::string main = r.request.substr(0, slash);
    if (!seen.insert(main).second) continue;
    Json req = {{"name", main}};
    if (slash == std::string::npos) {
      req["exactly"] = {
          {"deviceClassName", "accel.example.com"}, {"allocationMode", "ExactCount"}, {"count", 1}};
    } else {
      Json sub = {{"name", r.request.substr(slash + 1)},
                  {"deviceClassName", "accel.example.com"},
                  {"allocationMode", "ExactCount"},
                  {"count", 1}};
      req["firstAvailable"] = Json::array({sub});
    }
    requests.push_back(std::move(req));
  }
  Json claim = {
      {"apiVersion", "resource.k8s.io/v1"},
      {"kind", "ResourceClaim"},
      {"metadata",
       {{"name", name},
        {"namespace", kNamespace},
        {"uid", uid},
        {"resourceVersion", "4711"},
        {"generation", 1},
        {"creationTimestamp", "2025-06-01T12:00:00Z"},
        {"finalizers", Json::array({"resource.kubernetes.io/delete-protection"})}}},
      {"spec", {{"devices", {{"requests", requests}}}}},
  };
  if (!allocated) return claim;
  Json res = Json::array();
  for (const auto& r : results) {
    Json j = {{"request", r.request}, {"driver", r.driver}, {"pool", r.pool}, {"device", r.device}};
    if (r.admin_access) j["adminAccess"] = true;
    if (r.share_id) j["shareID"] = *r.share_id;
    res.push_back(std::move(j));
  }
  Json devices = {{"results", res}};
  if (!configs.empty()) devices["config"] = std::move(configs);
  Json match = {{"key", "metadata.name"}, {"operator", "In"}, {"values", Json::array({kNode})}};
  Json term = {{"matchFields", Json::array({match})}};
  Json selector = {{"nodeSelectorTerms", Json::array({term})}};
  Json pod = {{"resource", "pods"},
              {"name", name + "-pod"},
              {"uid", "0a0b0c0d-1111-4222-8333-444455556666"}};
  claim["status"] = {{"allocation", {{"devices", devices}, {"nodeSelector", selector}}},
                     {"reservedFor", Json::array({pod})}};
  return claim;
}

// Serves canned claims by namespace/name; thread-safe; counts calls.
class FakeClaims {
 public:
  void Put(const Json& claim) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string key = claim["metadata"]["namespace"].get<std::string>() + "/" +
                      claim["metadata"]["name"].get<std::string>();
    errors_.erase(key);
    claims_[key] = claim;
  }
  void PutRaw(const std::string& name, const Json& object) {
    std::lock_guard<std::mutex> lock(mu_);
    claims_[std::string(kNamespace) + "/" + name] = object;
  }
  void PutError(const std::string& name, Status st) {
    std::lock_guard<std::mutex> lock(mu_);
    errors_.insert_or_assign(std::string(kNamespace) + "/" + name, std::move(st));
  }
  void Remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    claims_.erase(std::string(kNamespace) + "/" + name);
  }
  int calls() const { return calls_.load(); }
  // The next reads of `name` answer these, in order, before the stored claim or error.
  void Script(const std::string& name, std::vector<Expected<Json>> answers) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& q = scripts_[std::string(kNamespace) + "/" + name];
    for (auto& a : answers) q.push_back(std::move(a));
  }
  // Called at the start of every read (outside the lock; it may block: a slow apiserver).
  void SetHook(std::function<void(const std::string& name)> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = std::move(hook);
  }

  ClaimGetter Getter() {
    return [this](const std::string& ns, const std::string& name) -> Expected<Json> {
      calls_++;
      std::function<void(const std::string&)> hook;
      {
        std::lock_guard<std::mutex> lock(mu_);
        hook = hook_;
      }
      if (hook) hook(name);
      std::lock_guard<std::mutex> lock(mu_);
      std::string key = ns + "/" + name;
      if (auto q = scripts_.find(key); q != scripts_.end() && !q->second.empty()) {
        Expected<Json> next = std::move(q->second.front());
        q->second.pop_front();
        return next;
      }
      if (auto e = errors_.find(key); e != errors_.end()) return e->second;
      auto it = claims_.find(key);
      if (it == claims_.end()) {
        return NotFound("resourceclaims.resource.k8s.io \"" + name + "\" not found");
      }
      return it->second;
    };
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Json> claims_;
  std::map<std::string, Status> errors_;
  std::map<std::string, std::deque<Expected<Json>>> scripts_;
  std::function<void(const std::string&)> hook_;
  std::atomic<int> calls_{0};
};

// The real Env, counting atomic writes and removals; can fail atomic writes under a directory
// with an errno, as the real Env reports it.
class TestEnv : public Env {
 public:
  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    writes_++;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_errno_ != 0 && IsUnder(path, fail_under_)) {
        fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp-1f2e3d");
        return ErrnoStatus("create " + tmp.string(), fail_errno_);
      }
    }
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  Status RemoveFile(const fs::path& path) override {
    removes_++;
    return Env::RemoveFile(path);
  }

  void FailWritesUnder(const fs::path& dir, int err) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_under_ = dir;
    fail_errno_ = err;
  }
  void ClearFaults() { FailWritesUnder({}, 0); }
  int writes() const { return writes_.load(); }
  int removes() const { return removes_.load(); }

 private:
  static bool IsUnder(const fs::path& p, const fs::path& dir) {
    std::string a = p.lexically_normal().string();
    std::string b = dir.lexically_normal().string();
    return !b.empty() && a.compare(0, b.size(), b) == 0;
  }
  std::mutex mu_;
  fs::path fail_under_;
  int fail_errno_ = 0;
  std::atomic<int> writes_{0};
  std::atomic<int> removes_{0};
};

inline model::InventoryPtr SimInventory() {
  discovery::SimProfile profile = discovery::DefaultSimProfile(kSimDevices);
  profile.groups[0].device_node = "/dev/accel{index}";
  discovery::SimulatedBackend backend(Env::Default(), kNode, profile);
  auto devices = backend.Discover();
  EXPECT_TRUE(devices.ok()) << devices.status().ToString();
  return std::make_shared<const model::Inventory>(devices.ok() ? *devices
                                                               : std::vector<model::Device>{});
}

inline std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The directories of one "node" and a Preparer over them, opened and closed like a plugin
// process (Close() releases the checkpoint lock; Open() again reads what is durable).
class NodeDirs {
 public:
  explicit NodeDirs(fs::path root) : root_(std::move(root)) {}
  const fs::path& root() const { return root_; }
  fs::path data() const { return root_ / "data"; }
  fs::path cdi() const { return root_ / "cdi"; }
  fs::path host() const { return root_ / "host"; }

  void Create() {
    fs::create_directories(host() / "proc/sys/kernel/random");
    std::ofstream(host() / "proc/sys/kernel/random/boot_id") << kBootId << "\n";
  }
  fs::path SpecPath(const std::string& uid) const {
    return cdi() / ("k8s.accel-dra.dev-device_" + uid + ".json");
  }

 private:
  fs::path root_;
};

class PreparerTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    // The stale-claim sweep's pause between its two reads: counted, not slept.
    base_opts_.sleep = [this](std::chrono::milliseconds) { sweep_pauses_++; };
    static std::atomic<int> counter{0};
    dirs_ = std::make_unique<NodeDirs>(
        fs::temp_directory_path() /
        ("driver-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)));
    fs::remove_all(dirs_->root());
    dirs_->Create();
    inventory_ = SimInventory();
    Open();
  }
  void TearDown() override {
    Close();
    fs::remove_all(dirs_->root());
  }

  void Open() {
    checkpoint::OpenOptions copts;
    copts.shared = shared_;
    auto cp = checkpoint::Checkpoint::Open(&env_, dirs_->data(), HostRoot(dirs_->host()), copts);
    ASSERT_TRUE(cp.ok()) << cp.status().ToString();
    checkpoint_ = std::move(cp).value();
    writer_ = std::make_unique<cdi::CdiWriter>(&env_, dirs_->cdi(), kDriver);
    PreparerOptions opts = base_opts_;
    opts.driver_name = kDriver;
    opts.pool_name = kNode;
    opts.shared_checkpoint = shared_;
    auto inv = inventory_;
    preparer_ = std::make_unique<Preparer>(
        opts, getter_ ? getter_ : claims_.Getter(), [inv] { return inv; }, checkpoint_.get(),
        writer_.get());
  }
  void Close() {
    preparer_.reset();
    writer_.reset();
    checkpoint_.reset();
  }
  // What a restarted plugin would find (only durable state survives).
  void Reopen() {
    Close();
    Open();
  }

  // Prepares one claim and returns its result.
  model::PrepareResult PrepareOne(const model::ClaimRef& ref) {
    auto out = preparer_->Prepare({ref});
    EXPECT_EQ(out.size(), 1u);
    return out[ref.uid];
  }
  std::string UnprepareOne(const model::ClaimRef& ref) {
    auto out = preparer_->Unprepare({ref});
    EXPECT_EQ(out.size(), 1u);
    return out[ref.uid];
  }
  // Puts a claim with one device of ours and prepares it; the test fails unless it succeeds.
  model::ClaimRef PutAndPrepare(const std::string& name, const std::string& uid,
                                const std::string& device) {
    claims_.Put(ClaimJson(name, uid, {Result{.device = device}}));
    auto ref = Ref(name, uid);
    auto r = PrepareOne(ref);
    EXPECT_TRUE(r.ok()) << r.error;
    return ref;
  }

  bool SpecExists(const std::string& uid) const { return fs::exists(dirs_->SpecPath(uid)); }
  std::optional<model::PreparedClaim> Entry(const std::string& uid) const {
    return checkpoint_->Find(uid);
  }
  std::vector<std::string> SpecUids() {
    auto l = writer_->ListClaimSpecs();
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : std::vector<std::string>{};
  }
  // Every entry in the CDI root (spec files and anything else, e.g. temp files).
  std::vector<std::string> CdiRootEntries() const {
    std::vector<std::string> out;
    if (!fs::exists(dirs_->cdi())) return out;
    for (const auto& e : fs::directory_iterator(dirs_->cdi())) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  // The invariant after any completed operation or recovery: a claim's spec file exists iff the
  // checkpoint holds the claim PrepareCompleted; nothing is left PrepareStarted; the file holds
  // what memory holds (PrepareStarted records are written without fsync, so dirty() may be true).
  void ExpectConsistent() {
    checkpoint::State s = checkpoint_->Snapshot();
    for (const auto& [uid, c] : s.claims) {
      EXPECT_EQ(c.state, ClaimState::kPrepareCompleted) << "claim " << uid << " left started";
      EXPECT_TRUE(SpecExists(uid)) << "claim " << uid << " has no spec";
    }
    for (const auto& uid : SpecUids()) {
      EXPECT_TRUE(s.claims.contains(uid)) << "spec of " << uid << " has no checkpoint entry";
    }
    EXPECT_FALSE(checkpoint_->unwritten());
  }

  TestEnv env_;
  FakeClaims claims_;
  bool shared_ = false;               // open the checkpoint shared, as with --pod-uid
  PreparerOptions base_opts_;         // further options for the Preparer of the next Open()
  std::atomic<int> sweep_pauses_{0};  // CleanupStale()'s pauses (base_opts_.sleep)
  ClaimGetter getter_;                // replaces claims_.Getter() at the next Open() when set
  std::unique_ptr<NodeDirs> dirs_;
  model::InventoryPtr inventory_;
  std::unique_ptr<checkpoint::Checkpoint> checkpoint_;
  std::unique_ptr<cdi::CdiWriter> writer_;
  std::unique_ptr<Preparer> preparer_;
};

inline bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

#define EXPECT_CONTAINS(haystack, needle)                                   \
  EXPECT_TRUE(::accel_dra::claims::testing::Contains((haystack), (needle))) \
      << "message \"" << (haystack) << "\" lacks \"" << (needle) << "\""

}  // namespace accel_dra::claims::testing
