// Preparer after an upgrade: a format-1 checkpoint (tests/fixtures/checkpoint) and an empty CDI
// root (a reboot, or the tmpfs of /var/run/cdi) — Recover() re-creates the specs of the prepared
// claims from the typed records the old format is read into, rolls back the interrupted one, and
// the claims can be answered and unprepared; the next write is in format 2.

#include <gtest/gtest.h>

#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

const fs::path kFixtures = fs::path(ACCEL_DRA_SOURCE_DIR) / "tests/fixtures/checkpoint";
constexpr std::string_view kFormat2Header = R"({"version": 2, "checksum": ")";

// Records nvidia-smi calls ("-i <target> --set-timeslice <n>") instead of running them.
class FakeRunner : public CommandRunner {
 public:
  Expected<CommandResult> Run(const std::vector<std::string>& argv,
                              std::chrono::milliseconds /*timeout*/) override {
    std::lock_guard lock(mu_);
    std::string call;
    for (size_t i = 1; i < argv.size(); ++i) call += (i > 1 ? " " : "") + argv[i];
    calls_.push_back(call);
    return CommandResult{0, "ok"};
  }
  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> calls_;
};

std::string Reset(const std::string& target) {
  return "compute-policy -i " + target + " --set-timeslice 0";
}

class PreparerUpgradeTest : public PreparerTestBase {
 protected:
  void SetUp() override {
    PreparerTestBase::SetUp();
    base_opts_.runner = &runner_;
  }
  // Restarts the plugin on `fixture` as its checkpoint, with an empty CDI root.
  void StartOn(const std::string& fixture) {
    Close();
    fs::remove_all(dirs_->data());
    fs::remove_all(dirs_->cdi());
    fs::create_directories(dirs_->data());
    fs::copy_file(kFixtures / fixture, dirs_->data() / "checkpoint.json");
    Open();
    ASSERT_FALSE(checkpoint_->load_report().warning.has_value())
        << checkpoint_->load_report().warning->ToString();
    EXPECT_EQ(checkpoint_->load_report().format_version, 1);
  }
  bool FileIsFormat2() const {
    return ReadAll(dirs_->data() / "checkpoint.json").starts_with(kFormat2Header);
  }
  // The state survives a restart in format 2 unchanged.
  void ExpectReloadedInFormat2() {
    checkpoint::State before = checkpoint_->Snapshot();
    EXPECT_TRUE(FileIsFormat2());
    Reopen();
    EXPECT_EQ(checkpoint_->load_report().format_version, 2);
    EXPECT_EQ(checkpoint_->Snapshot(), before);
  }

  FakeRunner runner_;
};

