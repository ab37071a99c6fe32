// Preparer: TimeSlicing on devices whose time slice nvidia-smi controls. A fake `nvidia-smi`
// script on PATH appends its arguments to a file (and fails while a "fail" file exists); the
// real CommandRunner runs it.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>

#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

class PreparerTimeSliceTest : public PreparerTestBase {
 protected:
  void SetUp() override {
    PreparerTestBase::SetUp();
    bin_ = dirs_->root() / "bin";
    fs::create_directories(bin_);
    calls_ = dirs_->root() / "nvidia-smi.calls";
    {
      std::ofstream f(bin_ / "nvidia-smi");
      f << "#!/bin/sh\n"
        << "echo \"$*\" >> '" << calls_.string() << "'\n"
        << "if [ -e '" << (dirs_->root() / "fail").string() << "' ]; then\n"
        << "  echo 'Unable to set the compute policy: Not Supported' >&2; exit 3\nfi\n"
        << "echo 'Set timeslice for GPU'\n";
    }
    fs::permissions(bin_ / "nvidia-smi", fs::perms::owner_all);
    const char* path = std::getenv("PATH");
    old_path_ = path != nullptr ? path : "";
    ::setenv("PATH", (bin_.string() + ":" + old_path_).c_str(), 1);
    // gpu-0..gpu-3 are controlled by nvidia-smi (target = their UUID); the others are not.
    std::vector<model::Device> devices = SimInventory()->devices();
    for (auto& d : devices) {
      if (d.attributes.at("index").int_value() < 4) {
        d.timeslice_control = model::TimeSliceControl::kNvidiaSmi;
        d.timeslice_target = d.attributes.at("uuid").string_value();
      }
    }
    inventory_ = std::make_shared<const model::Inventory>(std::move(devices));
    Reopen();
  }
  void TearDown() override {
    ::setenv("PATH", old_path_.c_str(), 1);
    PreparerTestBase::TearDown();
  }

