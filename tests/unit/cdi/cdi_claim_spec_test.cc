// BuildClaimSpec: what a claim's CDI spec gives the container, and schema checks of the output.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/model/device.h"

namespace accel_dra::cdi {
namespace {
namespace fs = std::filesystem;

constexpr const char* kUid = "4b6e5c1a-0d6f-4d3e-9c1b-2f7e1a9b8c7d";
// The claim's spec-level variable: ACCEL_VISIBLE_DEVICES_ + the UID upper-cased, '-' as '_'.
constexpr const char* kVisible = "ACCEL_VISIBLE_DEVICES_4B6E5C1A_0D6F_4D3E_9C1B_2F7E1A9B8C7D";

using model::SharingStrategy;
using model::TimeSliceInterval;

ClaimSpecDevice Dev(std::string name, int index, std::vector<std::string> nodes = {}) {
  ClaimSpecDevice d;
  d.device.device = std::move(name);
  d.device.pool = "node-a";
  d.index = index;
  d.device.device_nodes = std::move(nodes);
  return d;
}

// Env of a device (or of the spec when `device` is empty) as a map.
std::map<std::string, std::string> EnvOf(const Spec& s, const std::string& device = "") {
  const ContainerEdits* e = &s.container_edits;
  for (const auto& d : s.devices) {
    if (d.name == device) e = &d.container_edits;
  }
  std::map<std::string, std::string> out;
  for (const auto& kv : e->env) {
    auto eq = kv.find('=');
    EXPECT_TRUE(out.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second) << "duplicate " << kv;
  }
  return out;
}

TEST(CdiClaimSpec, ExclusiveDeviceWithNodes) {
  ClaimInfo claim{kUid, "team-a", "train"};
  auto spec = BuildClaimSpec("accel-dra.dev", claim,
                             {Dev("accel-0", 0, {"/dev/accel/accel0", "/dev/accel/ctl"})});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->kind, "k8s.accel-dra.dev/device");
  EXPECT_EQ(spec->cdi_version, "");
  EXPECT_EQ(MinimumVersion(*spec), "0.5.0");  // the name starts with a digit
  ASSERT_EQ(spec->devices.size(), 1u);
  std::string name = std::string(kUid) + "-accel-0";
  EXPECT_EQ(spec->devices[0].name, name);
  auto env = EnvOf(*spec, name);
  EXPECT_EQ(env, (std::map<std::string, std::string>{
                     {"ACCEL_DEVICE_ACCEL_0", "accel-0"},
                     {"ACCEL_DEVICE_ACCEL_0_RESOURCE_CLAIM", "team-a/train"},
                     {"ACCEL_DEVICE_ACCEL_0_RESOURCE_CLAIM_UID", kUid},
                     {"ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY", "Exclusive"},
                 }));
  ASSERT_EQ(spec->devices[0].container_edits.device_nodes.size(), 2u);
  EXPECT_EQ(spec->devices[0].container_edits.device_nodes[0].path, "/dev/accel/accel0");
  EXPECT_EQ(spec->devices[0].container_edits.device_nodes[0].host_path, "");
  EXPECT_EQ(EnvOf(*spec), (std::map<std::string, std::string>{{kVisible, "accel-0"}}));
  EXPECT_EQ(VisibleDevicesVariable(kUid), kVisible);
}

TEST(CdiClaimSpec, SharingVariantsAndExtraEnv) {
  ClaimInfo claim{kUid, "ns", "c"};
  ClaimSpecDevice ts = Dev("accel-0", 0);
  ts.device.sharing.strategy = SharingStrategy::kTimeSlicing;
  ts.device.sharing.interval = TimeSliceInterval::kLong;
  ClaimSpecDevice ts_default = Dev("accel-1", 1);
  ts_default.device.sharing.strategy = SharingStrategy::kTimeSlicing;
  ClaimSpecDevice sp = Dev("accel-2", 2);
  sp.device.sharing.strategy = SharingStrategy::kSpacePartitioning;
  sp.device.sharing.partition_count = 4;
  sp.device.sharing.interval = TimeSliceInterval::kShort;  // ignored: not TimeSlicing
  sp.extra_env = {{"ACCEL_FOO", "bar"}, {"_X1", "y=z"}};
  auto spec = BuildClaimSpec("accel-dra.dev", claim, {ts, ts_default, sp});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto e0 = EnvOf(*spec, std::string(kUid) + "-accel-0");
  EXPECT_EQ(e0["ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY"], "TimeSlicing");
  EXPECT_EQ(e0["ACCEL_DEVICE_ACCEL_0_TIMESLICE_INTERVAL"], "Long");
  EXPECT_EQ(e0.count("ACCEL_DEVICE_ACCEL_0_PARTITION_COUNT"), 0u);
  auto e1 = EnvOf(*spec, std::string(kUid) + "-accel-1");
  EXPECT_EQ(e1["ACCEL_DEVICE_ACCEL_1_TIMESLICE_INTERVAL"], "Default");
  auto e2 = EnvOf(*spec, std::string(kUid) + "-accel-2");
  EXPECT_EQ(e2["ACCEL_DEVICE_ACCEL_2_SHARING_STRATEGY"], "SpacePartitioning");
  EXPECT_EQ(e2["ACCEL_DEVICE_ACCEL_2_PARTITION_COUNT"], "4");
  EXPECT_EQ(e2.count("ACCEL_DEVICE_ACCEL_2_TIMESLICE_INTERVAL"), 0u);
  EXPECT_EQ(e2["ACCEL_FOO"], "bar");
  EXPECT_EQ(e2["_X1"], "y=z");
  // Extra variables come after the standard ones, in the given order.
  const auto& raw = spec->devices[2].container_edits.env;
  EXPECT_EQ(raw[raw.size() - 2], "ACCEL_FOO=bar");
  EXPECT_EQ(raw.back(), "_X1=y=z");
  EXPECT_EQ(EnvOf(*spec)[kVisible], "accel-0,accel-1,accel-2");
}

TEST(CdiClaimSpec, DeterministicWhateverTheInputOrder) {
  ClaimInfo claim{kUid, "ns", "c"};
  std::vector<ClaimSpecDevice> devices = {Dev("accel-3", 1, {"/dev/a3"}), Dev("accel-1", 0),
                                          Dev("accel-2", 2)};
  auto a = BuildClaimSpec("accel-dra.dev", claim, devices);
  std::reverse(devices.begin(), devices.end());
  auto b = BuildClaimSpec("accel-dra.dev", claim, devices);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(ToJson(*a).value(), ToJson(*b).value());
  EXPECT_EQ(a->devices[0].name, std::string(kUid) + "-accel-1");  // ordered by index
  EXPECT_EQ(EnvOf(*a)[kVisible], "accel-1,accel-3,accel-2");
}

// A container that gets devices from two claims receives the edits of both specs; the per-device
// variables must not collide even though both claims number their devices from 0.
TEST(CdiClaimSpec, TwoClaimsInOneContainerDoNotCollide) {
  auto a = BuildClaimSpec("accel-dra.dev", {"uid-a", "ns", "a"}, {Dev("accel-0", 0)});
  auto b = BuildClaimSpec("accel-dra.dev", {"uid-b", "ns", "b"}, {Dev("accel-1", 0)});
  ASSERT_TRUE(a.ok() && b.ok());
  std::map<std::string, std::string> merged;
  for (const auto& [spec, dev] :
       {std::pair{&*a, "uid-a-accel-0"}, std::pair{&*b, "uid-b-accel-1"}}) {
    // The device's variables and the spec-level ones (issue 11: ACCEL_VISIBLE_DEVICES, one
    // spec-level variable for every claim, collided).
    for (const std::string& d : {std::string(dev), std::string()}) {
      for (const auto& [k, v] : EnvOf(*spec, d)) {
        EXPECT_TRUE(merged.emplace(k, v).second) << k << " is set by both claims";
      }
    }
  }
  EXPECT_EQ(merged["ACCEL_DEVICE_ACCEL_0_RESOURCE_CLAIM"], "ns/a");
  EXPECT_EQ(merged["ACCEL_DEVICE_ACCEL_1_RESOURCE_CLAIM"], "ns/b");
  EXPECT_EQ(merged["ACCEL_VISIBLE_DEVICES_UID_A"], "accel-0");
  EXPECT_EQ(merged["ACCEL_VISIBLE_DEVICES_UID_B"], "accel-1");
  EXPECT_EQ(merged.count("ACCEL_VISIBLE_DEVICES"), 0u);
  // Device names (and so CDI IDs) differ between claims as well.
  EXPECT_NE(a->devices[0].name, b->devices[0].name);
}

TEST(CdiClaimSpec, Errors) {
  ClaimInfo claim{kUid, "ns", "c"};
  auto expect_error = [&](const std::vector<ClaimSpecDevice>& devices, std::string_view what,
                          const ClaimInfo& c) {
    auto r = BuildClaimSpec("accel-dra.dev", c, devices);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(what), std::string::npos)
        << r.status().message() << " lacks " << what;
  };
  expect_error({}, "no devices", claim);
  expect_error({Dev("accel-0", 0)}, "invalid claim UID", ClaimInfo{"", "ns", "c"});
  expect_error({Dev("accel/0", 0)}, "cannot be named in CDI", claim);
  expect_error({Dev("accel-0", 0), Dev("accel-0", 1)}, "ACCEL_DEVICE_ACCEL_0", claim);
  ClaimSpecDevice other_pool = Dev("accel-0", 1);
  other_pool.device.pool = "node-b";
  expect_error({Dev("accel-0", 0), other_pool}, "pool node-b", claim);
  ClaimSpecDevice sp = Dev("accel-0", 0);
  sp.device.sharing.strategy = SharingStrategy::kSpacePartitioning;
  expect_error({sp}, "no partition count", claim);
  ClaimSpecDevice badenv = Dev("accel-0", 0);
  badenv.extra_env = {{"1X", "y"}};
  expect_error({badenv}, "not a valid name", claim);
  badenv.extra_env = {{"ACCEL_DEVICE_ACCEL_0", "y"}};
  expect_error({badenv}, "set twice", claim);
  badenv.extra_env = {{"ACCEL_VISIBLE_DEVICES", "y"}};
  expect_error({badenv}, "would collide with the claims' ACCEL_VISIBLE_DEVICES_* variables", claim);
  badenv.extra_env = {{kVisible, "y"}};
  expect_error({badenv}, "would collide", claim);
}

