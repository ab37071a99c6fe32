#include "accel_dra/node/agent.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "log_capture.h"

namespace accel_dra::node {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
constexpr milliseconds kHour = std::chrono::hours(1);

std::unique_ptr<Wakeup> MakeWakeup() {
  auto wakeup = Wakeup::Create();
  EXPECT_TRUE(wakeup.ok()) << wakeup.status().message();
  return wakeup.ok() ? std::move(*wakeup) : nullptr;
}

NodeAgent::Options Every(milliseconds check, milliseconds rescan, milliseconds sweep = kHour) {
  NodeAgent::Options o;
  o.check_every = check;
  o.rescan_every = rescan;
  o.sweep_every = sweep;
  return o;
}

model::Device Dev(const std::string& name, std::vector<std::string> nodes = {}) {
  model::Device d;
  d.name = name;
  d.attributes.emplace("index", model::AttrValue::Int(0));
  d.device_nodes = std::move(nodes);
  return d;
}

// Devices the test sets; MaybeChanged() says so once after Set(..., true).
class FakeBackend : public discovery::Backend {
 public:
  explicit FakeBackend(std::vector<model::Device> devices) : devices_(std::move(devices)) {}
  std::string Name() const override { return "fake"; }
  Expected<std::vector<model::Device>> Discover() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++discovered_;
    if (!error_.ok()) return error_;
    return devices_;
  }
  bool MaybeChanged() override { return changed_.exchange(false); }
  void Set(std::vector<model::Device> devices, bool announce) {
    std::lock_guard<std::mutex> lock(mu_);
    devices_ = std::move(devices);
    error_ = Status();
    changed_ = announce;
  }
  // Discover() fails from now on (until Set()), as a PCI backend that cannot list sysfs.
  void Fail(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = Internal(message);
    changed_ = true;
  }
  int discovered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return discovered_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<model::Device> devices_;
  Status error_;
  int discovered_ = 0;
  std::atomic<bool> changed_{false};
};

// A device event source the test fires.
class FakeEvents : public discovery::DeviceEventSource {
 public:
  FakeEvents() : wakeup_(MakeWakeup()) {}
  std::string Name() const override { return "fake"; }
  int fd() const override { return wakeup_->fd(); }
  bool Drain() override { return wakeup_->Drain(); }
  void Fire() { wakeup_->Notify(); }

 private:
  std::unique_ptr<Wakeup> wakeup_;
};

// Node attributes the test changes from its own thread, as the NodeAttributeWatcher does.
class FakeNodeAttributes : public NodeAttributeSource {
 public:
  FakeNodeAttributes() : wakeup_(MakeWakeup()) {}
  int fd() const override { return wakeup_->fd(); }
  void Drain() override { wakeup_->Drain(); }
  discovery::NodeAttributes current() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return attrs_;
  }
  void Set(const std::string& runtime) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      attrs_.attributes = {{"containerRuntime", model::AttrValue::String(runtime)}};
    }
    wakeup_->Notify();
  }

 private:
  mutable std::mutex mu_;
  discovery::NodeAttributes attrs_ = discovery::DriverOnlyAttributes();
  std::unique_ptr<Wakeup> wakeup_;
};

// What reached the sink, and on which thread.
class Published {
 public:
  PoolComposer::Sink Sink() {
    return [this](model::InventoryPtr inv) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(std::move(inv));
      threads_.push_back(std::this_thread::get_id());
      cv_.notify_all();
    };
  }
  // Waits until the latest published inventory satisfies `pred`.
  template <typename Pred>
  bool WaitFor(Pred pred, milliseconds timeout = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return !got_.empty() && pred(*got_.back()); });
  }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return got_.size();
  }
  std::vector<std::thread::id> threads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<model::InventoryPtr> got_;
  std::vector<std::thread::id> threads_;
};

std::string Runtime(const model::Inventory& inv, const std::string& device) {
  const model::Device* d = inv.Find(device);
  if (d == nullptr || !d->attributes.count("containerRuntime")) return "";
  return d->attributes.at("containerRuntime").string_value();
}

class NodeAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dra-agent-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(root_ + "/dev");
    std::ofstream(root_ + "/dev/accel0") << "";
    auto backend =
        std::make_unique<FakeBackend>(std::vector<model::Device>{Dev("gpu-0", {"/dev/accel0"})});
    backend_ = backend.get();
    devices_.AddBackend(std::move(backend));
    health_ =
        std::make_unique<discovery::DeviceHealthTracker>(Env::Default(), HostRoot(root_), "node-a");
  }
  void TearDown() override {
    Stop();
    std::filesystem::remove_all(root_);
  }

  void Create(NodeAgent::Options options) {
    options.pool.driver_name = "accel-dra.dev";
    NodeAgent::Parts parts;
    parts.devices = &devices_;
    parts.events = &events_;
    parts.health = health_.get();
    parts.node_attributes = &node_;
    parts.publish = published_.Sink();
    auto agent = NodeAgent::Create(options, std::move(parts));
    ASSERT_TRUE(agent.ok()) << agent.status().message();
    agent_ = std::move(*agent);
  }
  // Publishes once and runs the loop on its own thread, as the daemon's main thread does.
  void Start() {
    loop_ = std::thread([this] {
      loop_thread_ = std::this_thread::get_id();
      agent_->Publish();
      agent_->Run([this] {
        sweep_threads_.push_back(std::this_thread::get_id());
        ++sweeps_;
      });
    });
  }
  void Stop() {
    if (agent_) agent_->Stop();
    if (loop_.joinable()) loop_.join();
  }

  std::string root_;
  FakeBackend* backend_ = nullptr;
  discovery::DeviceManager devices_;
  FakeEvents events_;
  FakeNodeAttributes node_;
  std::unique_ptr<discovery::DeviceHealthTracker> health_;
  Published published_;
  std::unique_ptr<NodeAgent> agent_;
  std::thread loop_;
  std::thread::id loop_thread_;
  std::atomic<int> sweeps_{0};
  std::vector<std::thread::id> sweep_threads_;  // written by the loop thread; read after join
};

TEST_F(NodeAgentTest, CreateDiscoversButPublishesNothing) {
  Create(NodeAgent::Options());
  auto inv = agent_->inventory().Get();
  ASSERT_NE(inv, nullptr);
  ASSERT_EQ(inv->devices().size(), 1u);
  EXPECT_EQ(inv->devices()[0].name, "gpu-0");
  EXPECT_EQ(published_.count(), 0u);
}

TEST_F(NodeAgentTest, NodeAttributeChangeIsPublishedOnTheLoopThreadAtOnce) {
  Create(Every(kHour, kHour));
  Start();
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-0"); }));
  auto t0 = steady_clock::now();
  std::thread([this] { node_.Set("cri-o"); }).join();  // another thread, as the watcher's
  ASSERT_TRUE(published_.WaitFor(
      [](const model::Inventory& inv) { return Runtime(inv, "gpu-0") == "cri-o"; }));
  // Woken by the source's fd, not by a timer (they are an hour away).
  EXPECT_LT(steady_clock::now() - t0, milliseconds(2000));
  Stop();
  EXPECT_EQ(published_.count(), 2u);
  for (auto id : published_.threads()) EXPECT_EQ(id, loop_thread_);
}

TEST_F(NodeAgentTest, NothingChangedNothingPublished) {
  Create(Every(milliseconds(5), milliseconds(20)));
  Start();
  std::this_thread::sleep_for(milliseconds(300));  // ~60 checks, ~15 rescans
  node_.Set("containerd");
  ASSERT_TRUE(published_.WaitFor(
      [](const model::Inventory& inv) { return Runtime(inv, "gpu-0") == "containerd"; }));
  node_.Set("containerd");  // notified, but the same attributes
  std::this_thread::sleep_for(milliseconds(100));
  Stop();
  EXPECT_EQ(published_.count(), 2u);
}

TEST_F(NodeAgentTest, DeviceEventRescansAndPublishes) {
  Create(Every(kHour, kHour));
  Start();
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-0"); }));
  backend_->Set({Dev("gpu-0", {"/dev/accel0"}), Dev("gpu-1")}, /*announce=*/false);
  events_.Fire();
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-1"); }));
  EXPECT_NE(agent_->inventory().Get()->Find("gpu-1"), nullptr);
}

TEST_F(NodeAgentTest, CheckTickNoticesBackendChangesAndHealth) {
  auto options = Every(milliseconds(10), kHour);
  options.pool.device_taints = true;
  Create(options);
  Start();
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-0"); }));
  backend_->Set({Dev("gpu-0", {"/dev/accel0"}), Dev("gpu-1")}, /*announce=*/true);
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-1"); }));
  // The device node goes away: health re-checked on the next tick, the device tainted.
  std::filesystem::remove(root_ + "/dev/accel0");
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) {
    const model::Device* d = inv.Find("gpu-0");
    return d != nullptr && d->taints.size() == 1 && d->taints[0].value == "DeviceNodeMissing";
  }));
}

