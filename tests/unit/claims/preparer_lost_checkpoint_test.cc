// Preparer::Recover() after the checkpoint was unusable and moved aside (corrupt, or written by a
// newer version): the CDI specs of prepared claims are kept and their records rebuilt from them,
// so containers of running pods can restart and kubelet's unprepare still works (issue 11).

#include <gtest/gtest.h>

#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

class PreparerLostCheckpointTest : public PreparerTestBase {
 protected:
  fs::path CheckpointFile() const { return dirs_->data() / "checkpoint.json"; }

  // Prepares the claims the tests rebuild: an exclusive device, a claim with two devices (one
  // space-partitioned), and an advisory time slice (gpu-9 has no time-slice control).
  void PrepareClaims() {
    claims_.Put(ClaimJson("one", Uid(1), {Result{.device = "gpu-0"}}));
    claims_.Put(ClaimJson(
        "two", Uid(2),
        {Result{.request = "a", .device = "gpu-1"}, Result{.request = "b", .device = "gpu-2"}},
        Json::array(
            {OpaqueConfig("FromClaim", {"b"},
                          DeviceConfigParams({{"strategy", "SpacePartitioning"},
                                              {"spacePartitioning", {{"partitionCount", 4}}}}))})));
    claims_.Put(ClaimJson("ts", Uid(3), {Result{.device = "gpu-9"}},
                          Json::array({OpaqueConfig(
                              "FromClaim", {},
                              DeviceConfigParams({{"strategy", "TimeSlicing"},
                                                  {"timeSlicing", {{"interval", "Long"}}}}))})));
    for (int i = 1; i <= 3; ++i) {
      const std::string name = i == 1 ? "one" : i == 2 ? "two" : "ts";
      auto r = PrepareOne(Ref(name, Uid(i)));
      ASSERT_TRUE(r.ok()) << r.error;
      results_[Uid(i)] = r;
      specs_[Uid(i)] = ReadAll(dirs_->SpecPath(Uid(i)));
    }
  }

  // What the plugin finds after its checkpoint was damaged while it was down.
  void DamageCheckpointAndRestart(bool newer) {
    Close();
    std::string bytes = ReadAll(CheckpointFile());
    ASSERT_GT(bytes.size(), 100u);
    if (newer) {
      bytes = R"({"version": 3, "checksum": "00000000", "data": {}})";
    } else {
      bytes[bytes.size() / 2] ^= 0x01;  // one flipped bit in the payload
    }
    std::ofstream(CheckpointFile(), std::ios::binary | std::ios::trunc) << bytes;
    Open();
    ASSERT_FALSE(checkpoint_->load_report().moved_aside_to.empty());
    ASSERT_TRUE(checkpoint_->Snapshot().claims.empty());
  }

  std::map<std::string, model::PrepareResult> results_;
  std::map<std::string, std::string> specs_;
};

class PreparerLostCheckpointKinds : public PreparerLostCheckpointTest,
                                    public ::testing::WithParamInterface<bool> {};