// ReadBackClaimSpec is the inverse of BuildClaimSpec (recovery after a lost checkpoint, issue 11):
// what a spec says about its claim comes back, through JSON and the strict parser.
TEST(CdiClaimSpec, ReadBackRecoversWhatTheSpecSays) {
  ClaimSpecDevice ts = Dev("accel-0", 0, {"/run/x/dev/accel-sim0", "/dev/accel/ctl"});
  ts.device.sharing = {SharingStrategy::kTimeSlicing, TimeSliceInterval::kMedium, 0};
  ts.device.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi, "GPU-0", 2};
  ts.device.mounts = std::vector<model::FileMount>{{"/v", "/run/accel-dra/driver/version"}};
  ClaimSpecDevice advisory = Dev("accel-1", 1);
  advisory.device.sharing = {SharingStrategy::kTimeSlicing, TimeSliceInterval::kLong, 0};
  ClaimSpecDevice sp = Dev("accel-2", 2, {"/dev/accel2"});
  sp.device.sharing = {SharingStrategy::kSpacePartitioning, TimeSliceInterval::kDefault, 16};
  sp.extra_env = {{"ACCEL_FOO", "bar"}};
  ClaimSpecExtras extras;
  extras.read_only_mounts = {{"/opt/inspect", std::string(model::kInspectToolContainerPath)}};
  auto spec =
      BuildClaimSpec("accel-dra.dev", {kUid, "team-a", "train"}, {ts, advisory, sp}, extras);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto parsed = ParseJson(ToJson(*spec).value());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  auto back = ReadBackClaimSpec("accel-dra.dev", kUid, *parsed);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->claim.uid, kUid);
  EXPECT_EQ(back->claim.namespace_, "team-a");
  EXPECT_EQ(back->claim.name, "train");
  ASSERT_EQ(back->devices.size(), 3u);
  EXPECT_EQ(back->devices[0].device, "accel-0");
  EXPECT_EQ(back->devices[0].sharing, ts.device.sharing);
  EXPECT_TRUE(back->devices[0].timeslice_enforced);
  EXPECT_EQ(back->devices[0].device_nodes,
            (std::vector<std::string>{"/run/x/dev/accel-sim0", "/dev/accel/ctl"}));
  EXPECT_EQ(back->devices[1].device, "accel-1");
  EXPECT_EQ(back->devices[1].sharing, advisory.device.sharing);
  EXPECT_FALSE(back->devices[1].timeslice_enforced);
  EXPECT_TRUE(back->devices[1].device_nodes.empty());
  EXPECT_EQ(back->devices[2].sharing, sp.device.sharing);
  EXPECT_EQ(back->devices[2].device_nodes, std::vector<std::string>{"/dev/accel2"});
  EXPECT_EQ(back->mounts, (std::vector<ReadOnlyMount>{
                              {"/v", "/run/accel-dra/driver/version"},
                              {"/opt/inspect", std::string(model::kInspectToolContainerPath)}}));
}