TEST_F(NodeAgentTest, ATaintStaysUntilTheDeviceStayedHealthyForTheSettleTime) {
  auto options = Every(milliseconds(10), kHour);
  options.pool.taint_settle = milliseconds(300);
  Create(options);
  Start();
  auto tainted = [](const model::Inventory& inv) {
    const model::Device* d = inv.Find("gpu-0");
    return d != nullptr && d->taints.size() == 1 && d->taints[0].effect == "NoSchedule";
  };
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-0"); }));
  std::filesystem::remove(root_ + "/dev/accel0");
  ASSERT_TRUE(published_.WaitFor(tainted)) << "tainted by default";
  const auto back = std::chrono::steady_clock::now();
  std::ofstream(root_ + "/dev/accel0") << "";
  ASSERT_TRUE(published_.WaitFor([&](const model::Inventory& inv) { return !tainted(inv); }));
  EXPECT_GE(std::chrono::steady_clock::now() - back, milliseconds(300));
}

// What a prepared claim holds (the claims core's checkpoint in the plugin).
class HeldFake {
 public:
  model::HeldDevicesSource Source() {
    return [this] {
      std::lock_guard<std::mutex> lock(mu_);
      return held_;
    };
  }
  void Hold(const std::string& device, model::DeviceIdentity identity) {
    std::lock_guard<std::mutex> lock(mu_);
    model::HeldDevice h{"default/claim-a", "uid-a", {}};
    h.record.pool = "node-a";
    h.record.device = device;
    h.record.identity = std::move(identity);
    held_.push_back(std::move(h));
  }

 private:
  std::mutex mu_;
  std::vector<model::HeldDevice> held_;
};

model::Device WithIdentity(model::Device d, const std::string& bus, const std::string& uuid) {
  d.identity = {bus, uuid};
  return d;
}

model::DeviceHealthStatus HealthOf(discovery::DeviceHealthTracker& t, const std::string& name) {
  for (const auto& d : t.Snapshot().devices) {
    if (d.device == name) return d.health;
  }
  return model::DeviceHealthStatus::kUnknown;
}

// A device a prepared claim holds that is gone from the inventory stays in the health stream,
// Unhealthy (DeviceVanished), with a warning naming claim and device; it is Healthy again when
// it comes back.
TEST_F(NodeAgentTest, HeldDeviceThatVanishedIsUnhealthyAndLogged) {
  test_support::LogCapture logs;
  backend_->Set({WithIdentity(Dev("gpu-0", {"/dev/accel0"}), "0000:3b:00.0", "GPU-a"),
                 WithIdentity(Dev("gpu-1"), "0000:3c:00.0", "GPU-b")},
                false);
  Create(Every(milliseconds(10), milliseconds(10)));
  HeldFake held;
  held.Hold("gpu-1", {"0000:3c:00.0", "GPU-b"});
  agent_->SetHeldDevices(held.Source());
  EXPECT_EQ(HealthOf(*health_, "gpu-1"), model::DeviceHealthStatus::kHealthy);
  Start();
  backend_->Set({WithIdentity(Dev("gpu-0", {"/dev/accel0"}), "0000:3b:00.0", "GPU-a")}, true);
  auto vanished = [&] {
    return HealthOf(*health_, "gpu-1") == model::DeviceHealthStatus::kUnhealthy;
  };
  for (int i = 0; i < 500 && !vanished(); ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(vanished()) << logs.text();
  auto bad = health_->Unhealthy();
  ASSERT_EQ(bad.count("gpu-1"), 1u);
  EXPECT_EQ(bad["gpu-1"].reason, "DeviceVanished");
  EXPECT_EQ(bad["gpu-1"].message,
            "device gpu-1 (PCI bus ID 0000:3c:00.0) is gone from this node, held by "
            "ResourceClaim default/claim-a (uid uid-a)");
  // Not published: the slice has what the node has.
  EXPECT_EQ(agent_->inventory().Get()->Find("gpu-1"), nullptr);

  backend_->Set({WithIdentity(Dev("gpu-0", {"/dev/accel0"}), "0000:3b:00.0", "GPU-a"),
                 WithIdentity(Dev("gpu-1"), "0000:3c:00.0", "GPU-b")},
                true);
  for (int i = 0; i < 500 && vanished(); ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(HealthOf(*health_, "gpu-1"), model::DeviceHealthStatus::kHealthy);
  Stop();
  EXPECT_EQ(logs.Count("ResourceClaim default/claim-a (uid uid-a) is prepared, but its device "
                       "gpu-1 (PCI bus ID 0000:3c:00.0) is gone from this node"),
            1)
      << logs.text();
  EXPECT_EQ(logs.Count("ResourceClaim default/claim-a (uid uid-a): device gpu-1 is published "
                       "again"),
            1)
      << logs.text();
}

// The held name now names another physical device (another UUID at that address): Unhealthy
// (DeviceChanged), and tainted with --device-taints.
TEST_F(NodeAgentTest, HeldDeviceThatChangedIdentityIsUnhealthy) {
  test_support::LogCapture logs;
  backend_->Set({WithIdentity(Dev("gpu-0", {"/dev/accel0"}), "0000:3b:00.0", "GPU-new")}, false);
  auto options = Every(kHour, kHour);
  options.pool.device_taints = true;
  Create(options);
  HeldFake held;
  held.Hold("gpu-0", {"0000:3b:00.0", "GPU-old"});
  agent_->SetHeldDevices(held.Source());
  auto bad = health_->Unhealthy();
  ASSERT_EQ(bad.count("gpu-0"), 1u);
  EXPECT_EQ(bad["gpu-0"].reason, "DeviceChanged");
  Start();
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) {
    const model::Device* d = inv.Find("gpu-0");
    return d != nullptr && d->taints.size() == 1 && d->taints[0].value == "DeviceChanged";
  }));
  Stop();
  EXPECT_EQ(logs.Count("its device gpu-0 is another physical device now (UUID GPU-new, was "
                       "GPU-old)"),
            1)
      << logs.text();
}