// The plugin's own format-1 records (TimeSlicing set with nvidia-smi and advisory, a partitioned
// device, a share, admin access, device nodes and mounts, an interrupted prepare): the specs come
// back byte for byte as the plugin wrote them.
TEST_F(PreparerUpgradeTest, Format1FromThePluginRecoversIdenticalSpecs) {
  const std::string timesliced = "0b1d6c2e-5f3a-4e71-9c8d-1a2b3c4d5e01";
  const std::string partitioned = "0b1d6c2e-5f3a-4e71-9c8d-1a2b3c4d5e02";
  const std::string monitor = "0b1d6c2e-5f3a-4e71-9c8d-1a2b3c4d5e03";
  const std::string interrupted = "0b1d6c2e-5f3a-4e71-9c8d-1a2b3c4d5e04";
  StartOn("v1-0.1.0-plugin.json");
  EXPECT_FALSE(checkpoint_->load_report().rebooted);
  ASSERT_TRUE(Entry(interrupted).has_value());
  const std::string interrupted_target = Entry(interrupted)->devices[0].time_slice->target;
  const std::string timesliced_target = Entry(timesliced)->devices[0].time_slice->target;

  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(report->completed, 3);
  EXPECT_EQ(report->specs_recreated, 3);
  EXPECT_FALSE(Entry(interrupted).has_value());
  // The interrupted prepare had set gpu-2's time slice: reset.
  EXPECT_EQ(runner_.calls(), std::vector<std::string>{Reset(interrupted_target)});
  for (const auto& uid : {timesliced, partitioned, monitor}) {
    const std::string name = dirs_->SpecPath(uid).filename().string();
    // As that plugin wrote them, but for the claim's list of devices: one variable per claim now,
    // ACCEL_VISIBLE_DEVICES_<CLAIM> (the plain one collided between two claims; issue 11).
    std::string want = ReadAll(kFixtures / "v1-0.1.0-plugin.cdi" / name);
    const std::string old_var = "\"ACCEL_VISIBLE_DEVICES=";
    const size_t at = want.find(old_var);
    ASSERT_NE(at, std::string::npos) << name;
    want.replace(at, old_var.size(), "\"" + cdi::VisibleDevicesVariable(uid) + "=");
    EXPECT_EQ(ReadAll(dirs_->SpecPath(uid)), want) << name;
  }
  ExpectConsistent();
  ExpectReloadedInFormat2();  // the roll-back was the first write

  // Answered from the checkpoint (no claim object needed, nothing applied again)...
  auto again = PrepareOne({"default", "timesliced", timesliced});
  ASSERT_TRUE(again.ok()) << again.error;
  ASSERT_EQ(again.devices.size(), 2u);
  EXPECT_EQ(again.devices[0].cdi_device_ids,
            std::vector<std::string>{"k8s.accel-dra.dev/device=" + timesliced + "-gpu-1"});
  EXPECT_EQ(runner_.calls().size(), 1u);
  // ...and unprepared: the applied time slice is reset, the specs and entries go.
  EXPECT_EQ(UnprepareOne({"default", "timesliced", timesliced}), "");
  EXPECT_EQ(runner_.calls().back(), Reset(timesliced_target));
  EXPECT_EQ(UnprepareOne({"default", "partitioned", partitioned}), "");
  EXPECT_EQ(UnprepareOne({"default", "monitor", monitor}), "");
  EXPECT_EQ(runner_.calls().size(), 2u);
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  EXPECT_TRUE(SpecUids().empty());
  ExpectConsistent();
}

// The 0.1.0 fixture (DeviceConfig-shaped settings, no device nodes or mounts recorded, another
// boot): nodes come from the inventory, and the new boot ID is the first write.
TEST_F(PreparerUpgradeTest, Format1From010RecoversWithNodesFromTheInventory) {
  const std::string uid = "5b2e9d47-81c3-4f0a-b6d2-7e3a9c1f0e86";
  std::vector<model::Device> devices(2);
  devices[0].name = "accel-0";
  devices[0].device_nodes = {"/dev/accel/accel0"};
  devices[1].name = "accel-1";
  devices[1].device_nodes = {"/dev/accel/accel1"};
  inventory_ = std::make_shared<const model::Inventory>(std::move(devices));
  StartOn("v1-0.1.0.json");
  EXPECT_TRUE(checkpoint_->load_report().rebooted);

  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(report->completed, 1);
  EXPECT_EQ(report->specs_recreated, 1);
  EXPECT_TRUE(runner_.calls().empty());  // the interval was advisory: nothing to re-apply
  auto spec = cdi::ParseJson(ReadAll(dirs_->SpecPath(uid)));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->devices.size(), 2u);
  std::map<std::string, std::string> env;
  for (const auto& d : spec->devices) {
    for (const auto& e : d.container_edits.env)
      env[e.substr(0, e.find('='))] = e.substr(e.find('=') + 1);
  }
  EXPECT_EQ(env["ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY"], "TimeSlicing");
  EXPECT_EQ(env["ACCEL_DEVICE_ACCEL_0_TIMESLICE_INTERVAL"], "Long");
  EXPECT_EQ(env["ACCEL_DEVICE_ACCEL_0_TIMESLICE_ENFORCED"], "false");
  EXPECT_EQ(env["ACCEL_DEVICE_ACCEL_1_SHARING_STRATEGY"], "SpacePartitioning");
  EXPECT_EQ(env["ACCEL_DEVICE_ACCEL_1_PARTITION_COUNT"], "4");
  ASSERT_EQ(spec->devices[1].container_edits.device_nodes.size(), 1u);
  EXPECT_EQ(spec->devices[1].container_edits.device_nodes[0].path, "/dev/accel/accel1");
  ExpectConsistent();
  ExpectReloadedInFormat2();

  EXPECT_EQ(UnprepareOne({"inference", "llm-server-7d9f-accel-pair", uid}), "");
  EXPECT_FALSE(SpecExists(uid));
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  ExpectConsistent();
}

}  // namespace
}  // namespace accel_dra::claims::testing