TEST(CdiClaimSpec, ReadBackNamesWhatIsWrong) {
  auto good = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {Dev("accel-0", 0)});
  ASSERT_TRUE(good.ok());
  const std::string dev = std::string(kUid) + "-accel-0";
  auto expect_error = [&](const Spec& s, std::string_view what, std::string_view uid = kUid) {
    auto r = ReadBackClaimSpec("accel-dra.dev", uid, s);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(what), std::string::npos)
        << r.status().message() << " lacks " << what;
  };
  expect_error(*good, "is not named 4b6e5c1a-0d6f-4d3e-9c1b-000000000000-<device>",
               "4b6e5c1a-0d6f-4d3e-9c1b-000000000000");
  Spec other = *good;
  other.kind = "k8s.other.dev/device";
  expect_error(other, "kind k8s.other.dev/device is not k8s.accel-dra.dev/device");
  auto edit = [&](const std::string& key, const std::string& value) {
    Spec s = *good;
    auto& env = s.devices[0].container_edits.env;
    env.erase(std::remove_if(env.begin(), env.end(),
                             [&](const std::string& e) { return e.rfind(key + "=", 0) == 0; }),
              env.end());
    if (!value.empty()) env.push_back(key + "=" + value);
    return s;
  };
  expect_error(edit("ACCEL_DEVICE_ACCEL_0", ""), "variable ACCEL_DEVICE_ACCEL_0 is missing");
  expect_error(edit("ACCEL_DEVICE_ACCEL_0", "accel-9"), "names another device");
  expect_error(edit("ACCEL_DEVICE_ACCEL_0_RESOURCE_CLAIM", "nons"), "is not <namespace>/<name>");
  expect_error(edit("ACCEL_DEVICE_ACCEL_0_RESOURCE_CLAIM_UID", "x"), "not the UID");
  expect_error(edit("ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY", "Sometimes"),
               "is no sharing strategy");
  expect_error(edit("ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY", "TimeSlicing"),
               "ACCEL_DEVICE_ACCEL_0_TIMESLICE_INTERVAL is missing");
  expect_error(edit("ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY", "SpacePartitioning"),
               "ACCEL_DEVICE_ACCEL_0_PARTITION_COUNT is missing");
  Spec part = edit("ACCEL_DEVICE_ACCEL_0_SHARING_STRATEGY", "SpacePartitioning");
  part.devices[0].container_edits.env.push_back("ACCEL_DEVICE_ACCEL_0_PARTITION_COUNT=17");
  expect_error(part, "is not a partition count from 2 to 16");
  Spec none = *good;
  none.devices.clear();
  expect_error(none, "no devices");
}