// One failed read keeps the last good state (issue 11, point 3): while the backend fails, the
// loop keeps rescanning but publishes nothing new — the slices keep every device, untainted
// (what cannot be read is Unknown, not Unhealthy, even when a device node goes meanwhile) —
// and the failure is logged once. The first good scan publishes what is there then.
TEST_F(NodeAgentTest, AFailingBackendLeavesThePublishedInventoryUnchanged) {
  test_support::LogCapture logs;
  backend_->Set({Dev("gpu-0", {"/dev/accel0"}), Dev("gpu-1")}, false);
  auto options = Every(milliseconds(10), milliseconds(10));
  options.pool.device_taints = true;
  Create(options);
  Start();
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-1"); }));
  const size_t published = published_.count();
  const model::InventoryPtr good = agent_->inventory().Get();

  backend_->Fail("cannot list /sys/bus/pci/devices: Permission denied");
  std::filesystem::remove(root_ + "/dev/accel0");
  auto unknown = [&] {
    return HealthOf(*health_, "gpu-0") == model::DeviceHealthStatus::kUnknown &&
           HealthOf(*health_, "gpu-1") == model::DeviceHealthStatus::kUnknown;
  };
  for (int i = 0; i < 500 && !unknown(); ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(unknown()) << logs.text();
  const int scans = backend_->discovered();
  for (int i = 0; i < 500 && backend_->discovered() < scans + 10; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_GE(backend_->discovered(), scans + 10) << "the loop keeps rescanning";
  EXPECT_EQ(published_.count(), published) << "nothing published while the backend fails";
  EXPECT_EQ(agent_->inventory().Get(), good);
  EXPECT_TRUE(health_->Unhealthy().empty());
  EXPECT_EQ(logs.Count("device discovery (fake) failed: cannot list /sys/bus/pci/devices"), 1)
      << logs.text();

  backend_->Set({Dev("gpu-0", {"/dev/accel0"})}, true);  // readable again, gpu-1 gone
  ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) {
    const model::Device* d = inv.Find("gpu-0");
    return inv.Find("gpu-1") == nullptr && d != nullptr && d->taints.size() == 1 &&
           d->taints[0].value == "DeviceNodeMissing";
  }));
  Stop();
  EXPECT_EQ(logs.Count("device discovery (fake) works again"), 1) << logs.text();
}

TEST_F(NodeAgentTest, SweepRunsOnTheLoopThreadEveryInterval) {
  Create(Every(kHour, kHour, milliseconds(20)));
  Start();
  auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (sweeps_ < 3 && steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
  Stop();
  EXPECT_GE(sweeps_.load(), 3);
  for (auto id : sweep_threads_) EXPECT_EQ(id, loop_thread_);
}

TEST_F(NodeAgentTest, StopBeforeRunEndsRunAtOnce) {
  Create(Every(kHour, kHour));
  agent_->Stop();
  auto t0 = steady_clock::now();
  agent_->Run(nullptr);
  EXPECT_LT(steady_clock::now() - t0, milliseconds(1000));
}

TEST_F(NodeAgentTest, SigtermEndsTheLoop) {
  // As in the daemon: SIGTERM blocked in every thread before any starts, read by the signalfd.
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  {
    test_support::LogCapture log;
    Create(Every(kHour, kHour));
    Start();
    ASSERT_TRUE(published_.WaitFor([](const model::Inventory& inv) { return inv.Find("gpu-0"); }));
    ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
    loop_.join();  // Run() returned without Stop()
    EXPECT_EQ(log.Count("received SIGTERM, shutting down"), 1) << log.text();
  }
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
}

}  // namespace
}  // namespace accel_dra::node