  std::string Target(const std::string& device) const {
    return inventory_->Find(device)->timeslice_target;
  }
  std::vector<std::string> Calls() const {
    std::vector<std::string> out;
    std::ifstream in(calls_);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  static std::string Set(const std::string& target, int n) {
    return "compute-policy -i " + target + " --set-timeslice " + std::to_string(n);
  }
  static Json TimeSlicing(const std::string& interval) {
    return Json::array(
        {OpaqueConfig("FromClaim", {},
                      DeviceConfigParams({{"strategy", "TimeSlicing"},
                                          {"timeSlicing", {{"interval", interval}}}}))});
  }
  std::map<std::string, std::string> SpecEnv(const std::string& uid) {
    std::map<std::string, std::string> out;
    auto spec = cdi::ParseJson(ReadAll(dirs_->SpecPath(uid)));
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    if (!spec.ok()) return out;
    for (const auto& d : spec->devices) {
      for (const auto& e : d.container_edits.env) {
        out[e.substr(0, e.find('='))] = e.substr(e.find('=') + 1);
      }
    }
    return out;
  }

  fs::path bin_;
  fs::path calls_;
  std::string old_path_;
};

TEST_F(PreparerTimeSliceTest, AppliedOnPrepareAndResetOnUnprepare) {
  const std::string uid = Uid(1);
  claims_.Put(ClaimJson("ts", uid, {Result{.device = "gpu-1"}}, TimeSlicing("Long")));
  auto r = PrepareOne(Ref("ts", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(Calls(), std::vector<std::string>{Set(Target("gpu-1"), 3)});
  auto env = SpecEnv(uid);
  EXPECT_EQ(env["ACCEL_DEVICE_GPU_1_TIMESLICE_INTERVAL"], "Long");
  EXPECT_EQ(env["ACCEL_DEVICE_GPU_1_TIMESLICE_ENFORCED"], "true");
  auto entry = Entry(uid);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->devices[0].time_slice,
            (model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi, Target("gpu-1"), 3}));
  // Idempotent: a second prepare runs nothing.
  ASSERT_TRUE(PrepareOne(Ref("ts", uid)).ok());
  EXPECT_EQ(Calls().size(), 1u);

  EXPECT_EQ(UnprepareOne(Ref("ts", uid)), "");
  EXPECT_EQ(Calls(), (std::vector<std::string>{Set(Target("gpu-1"), 3), Set(Target("gpu-1"), 0)}));
  ExpectConsistent();
}

TEST_F(PreparerTimeSliceTest, TwoClaimsOnOneDeviceResetOnlyAfterTheLast) {
  claims_.Put(
      ClaimJson("a", Uid(1), {Result{.device = "gpu-0", .share_id = "s1"}}, TimeSlicing("Short")));
  claims_.Put(
      ClaimJson("b", Uid(2), {Result{.device = "gpu-0", .share_id = "s2"}}, TimeSlicing("Short")));
  ASSERT_TRUE(PrepareOne(Ref("a", Uid(1))).ok());
  ASSERT_TRUE(PrepareOne(Ref("b", Uid(2))).ok());
  const std::string t = Target("gpu-0");
  EXPECT_EQ(Calls(), (std::vector<std::string>{Set(t, 1), Set(t, 1)}));
  EXPECT_EQ(UnprepareOne(Ref("a", Uid(1))), "");
  EXPECT_EQ(Calls().size(), 2u) << "reset while claim b still uses the device";
  EXPECT_EQ(UnprepareOne(Ref("b", Uid(2))), "");
  EXPECT_EQ(Calls(), (std::vector<std::string>{Set(t, 1), Set(t, 1), Set(t, 0)}));
  ExpectConsistent();
}

// Admin access never changes the device under the claim that holds it: a TimeSlicing interval
// of an admin-access result is advisory, so neither its prepare nor its unprepare runs nvidia-smi.
TEST_F(PreparerTimeSliceTest, AdminAccessNeverSetsOrResetsATimeSlice) {
  const std::string t = Target("gpu-1");
  claims_.Put(ClaimJson("holder", Uid(1), {Result{.device = "gpu-1"}}, TimeSlicing("Long")));
  claims_.Put(ClaimJson("admin", Uid(2), {Result{.device = "gpu-1", .admin_access = true}},
                        TimeSlicing("Short")));
  ASSERT_TRUE(PrepareOne(Ref("holder", Uid(1))).ok());
  auto r = PrepareOne(Ref("admin", Uid(2)));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(Calls(), std::vector<std::string>{Set(t, 3)}) << "the admin claim set the time slice";
  auto env = SpecEnv(Uid(2));
  EXPECT_EQ(env["ACCEL_DEVICE_GPU_1_TIMESLICE_INTERVAL"], "Short");
  EXPECT_EQ(env["ACCEL_DEVICE_GPU_1_TIMESLICE_ENFORCED"], "false");
  EXPECT_FALSE(Entry(Uid(2))->devices[0].TimeSliceEnforced());
  const auto holder = Entry(Uid(1));
  EXPECT_EQ(UnprepareOne(Ref("admin", Uid(2))), "");
  EXPECT_EQ(Calls().size(), 1u) << "the admin claim reset the holder's time slice";
  EXPECT_EQ(Entry(Uid(1)), holder);
  EXPECT_EQ(UnprepareOne(Ref("holder", Uid(1))), "");
  EXPECT_EQ(Calls(), (std::vector<std::string>{Set(t, 3), Set(t, 0)}));

  // The admin claim first: the later holder's setting is its own, and the admin claim going
  // away resets nothing.
  claims_.Put(ClaimJson("admin2", Uid(3), {Result{.device = "gpu-2", .admin_access = true}},
                        TimeSlicing("Short")));
  claims_.Put(ClaimJson("holder2", Uid(4), {Result{.device = "gpu-2"}}, TimeSlicing("Medium")));
  ASSERT_TRUE(PrepareOne(Ref("admin2", Uid(3))).ok());
  ASSERT_TRUE(PrepareOne(Ref("holder2", Uid(4))).ok());
  EXPECT_EQ(UnprepareOne(Ref("admin2", Uid(3))), "");
  const std::string t2 = Target("gpu-2");
  EXPECT_EQ(Calls(), (std::vector<std::string>{Set(t, 3), Set(t, 0), Set(t2, 2)}));
  ExpectConsistent();
}

TEST_F(PreparerTimeSliceTest, FailingNvidiaSmiFailsTheClaimAndLeavesNothing) {
  std::ofstream(dirs_->root() / "fail") << "";
  const std::string uid = Uid(3);
  claims_.Put(ClaimJson("bad", uid, {Result{.device = "gpu-2"}}, TimeSlicing("Medium")));
  auto r = PrepareOne(Ref("bad", uid));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "ResourceClaim default/bad");
  EXPECT_CONTAINS(r.error,
                  "nvidia-smi compute-policy -i " + Target("gpu-2") + " --set-timeslice 2");
  EXPECT_CONTAINS(r.error, "exit code 3");
  EXPECT_CONTAINS(r.error, "Not Supported");
  EXPECT_FALSE(Entry(uid).has_value());
  EXPECT_FALSE(SpecExists(uid));
  // The reset of what may be half-applied was attempted.
  EXPECT_EQ(Calls().back(), Set(Target("gpu-2"), 0));
  ExpectConsistent();
  // Fixed: kubelet's retry succeeds.
  fs::remove(dirs_->root() / "fail");
  EXPECT_TRUE(PrepareOne(Ref("bad", uid)).ok());
  ExpectConsistent();
}