TEST(CdiClaimSpec, ContainerDevicePathIsWhatFollowsTheLastDev) {
  EXPECT_EQ(ContainerDevicePath("/run/e2e/dev/accel-sim0"), "/dev/accel-sim0");
  EXPECT_EQ(ContainerDevicePath("/host/dev/nvidia0"), "/dev/nvidia0");
  EXPECT_EQ(ContainerDevicePath("/dev/dri/renderD128"), "/dev/dri/renderD128");
  EXPECT_EQ(ContainerDevicePath("/a/dev/b/dev/dri/card1"), "/dev/dri/card1");
  EXPECT_EQ(ContainerDevicePath("/srv/accel0"), "/srv/accel0");  // no /dev/: unchanged
  EXPECT_EQ(ContainerDevicePath("/devices/x"), "/devices/x");
}

TEST(CdiClaimSpec, DeviceNodeOutsideDevGetsHostPath) {
  auto spec = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"},
                             {Dev("accel-0", 0, {"/tmp/run/dev/accel-sim0", "/dev/accel/ctl"})});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const auto& nodes = spec->devices[0].container_edits.device_nodes;
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].path, "/dev/accel-sim0");
  EXPECT_EQ(nodes[0].host_path, "/tmp/run/dev/accel-sim0");
  EXPECT_EQ(nodes[1].path, "/dev/accel/ctl");
  EXPECT_EQ(nodes[1].host_path, "");  // same path: not repeated
  auto json = ToJson(*spec);
  ASSERT_TRUE(json.ok());
  EXPECT_NE(json->find(R"("hostPath": "/tmp/run/dev/accel-sim0")"), std::string::npos) << *json;
}