TEST_P(PreparerLostCheckpointKinds, SpecsAreKeptAndClaimsRebuilt) {
  PrepareClaims();
  // Not ours to judge: another vendor's file, and a spec of ours that cannot be read back.
  std::ofstream(dirs_->cdi() / "nvidia.com-gpu.json") << "{}";
  const std::string garbage = "6f1c2d3e-0000-4000-8000-00000000dead";
  std::ofstream(dirs_->SpecPath(garbage)) << "{\"cdiVersion\": \"0.5.0\", trunc";
  DamageCheckpointAndRestart(/*newer=*/GetParam());

  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->claims_rebuilt, 3);
  EXPECT_EQ(report->orphan_specs_removed, 0);
  EXPECT_EQ(report->completed, 3);
  EXPECT_EQ(report->specs_recreated, 0);  // rebuilt records render the very same specs
  EXPECT_EQ(report->specs_kept, std::vector<std::string>{dirs_->SpecPath(garbage).string()});
  EXPECT_TRUE(fs::exists(dirs_->SpecPath(garbage)));
  EXPECT_TRUE(fs::exists(dirs_->cdi() / "nvidia.com-gpu.json"));
  for (const auto& [uid, bytes] : specs_) {
    EXPECT_EQ(ReadAll(dirs_->SpecPath(uid)), bytes) << uid;
  }

  // The rebuilt records (durable: reopened without damage they are all there).
  Reopen();
  ASSERT_TRUE(checkpoint_->load_report().moved_aside_to.empty());
  auto one = Entry(Uid(1));
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->ns, kNamespace);
  EXPECT_EQ(one->name, "one");
  EXPECT_EQ(one->state, ClaimState::kPrepareCompleted);
  EXPECT_EQ(one->cdi_spec_file, dirs_->SpecPath(Uid(1)).filename().string());
  ASSERT_EQ(one->devices.size(), 1u);
  const model::PreparedDevice& d = one->devices[0];
  EXPECT_TRUE(d.request_names.empty());  // not in the spec: all requests
  EXPECT_EQ(d.pool, kNode);
  EXPECT_EQ(d.device, "gpu-0");
  EXPECT_EQ(d.cdi_device_ids, results_[Uid(1)].devices[0].cdi_device_ids);
  EXPECT_EQ(d.sharing.strategy, model::SharingStrategy::kExclusive);
  EXPECT_EQ(d.device_nodes, std::optional<std::vector<std::string>>({"/dev/accel0"}));
  auto two = Entry(Uid(2));
  ASSERT_TRUE(two.has_value());
  ASSERT_EQ(two->devices.size(), 2u);
  EXPECT_EQ(two->devices[1].device, "gpu-2");
  EXPECT_EQ(two->devices[1].sharing.strategy, model::SharingStrategy::kSpacePartitioning);
  EXPECT_EQ(two->devices[1].sharing.partition_count, 4);
  auto ts = Entry(Uid(3));
  ASSERT_TRUE(ts.has_value());
  EXPECT_EQ(ts->devices[0].sharing.interval, model::TimeSliceInterval::kLong);
  EXPECT_EQ(ts->devices[0].time_slice,
            (model::AppliedTimeSlice{model::TimeSliceControl::kNone, "", 3}));

  // A normal start: nothing to rebuild; the spec that could not be read back now has no owner.
  report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->claims_rebuilt, 0);
  EXPECT_EQ(report->completed, 3);
  EXPECT_EQ(report->orphan_specs_removed, 1);
  ExpectConsistent();

  // kubelet's calls work on rebuilt claims: prepare answers from the record (its devices are
  // the allocated ones; it has no request names to compare, so they are not), unprepare removes.
  const auto ckpt_writes = checkpoint_->stats().writes;
  auto again = PrepareOne(Ref("two", Uid(2)));
  ASSERT_TRUE(again.ok()) << again.error;
  ASSERT_EQ(again.devices.size(), 2u);
  EXPECT_TRUE(again.devices[0].request_names.empty()) << "prepared afresh, not from the record";
  EXPECT_EQ(checkpoint_->stats().writes, ckpt_writes);
  EXPECT_EQ(again.devices[0].cdi_device_ids, results_[Uid(2)].devices[0].cdi_device_ids);
  EXPECT_EQ(again.devices[1].cdi_device_ids, results_[Uid(2)].devices[1].cdi_device_ids);
  for (const auto& [name, uid] : {std::pair{"one", Uid(1)}, {"two", Uid(2)}, {"ts", Uid(3)}}) {
    EXPECT_EQ(UnprepareOne(Ref(name, uid)), "") << name;
    EXPECT_FALSE(SpecExists(uid)) << name;
    EXPECT_FALSE(Entry(uid).has_value()) << name;
  }
  // The devices are free again.
  PutAndPrepare("next", Uid(4), "gpu-0");
  ExpectConsistent();
}

INSTANTIATE_TEST_SUITE_P(CorruptOrNewer, PreparerLostCheckpointKinds, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "Newer" : "Corrupt";
                         });

// Rebuilt claims whose ResourceClaim is gone are cleaned up by the stale-claim sweep; the others
// stay.
TEST_F(PreparerLostCheckpointTest, TheSweepRemovesRebuiltClaimsThatAreGone) {
  PrepareClaims();
  DamageCheckpointAndRestart(/*newer=*/false);
  ASSERT_TRUE(preparer_->Recover().ok());
  claims_.Remove("one");
  EXPECT_EQ(preparer_->CleanupStale(), 1);
  EXPECT_FALSE(Entry(Uid(1)).has_value());
  EXPECT_FALSE(SpecExists(Uid(1)));
  EXPECT_TRUE(Entry(Uid(2)).has_value());
  EXPECT_TRUE(SpecExists(Uid(2)));
  ExpectConsistent();
}

}  // namespace
}  // namespace accel_dra::claims::testing