TEST_F(PreparerTimeSliceTest, MissingNvidiaSmiIsAClaimError) {
  base_opts_.nvidia_smi = "accel-dra-test-no-such-nvidia-smi";
  Reopen();
  claims_.Put(ClaimJson("none", Uid(4), {Result{.device = "gpu-3"}}, TimeSlicing("Long")));
  auto r = PrepareOne(Ref("none", Uid(4)));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "accel-dra-test-no-such-nvidia-smi not found");
  EXPECT_CONTAINS(r.error, "--nvidia-smi");
  EXPECT_FALSE(Entry(Uid(4)).has_value());
  ExpectConsistent();
}

TEST_F(PreparerTimeSliceTest, CdiFailureAfterApplyingResets) {
  env_.FailWritesUnder(dirs_->cdi(), ENOSPC);
  claims_.Put(ClaimJson("full", Uid(5), {Result{.device = "gpu-1"}}, TimeSlicing("Long")));
  ASSERT_FALSE(PrepareOne(Ref("full", Uid(5))).ok());
  EXPECT_EQ(Calls(), (std::vector<std::string>{Set(Target("gpu-1"), 3), Set(Target("gpu-1"), 0)}));
  EXPECT_FALSE(Entry(Uid(5)).has_value());
}

TEST_F(PreparerTimeSliceTest, AdvisoryOnDevicesWithoutControl) {
  claims_.Put(ClaimJson("adv", Uid(6), {Result{.device = "gpu-9"}}, TimeSlicing("Long")));
  ASSERT_TRUE(PrepareOne(Ref("adv", Uid(6))).ok());
  EXPECT_TRUE(Calls().empty());
  auto env = SpecEnv(Uid(6));
  EXPECT_EQ(env["ACCEL_DEVICE_GPU_9_TIMESLICE_INTERVAL"], "Long");
  EXPECT_EQ(env["ACCEL_DEVICE_GPU_9_TIMESLICE_ENFORCED"], "false");
  EXPECT_EQ(Entry(Uid(6))->devices[0].time_slice,
            (model::AppliedTimeSlice{model::TimeSliceControl::kNone, "", 3}));
  EXPECT_EQ(UnprepareOne(Ref("adv", Uid(6))), "");
  EXPECT_TRUE(Calls().empty());
  // Exclusive on a controlled device: nothing to apply.
  PutAndPrepare("ex", Uid(7), "gpu-0");
  EXPECT_TRUE(Calls().empty());
}