TEST(CdiClaimSpec, ReadOnlyMountsAreSpecLevelSortedAndDeduplicated) {
  ClaimSpecDevice a = Dev("accel-0", 0);
  a.device.mounts = std::vector<ReadOnlyMount>{
      {"/run/sim/version", std::string(model::kDriverVersionContainerPath)}};
  ClaimSpecDevice b = Dev("accel-1", 1);
  b.device.mounts = a.device.mounts;
  ClaimSpecExtras extras;
  extras.read_only_mounts = {{"/opt/inspect", std::string(model::kInspectToolContainerPath)}};
  auto spec = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {b, a}, extras);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const auto& m = spec->container_edits.mounts;
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].host_path, "/run/sim/version");
  EXPECT_EQ(m[0].container_path, "/run/accel-dra/driver/version");
  EXPECT_EQ(m[1].host_path, "/opt/inspect");
  EXPECT_EQ(m[1].container_path, "/usr/local/bin/accel-dra-inspect");
  for (const auto& x : m) {
    EXPECT_EQ(x.type, "bind");
    EXPECT_EQ(x.options, (std::vector<std::string>{"ro", "nosuid", "nodev", "bind"}));
  }
  for (const auto& d : spec->devices) EXPECT_TRUE(d.container_edits.mounts.empty());

  // Two different files at one container path: an error naming both.
  b.device.mounts = std::vector<ReadOnlyMount>{
      {"/other/version", std::string(model::kDriverVersionContainerPath)}};
  auto clash = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {a, b});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find("/other/version"), std::string::npos)
      << clash.status().message();
  b.device.mounts = std::vector<ReadOnlyMount>{{"relative", "/x"}};
  EXPECT_FALSE(BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {b}).ok());
}

TEST(CdiClaimSpec, TimeSliceEnforcedVariable) {
  ClaimSpecDevice ts = Dev("accel-0", 0);
  ts.device.sharing.strategy = SharingStrategy::kTimeSlicing;
  ts.device.sharing.interval = TimeSliceInterval::kMedium;
  auto advisory = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {ts});
  ASSERT_TRUE(advisory.ok());
  EXPECT_EQ(
      EnvOf(*advisory, std::string(kUid) + "-accel-0")["ACCEL_DEVICE_ACCEL_0_TIMESLICE_ENFORCED"],
      "false");
  // A recorded time slice without control is advisory too.
  ts.device.time_slice = model::AppliedTimeSlice{
      .control = model::TimeSliceControl::kNone, .target = "", .setting = 2};
  auto recorded_advisory = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {ts});
  ASSERT_TRUE(recorded_advisory.ok());
  EXPECT_EQ(EnvOf(*recorded_advisory,
                  std::string(kUid) + "-accel-0")["ACCEL_DEVICE_ACCEL_0_TIMESLICE_ENFORCED"],
            "false");
  // Enforced when the record says the time slice was set on the hardware.
  ts.device.time_slice = model::AppliedTimeSlice{
      .control = model::TimeSliceControl::kNvidiaSmi, .target = "GPU-1", .setting = 2};
  auto applied = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {ts});
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(
      EnvOf(*applied, std::string(kUid) + "-accel-0")["ACCEL_DEVICE_ACCEL_0_TIMESLICE_ENFORCED"],
      "true");
  auto exclusive = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"}, {Dev("accel-0", 0)});
  EXPECT_EQ(EnvOf(*exclusive, std::string(kUid) + "-accel-0")
                .count("ACCEL_DEVICE_ACCEL_0_TIMESLICE_ENFORCED"),
            0u);
}

TEST(CdiClaimSpec, UnclaimedDevicesForTheTestingBreach) {
  ClaimSpecExtras extras;
  extras.unclaimed_device_names = {"accel-1", "accel-2"};
  extras.unclaimed_device_node_paths = {"/run/x/dev/accel-sim1", "/run/x/dev/accel-sim2"};
  auto spec = BuildClaimSpec("accel-dra.dev", {kUid, "ns", "c"},
                             {Dev("accel-0", 0, {"/run/x/dev/accel-sim0"})}, extras);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(EnvOf(*spec)[kVisible], "accel-0,accel-1,accel-2");
  ASSERT_EQ(spec->container_edits.device_nodes.size(), 2u);
  EXPECT_EQ(spec->container_edits.device_nodes[1].path, "/dev/accel-sim2");
  EXPECT_EQ(spec->container_edits.device_nodes[1].host_path, "/run/x/dev/accel-sim2");
}

// ---- Device metadata (KEP-5304) ---------------------------------------------------------------

TEST(CdiMetadataSpec, NamesKindAndReadOnlyMounts) {
  EXPECT_EQ(MetadataKind("accel-dra.dev"), "accel-dra.dev/metadata");
  EXPECT_EQ(MetadataDeviceId("accel-dra.dev", kUid, "gpu").value(),
            std::string("accel-dra.dev/metadata=") + kUid + "_gpu");
  EXPECT_FALSE(MetadataDeviceId("accel-dra.dev", kUid, "").ok());
  auto spec = BuildMetadataSpec("accel-dra.dev", kUid,
                                {{"b", "/h/b.json", "/c/b.json"}, {"a", "/h/a.json", "/c/a.json"}});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->kind, "accel-dra.dev/metadata");
  ASSERT_EQ(spec->devices.size(), 2u);
  EXPECT_EQ(spec->devices[0].name, std::string(kUid) + "_a");  // sorted by request
  ASSERT_EQ(spec->devices[0].container_edits.mounts.size(), 1u);
  const Mount& m = spec->devices[0].container_edits.mounts[0];
  EXPECT_EQ(m.host_path, "/h/a.json");
  EXPECT_EQ(m.container_path, "/c/a.json");
  EXPECT_EQ(m.options, (std::vector<std::string>{"ro", "nosuid", "nodev", "bind"}));
  EXPECT_FALSE(BuildMetadataSpec("accel-dra.dev", kUid, {}).ok());
  EXPECT_FALSE(
      BuildMetadataSpec("accel-dra.dev", kUid, {{"a", "/h/1", "/c/1"}, {"a", "/h/2", "/c/2"}})
          .ok());
}

// ---- Schema validation of generated specs ---------------------------------------------------

class CdiSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cdi-schema-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    std::ofstream(p) << content;
    return p;
  }
  // Runs cdi/validate.py on the files; returns its exit status (output goes to the test log).
  static int Validate(const std::vector<fs::path>& files) {
    std::string cmd = "python3 '" + std::string(ACCEL_DRA_SOURCE_DIR) + "/cdi/validate.py'";
    for (const auto& f : files) cmd += " '" + f.string() + "'";
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  fs::path dir_;
};