// A crash between applying the setting and PrepareCompleted: recovery rolls the claim back and
// resets the device.
TEST_F(PreparerTimeSliceTest, RecoveryResetsAnInterruptedPrepare) {
  const std::string t = Target("gpu-2");
  ASSERT_TRUE(
      checkpoint_
          ->Update([&](checkpoint::State& s) {
            model::PreparedClaim c;
            c.ns = kNamespace;
            c.name = "crashed";
            c.state = ClaimState::kPrepareStarted;
            model::PreparedDevice d;
            d.pool = kNode;
            d.device = "gpu-2";
            d.sharing.strategy = model::SharingStrategy::kTimeSlicing;
            d.sharing.interval = model::TimeSliceInterval::kMedium;
            d.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi, t, 2};
            c.devices.push_back(d);
            s.claims[Uid(8)] = c;
          })
          .ok());
  Reopen();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(Calls(), std::vector<std::string>{Set(t, 0)});
  ExpectConsistent();
}

// The checkpoint is lost (corrupt) while a claim's time slice is set: recovery rebuilds the claim
// from its spec with the device's control and target (from the inventory), so the unprepare
// resets the device. A spec whose set time slice nobody could reset any more is kept, without a
// record (issue 11).
TEST_F(PreparerTimeSliceTest, RebuiltFromTheSpecAfterALostCheckpointAndResetOnUnprepare) {
  const std::string uid = Uid(10);
  claims_.Put(ClaimJson("ts", uid, {Result{.device = "gpu-1"}}, TimeSlicing("Long")));
  ASSERT_TRUE(PrepareOne(Ref("ts", uid)).ok());
  claims_.Put(ClaimJson("orphaned", Uid(11), {Result{.device = "gpu-2"}}, TimeSlicing("Short")));
  ASSERT_TRUE(PrepareOne(Ref("orphaned", Uid(11))).ok());
  const std::string t = Target("gpu-1");
  ASSERT_EQ(Calls(), (std::vector<std::string>{Set(t, 3), Set(Target("gpu-2"), 1)}));
  Close();
  const fs::path file = dirs_->data() / "checkpoint.json";
  std::string bytes = ReadAll(file);
  bytes[bytes.size() - 10] ^= 0x20;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  // gpu-2 lost its time-slice control meanwhile (e.g. another driver): nothing could reset it.
  std::vector<model::Device> devices = inventory_->devices();
  for (auto& d : devices) {
    if (d.name == "gpu-2") d.timeslice_control = model::TimeSliceControl::kNone;
  }
  inventory_ = std::make_shared<const model::Inventory>(std::move(devices));
  Open();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->claims_rebuilt, 1);
  EXPECT_EQ(report->specs_kept, std::vector<std::string>{dirs_->SpecPath(Uid(11)).string()});
  EXPECT_TRUE(SpecExists(Uid(11)));
  EXPECT_EQ(Calls().size(), 2u);  // recovery applies nothing: the setting is still in place
  auto entry = Entry(uid);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->devices[0].time_slice,
            (model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi, t, 3}));
  EXPECT_EQ(SpecEnv(uid)["ACCEL_DEVICE_GPU_1_TIMESLICE_ENFORCED"], "true");
  EXPECT_EQ(UnprepareOne(Ref("ts", uid)), "");
  EXPECT_EQ(Calls().back(), Set(t, 0));
  EXPECT_FALSE(SpecExists(uid));
}

// A failing reset keeps the claim (and so the record of the setting) for kubelet's retry.
TEST_F(PreparerTimeSliceTest, FailingResetFailsTheUnprepareUntilItWorks) {
  claims_.Put(ClaimJson("r", Uid(9), {Result{.device = "gpu-3"}}, TimeSlicing("Short")));
  ASSERT_TRUE(PrepareOne(Ref("r", Uid(9))).ok());
  std::ofstream(dirs_->root() / "fail") << "";
  std::string err = UnprepareOne(Ref("r", Uid(9)));
  EXPECT_CONTAINS(err, "resetting the time slice of device " + Target("gpu-3"));
  EXPECT_TRUE(Entry(Uid(9)).has_value());
  fs::remove(dirs_->root() / "fail");
  EXPECT_EQ(UnprepareOne(Ref("r", Uid(9))), "");
  EXPECT_FALSE(Entry(Uid(9)).has_value());
  EXPECT_EQ(Calls().back(), Set(Target("gpu-3"), 0));
}

}  // namespace
}  // namespace accel_dra::claims::testing