TEST_F(CdiSchemaTest, GeneratedSpecsAreValid) {
  std::vector<fs::path> files;
  auto add = [&](const std::string& file, const Spec& spec) {
    auto json = ToJson(spec);
    ASSERT_TRUE(json.ok()) << json.status().ToString();
    files.push_back(Write(file, *json));
  };
  ClaimInfo claim{kUid, "ns", "c"};
  // Simulated device: no nodes.
  add("sim.json", BuildClaimSpec("accel-dra.dev", claim, {Dev("accel-0", 0)}).value());
  // With device nodes and every sharing variant.
  ClaimSpecDevice ts = Dev("accel-1", 1, {"/dev/accel/accel1"});
  ts.device.sharing.strategy = SharingStrategy::kTimeSlicing;
  ts.device.sharing.interval = TimeSliceInterval::kMedium;
  ClaimSpecDevice sp = Dev("accel-2", 2, {"/dev/accel/accel2", "/dev/accel/ctl"});
  sp.device.sharing.strategy = SharingStrategy::kSpacePartitioning;
  sp.device.sharing.partition_count = 8;
  sp.extra_env = {{"ACCEL_EXTRA", "1"}};
  add("mixed.json",
      BuildClaimSpec("accel-dra.dev", claim, {Dev("accel-0", 0, {"/dev/accel/accel0"}), ts, sp})
          .value());
  // Device nodes under another root, mounts (the probe's files), the testing breach.
  ClaimSpecDevice run = Dev("accel-3", 3, {"/tmp/run/dev/accel-sim3"});
  run.device.mounts = {
      {"/tmp/run/sim-driver/version", std::string(model::kDriverVersionContainerPath)}};
  ClaimSpecExtras extras;
  extras.read_only_mounts = {{"/opt/inspect", std::string(model::kInspectToolContainerPath)}};
  extras.unclaimed_device_names = {"accel-4"};
  extras.unclaimed_device_node_paths = {"/tmp/run/dev/accel-sim4"};
  add("mounts.json", BuildClaimSpec("accel-dra.dev", claim, {run}, extras).value());
  // A name starting with a letter and another driver name.
  add("other.json", BuildClaimSpec("gpu.example.com", {"claim-uid", "ns", "c"}, {ts}).value());
  // The device-metadata spec (KEP-5304) of a claim with two requests.
  add("metadata.json",
      BuildMetadataSpec("accel-dra.dev", kUid,
                        {{"gpu", "/var/lib/kubelet/plugins/accel-dra.dev/m/gpu.json",
                          "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/c/gpu/"
                          "accel-dra.dev-metadata.json"},
                         {"aux", "/var/lib/kubelet/plugins/accel-dra.dev/m/aux.json",
                          "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/c/aux/"
                          "accel-dra.dev-metadata.json"}})
          .value());
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(Validate(files), 0);
}

TEST_F(CdiSchemaTest, FullModelIsValidAgainstOurSchema) {
  Spec s;
  s.kind = "k8s.accel-dra.dev/device";
  s.annotations = {{"accel-dra.dev/claim", "ns/c"}};
  s.container_edits.env = {"A=1"};
  s.container_edits.hooks.push_back({"createContainer", "/bin/hook", {"hook"}, {"K=V"}, 3});
  Device d;
  d.name = "dev0";
  d.container_edits.device_nodes.push_back({"/dev/x", "/dev/y", "c", 1, 3, 0666, "rw", 0, 0});
  d.container_edits.mounts.push_back({"/h", "/c", {"ro"}, "bind"});
  d.container_edits.additional_gids = {44};
  d.container_edits.net_devices.push_back({"eth1", "net1"});
  s.devices.push_back(d);
  auto json = ToJson(s);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(Validate({Write("full.json", *json)}), 0);
}

// The validator must actually reject what CDI runtimes reject, or the tests above prove nothing.
TEST_F(CdiSchemaTest, InvalidSpecsAreRejected) {
  const char* bad[] = {
      // unknown field
      R"({"cdiVersion":"0.5.0","kind":"k8s.accel-dra.dev/device","devices":[{"name":"a","containerEdits":{"env":["A=1"]},"extra":1}]})",
      // device name with '/'
      R"({"cdiVersion":"0.5.0","kind":"k8s.accel-dra.dev/device","devices":[{"name":"a/b","containerEdits":{"env":["A=1"]}}]})",
      // name starting with a digit needs 0.5.0
      R"({"cdiVersion":"0.4.0","kind":"k8s.accel-dra.dev/device","devices":[{"name":"1a","containerEdits":{"env":["A=1"]}}]})",
      // annotations need 0.6.0
      R"({"cdiVersion":"0.5.0","kind":"a.com/b","annotations":{"x":"y"},"devices":[{"name":"a","containerEdits":{"env":["A=1"]}}]})",
      // no devices
      R"({"cdiVersion":"0.5.0","kind":"a.com/b","devices":[]})",
      // device without edits
      R"({"cdiVersion":"0.5.0","kind":"a.com/b","devices":[{"name":"a","containerEdits":{}}]})",
      // env without '='
      R"({"cdiVersion":"0.5.0","kind":"a.com/b","devices":[{"name":"a","containerEdits":{"env":["A"]}}]})",
      // kind without class
      R"({"cdiVersion":"0.5.0","kind":"a.com","devices":[{"name":"a","containerEdits":{"env":["A=1"]}}]})",
  };
  for (size_t i = 0; i < std::size(bad); ++i) {
    EXPECT_NE(Validate({Write("bad" + std::to_string(i) + ".json", bad[i])}), 0) << bad[i];
  }
}

}  // namespace
}  // namespace accel_dra::cdi
