// The checks' verdicts without a cluster: canned objects and inspect output (RESULT lines, parsed
// as the probe parses pod logs) in, evidence lines and the failure message out.

#include "accel_dra/probe/verdicts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace accel_dra::probe {
namespace {
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// An inspect result as parsed from a container's log.
InspectResult Seen(const std::string& accelerators, const std::vector<std::string>& env) {
  std::string log = "RESULT: INSPECT_TOOL=binary\nRESULT: DEVICE_NODES=" + accelerators +
                    "\nRESULT: ACCELERATOR_DEVICES=" + accelerators + "\n";
  for (const auto& e : env) log += "RESULT: ENV_" + e + "\n";
  return ParseResult(log + "RESULT: DONE=true\n");
}

TEST(Verdicts, PerDeviceNodesSkipSharedControlAndRenderNodes) {
  EXPECT_THAT(PerDeviceNodes({"/dev/dri/card0", "/dev/dri/renderD128", "/dev/kfd", "/dev/nvidia0",
                              "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-uvm", "/dev/nvidiactl"}),
              ElementsAre("/dev/dri/card0", "/dev/nvidia0"));
}

// The driver sets one ACCEL_VISIBLE_DEVICES_<CLAIM> per claim (two claims in one container do
// not collide); the probe merges them, and the plain variable of older drivers, into one list.
TEST(Verdicts, VisibleDevicesMergesThePerClaimLists) {
  EXPECT_EQ(VisibleDevices(Seen("", {})), "");
  EXPECT_EQ(VisibleDevices(Seen("", {"ACCEL_VISIBLE_DEVICES=gpu-1,gpu-0"})), "gpu-1,gpu-0");
  EXPECT_EQ(VisibleDevices(Seen("", {"ACCEL_VISIBLE_DEVICES_6F1C_A=gpu-1,gpu-0",
                                     "ACCEL_VISIBLE_DEVICES_0A2B_B=gpu-3,gpu-1",
                                     "ACCEL_VISIBLE_DEVICESX=gpu-9", "ACCEL_DEVICE_GPU_7=gpu-7"})),
            "gpu-3,gpu-1,gpu-0");
  CheckResult c;
  EXPECT_TRUE(JudgeDeviceInjection(
      "p", "gpu-0", Seen("/dev/accel-sim0", {"ACCEL_VISIBLE_DEVICES_6F1C2D3E=gpu-0"}), c));
  EXPECT_THAT(c.observed, ElementsAre("inside the container: ACCEL_VISIBLE_DEVICES=gpu-0, device "
                                      "nodes [/dev/accel-sim0] (inspect: binary)"));
}

TEST(DraSupportVerdict, ServedResources) {
  CheckResult c;
  EXPECT_TRUE(JudgeServedDraResources(
      {"deviceclasses", "resourceclaims", "resourceclaimtemplates", "resourceslices"}, c));
  EXPECT_EQ(c.status, CheckStatus::kSkip);
  EXPECT_THAT(c.observed, ElementsAre("resource.k8s.io/v1 serves: deviceclasses, resourceclaims, "
                                      "resourceclaimtemplates, resourceslices"));
  CheckResult d;
  EXPECT_FALSE(JudgeServedDraResources({"deviceclasses", "resourceclaims"}, d));
  EXPECT_EQ(d.status, CheckStatus::kFail);
  EXPECT_EQ(d.message, "resource.k8s.io/v1 does not serve resourceclaimtemplates, resourceslices");
}

TEST(DraSupportVerdict, DeviceInjection) {
  CheckResult c;
  EXPECT_TRUE(JudgeDeviceInjection("p", "gpu-0",
                                   Seen("/dev/accel-sim0", {"ACCEL_VISIBLE_DEVICES=gpu-0"}), c));
  EXPECT_THAT(c.observed, ElementsAre("inside the container: ACCEL_VISIBLE_DEVICES=gpu-0, device "
                                      "nodes [/dev/accel-sim0] (inspect: binary)"));
  CheckResult d;
  EXPECT_FALSE(JudgeDeviceInjection("p", "gpu-0", Seen("", {}), d));
  EXPECT_EQ(d.message,
            "the container of pod p, allocated gpu-0, sees ACCEL_VISIBLE_DEVICES=\"\" and device "
            "nodes []: the driver's injection is missing");
}

PoolDevice Device(const std::string& name, const std::string& driver_version,
                  const std::string& runtime = "", const std::string& runtime_version = "") {
  Json attrs = Json::object();
  if (!driver_version.empty()) attrs["driverVersion"] = {{"version", driver_version}};
  if (!runtime.empty()) attrs["containerRuntime"] = {{"string", runtime}};
  if (!runtime_version.empty()) attrs["containerRuntimeVersion"] = {{"version", runtime_version}};
  return {"pool", name, {{"name", name}, {"attributes", attrs}}};
}

Json NodeWithRuntime(const std::string& runtime_version) {
  return {{"status",
           {{"nodeInfo",
             {{"containerRuntimeVersion", runtime_version}, {"kubeletVersion", "v1.35.4"}}}}}};
}

TEST(DriverRuntimeVerdict, AgreeingNodePasses) {
  CheckResult c;
  NodeRuntime rt;
  EXPECT_TRUE(JudgeNodeRuntime("n1",
                               {Device("gpu-0", "1.2.3", "containerd", "2.2.9"),
                                Device("gpu-1", "1.2.3", "containerd", "2.2.9")},
                               NodeWithRuntime("containerd://2.2.9"), "accel-dra.dev", &rt, c));
  EXPECT_EQ(rt.driver_version, "1.2.3");
  EXPECT_EQ(rt.warning, "");
  EXPECT_THAT(c.observed, ElementsAre("node n1: 2 devices, driverVersion=1.2.3, "
                                      "containerRuntime=containerd, "
                                      "containerRuntimeVersion=2.2.9; "
                                      "nodeInfo.containerRuntimeVersion=containerd://2.2.9, "
                                      "kubeletVersion=v1.35.4"));
}

TEST(DriverRuntimeVerdict, MissingRuntimeAttributesAreAWarning) {
  CheckResult c;
  NodeRuntime rt;
  EXPECT_TRUE(JudgeNodeRuntime("n1", {Device("gpu-0", "1.2.3")},
                               NodeWithRuntime("containerd://2.2.9"), "accel-dra.dev", &rt, c));
  EXPECT_EQ(rt.warning,
            "node n1: devices publish no containerRuntime/containerRuntimeVersion attributes; "
            "only nodeInfo (containerd://2.2.9) was checked");
  EXPECT_THAT(c.observed[0], HasSubstr("containerRuntime=(missing)"));
}

TEST(DriverRuntimeVerdict, Failures) {
  struct Case {
    std::vector<PoolDevice> devices;
    std::string node_runtime;
    std::string message;
  };
  const Case cases[] = {
      {{Device("gpu-0", "1.2.3"), Device("gpu-1", "")},
       "containerd://2.2.9",
       "devices gpu-1 on node n1 publish no driverVersion attribute"},
      {{Device("gpu-0", "1.2.3"), Device("gpu-1", "1.2.4")},
       "containerd://2.2.9",
       "devices on node n1 disagree on driverVersion: 1.2.3 vs 1.2.4"},
      {{Device("gpu-0", "1.2.3")},
       "containerd-2.2.9",
       "node n1 reports containerRuntimeVersion \"containerd-2.2.9\" (expected "
       "<runtime>://<version>)"},
      {{Device("gpu-0", "1.2.3", "cri-o", "2.2.9")},
       "containerd://2.2.9",
       "node n1: devices publish containerRuntime cri-o but the node runs containerd"},
      {{Device("gpu-0", "1.2.3", "containerd", "2.1.0")},
       "containerd://2.2.9",
       "node n1: devices publish containerRuntimeVersion 2.1.0 but the node runs "
       "containerd://2.2.9"},
  };
  for (const auto& k : cases) {
    CheckResult c;
    NodeRuntime rt;
    EXPECT_FALSE(JudgeNodeRuntime("n1", k.devices, NodeWithRuntime(k.node_runtime), "d", &rt, c));
    EXPECT_EQ(c.status, CheckStatus::kFail);
    EXPECT_EQ(c.message, k.message);
    EXPECT_THAT(c.observed, SizeIs(1));  // the node's evidence line comes first
  }
}

TEST(DriverRuntimeVerdict, NextMajorVersion) {
  EXPECT_EQ(NextMajorVersion("1.2.3").value(), "2.0.0");
  EXPECT_EQ(NextMajorVersion("550.54.15").value(), "551.0.0");
  EXPECT_EQ(NextMajorVersion("").value(), "1.0.0");
  // Hostile versions a driver may publish (std::stoi threw on the first and skipped the clean-up;
  // issue 11): numbers beyond int, beyond 64 bits, and no number at all.
  EXPECT_EQ(NextMajorVersion("3000000000.0.0").value(), "3000000001.0.0");
  EXPECT_EQ(NextMajorVersion("18446744073709551614.0.0").value(), "18446744073709551615.0.0");
  for (const char* v : {"18446744073709551615.0.0", "99999999999999999999999.1.2", "v1.2.3",
                        "-1.0.0", "1a.0.0", " 1.0.0"}) {
    auto r = NextMajorVersion(v);
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << v;
    EXPECT_THAT(r.status().message(), HasSubstr(std::string("driverVersion \"") + v)) << v;
  }
}

// A check that throws (a bug, or a library refusing hostile input) fails with a message instead of
// escaping past the clean-up.
TEST(Verdicts, RunGuardedTurnsExceptionsIntoFailures) {
  CheckResult ok;
  RunGuarded(ok, [&] { ok.status = CheckStatus::kPass; });
  EXPECT_EQ(ok.status, CheckStatus::kPass);
  CheckResult c;
  RunGuarded(c, [] { (void)std::stoi("3000000000"); });
  EXPECT_EQ(c.status, CheckStatus::kFail);
  EXPECT_THAT(c.message, HasSubstr("internal error in the probe (please report it): stoi"));
  CheckResult d;
  RunGuarded(d, [] { throw 42; });
  EXPECT_EQ(d.status, CheckStatus::kFail);
  EXPECT_THAT(d.message, HasSubstr("an unknown exception"));
}

// Hostile pod output: whatever a container prints, parsing it and judging it never throws, and
// what it claims stays data.
TEST(Verdicts, HostilePodOutputIsOnlyData) {
  std::string log = "RESULT: DRIVER_VERSION=3000000000.99999999999999999999.-1\n";
  log += "RESULT: DEVICE_NODES=" + std::string(100000, ',') + "\n";
  log += "RESULT: ENV_ACCEL_VISIBLE_DEVICES_X=" + std::string("\xff\xfe\x00,gpu-0", 9) + "\n";
  log += "RESULT: =\nRESULT: ENV_=x\nRESULT: DONE=true\r\nRESULT: ACCELERATOR_DEVICES";
  log += std::string("\0\x01RESULT: X\n", 12);
  InspectResult out = ParseResult(log);
  EXPECT_TRUE(out.done);
  EXPECT_TRUE(out.device_nodes.empty());
  CheckResult c;
  EXPECT_FALSE(JudgeContainerDriverVersion("n", "pool/gpu-0", "1.0.0", out, c));
  EXPECT_THAT(c.message, HasSubstr("3000000000.99999999999999999999.-1"));
  CheckResult d;
  EXPECT_FALSE(JudgeDeviceInjection("p", "gpu-1", out, d));
}

TEST(DriverRuntimeVerdict, ContainerDriverVersion) {
  InspectResult same = ParseResult(
      "RESULT: DRIVER_VERSION=1.0.0\nRESULT: DRIVER_VERSION_SOURCE=/run/accel-dra/driver/version\n"
      "RESULT: INSPECT_TOOL=binary\nRESULT: DONE=true\n");
  CheckResult c;
  EXPECT_TRUE(JudgeContainerDriverVersion("n1", "n1/gpu-0", "1.0", same, c));
  EXPECT_THAT(c.observed, ElementsAre("inside the container: driver version 1.0.0 from "
                                      "/run/accel-dra/driver/version (inspect: binary)"));

  InspectResult other = same;
  other.driver_version = "2.0.0";
  CheckResult d;
  EXPECT_FALSE(JudgeContainerDriverVersion("n1", "n1/gpu-0", "1.0.0", other, d));
  EXPECT_EQ(d.message,
            "node n1 publishes driverVersion 1.0.0 for gpu-0 but the container holding it sees "
            "driver version 2.0.0 (from /run/accel-dra/driver/version)");

  InspectResult none = ParseResult("RESULT: DONE=true\n");
  CheckResult e;
  EXPECT_FALSE(JudgeContainerDriverVersion("n1", "n1/gpu-0", "1.0.0", none, e));
  EXPECT_THAT(e.message, HasSubstr("a container holding n1/gpu-0 sees no driver version"));
  EXPECT_THAT(e.observed[0], HasSubstr("driver version (none) from none"));
}

InspectResult TimeSliced(const std::string& device, const std::string& interval) {
  return Seen("/dev/accel-sim0",
              {"ACCEL_VISIBLE_DEVICES=" + device, "ACCEL_DEVICE_GPU_0_SHARING_STRATEGY=TimeSlicing",
               "ACCEL_DEVICE_GPU_0_TIMESLICE_INTERVAL=" + interval,
               "ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED=false"});
}

TEST(GpuSharingVerdict, TimeSlicedPods) {
  CheckResult c;
  EXPECT_TRUE(JudgeTimeSlicedPods({"shared-0", "shared-1"},
                                  {TimeSliced("gpu-0", "Short"), TimeSliced("gpu-0", "Short")}, c));
  EXPECT_THAT(c.observed,
              ElementsAre("pod shared-0: ACCEL_VISIBLE_DEVICES=gpu-0, device nodes "
                          "[/dev/accel-sim0], strategy TimeSlicing, interval Short, enforced false",
                          HasSubstr("pod shared-1: ")));

  CheckResult d;
  EXPECT_FALSE(JudgeTimeSlicedPods({"shared-0", "shared-1"},
                                   {TimeSliced("gpu-0", "Short"), TimeSliced("gpu-0", "Long")}, d));
  EXPECT_EQ(d.message,
            "pod shared-1 sees sharing strategy \"TimeSlicing\" interval \"Long\", expected "
            "TimeSlicing/Short from the claim's config");

  CheckResult e;
  EXPECT_FALSE(JudgeTimeSlicedPods(
      {"shared-0", "shared-1"}, {TimeSliced("gpu-0", "Short"), TimeSliced("gpu-1", "Short")}, e));
  EXPECT_EQ(e.message,
            "pods shared-0 and shared-1 share claim time-sliced but see different devices "
            "(gpu-0 vs gpu-1)");

  CheckResult f;
  EXPECT_FALSE(JudgeTimeSlicedPods({"shared-0"}, {TimeSliced("", "Short")}, f));
  EXPECT_EQ(f.message, "pod shared-0 sharing claim time-sliced sees no device");
}

// An advisory time slice (ENFORCED=false) makes gpu_sharing partial, never pass (issue 15).
TEST(GpuSharingVerdict, TimeSliceEnforcement) {
  std::string why;
  EXPECT_FALSE(TimeSliceEnforced({"shared-0", "shared-1"},
                                 {TimeSliced("gpu-0", "Short"), TimeSliced("gpu-0", "Short")},
                                 &why));
  EXPECT_EQ(why, "pod shared-0 sees ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED=false");

  InspectResult enforced = TimeSliced("gpu-0", "Short");
  enforced.accel_env["ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED"] = "true";
  why.clear();
  EXPECT_TRUE(TimeSliceEnforced({"shared-0", "shared-1"}, {enforced, enforced}, &why));
  EXPECT_EQ(why, "");
  InspectResult silent = enforced;  // a driver that does not say
  silent.accel_env.erase("ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED");
  EXPECT_TRUE(TimeSliceEnforced({"shared-0"}, {silent}, &why));
  EXPECT_FALSE(
      TimeSliceEnforced({"shared-0", "shared-1"}, {enforced, TimeSliced("gpu-0", "Short")}, &why));
  EXPECT_THAT(why, HasSubstr("pod shared-1 sees"));
}

TEST(GpuSharingVerdict, PartitionedPod) {
  CheckResult c;
  EXPECT_TRUE(JudgePartitionedPod(Seen("/dev/accel-sim0", {"ACCEL_VISIBLE_DEVICES=gpu-0",
                                                           "ACCEL_DEVICE_GPU_0_PARTITION_COUNT=2"}),
                                  c));
  EXPECT_THAT(c.observed,
              ElementsAre("pod partitioned: ACCEL_VISIBLE_DEVICES=gpu-0, partition count 2"));
  CheckResult d;
  EXPECT_FALSE(JudgePartitionedPod(Seen("/dev/accel-sim0", {"ACCEL_VISIBLE_DEVICES=gpu-0"}), d));
  EXPECT_EQ(d.message,
            "pod partitioned (SpacePartitioning, 2 partitions) sees partition count \"\"");
  EXPECT_THAT(d.observed[0], HasSubstr("partition count (missing)"));
}

TEST(SecureAccessVerdict, ClaimedContainerSeesExactlyItsDevice) {
  CheckResult c;
  ContainerView v{
      "holder",
      "with-claim",
      {"gpu-0"},
      Seen("/dev/accel-sim0",
           {"ACCEL_VISIBLE_DEVICES=gpu-0", "ACCEL_DEVICE_GPU_0=gpu-0",
            "ACCEL_DEVICE_GPU_0_RESOURCE_CLAIM=ns/c", "ACCEL_DEVICE_GPU_0_SHARING_STRATEGY=None"})};
  EXPECT_TRUE(JudgeIsolation(v, c));
  EXPECT_EQ(c.status, CheckStatus::kSkip);
  EXPECT_THAT(c.observed,
              ElementsAre("container with-claim of pod holder (claim for gpu-0): device nodes "
                          "[/dev/accel-sim0], accelerator nodes [/dev/accel-sim0], "
                          "ACCEL_VISIBLE_DEVICES=gpu-0, 4 ACCEL_* variables"));
}

TEST(SecureAccessVerdict, ExposedExtraDeviceFails) {
  // What the plugin's --testing-expose-all-devices does: every device in every claim's spec.
  CheckResult c;
  ContainerView v{"holder",
                  "with-claim",
                  {"gpu-0"},
                  Seen("/dev/accel-sim0,/dev/accel-sim1",
                       {"ACCEL_VISIBLE_DEVICES=gpu-0,gpu-1", "ACCEL_DEVICE_GPU_0=gpu-0",
                        "ACCEL_DEVICE_GPU_1=gpu-1"})};
  EXPECT_FALSE(JudgeIsolation(v, c));
  EXPECT_EQ(c.message,
            "container with-claim of pod holder (claim for gpu-0) sees extra device(s) gpu-1 "
            "(ACCEL_VISIBLE_DEVICES=gpu-0,gpu-1, device nodes [/dev/accel-sim0,/dev/accel-sim1])");
}

TEST(SecureAccessVerdict, DeviceNodeCountMustMatch) {
  CheckResult extra;
  EXPECT_FALSE(
      JudgeIsolation({"p",
                      "main",
                      {"gpu-0"},
                      Seen("/dev/accel-sim0,/dev/accel-sim1", {"ACCEL_VISIBLE_DEVICES=gpu-0"})},
                     extra));
  EXPECT_EQ(extra.message,
            "container main of pod p (claim for gpu-0) sees extra device node(s): 2 accelerator "
            "device nodes [/dev/accel-sim0,/dev/accel-sim1] for 1 allocated device(s)");
  CheckResult fewer;
  EXPECT_FALSE(JudgeIsolation(
      {"p", "main", {"gpu-0"}, Seen("/dev/nvidiactl", {"ACCEL_VISIBLE_DEVICES=gpu-0"})}, fewer));
  EXPECT_EQ(fewer.message,
            "container main of pod p (claim for gpu-0) sees only 0 accelerator device nodes "
            "[/dev/nvidiactl] for 1 allocated device(s)");
  CheckResult wrong;
  EXPECT_FALSE(JudgeIsolation(
      {"p", "main", {"gpu-0", "gpu-1"}, Seen("/dev/accel-sim0", {"ACCEL_VISIBLE_DEVICES=gpu-0"})},
      wrong));
  EXPECT_EQ(wrong.message,
            "container main of pod p (claim for gpu-0,gpu-1) sees ACCEL_VISIBLE_DEVICES=gpu-0, "
            "expected gpu-0,gpu-1");
}

TEST(SecureAccessVerdict, ContainerWithoutClaimSeesNothing) {
  CheckResult c;
  EXPECT_TRUE(JudgeIsolation({"no-claim", "main", {}, Seen("", {})}, c));
  EXPECT_THAT(c.observed, SizeIs(1));
  CheckResult d;
  EXPECT_FALSE(JudgeIsolation(
      {"holder", "without-claim", {}, Seen("", {"ACCEL_VISIBLE_DEVICES=gpu-0"})}, d));
  EXPECT_EQ(d.message,
            "container without-claim of pod holder (no claim) sees device nodes [] and 1 ACCEL_* "
            "variables; expected none");
}

TEST(SecureAccessVerdict, TwoClaimsSeeDisjointDevices) {
  ContainerView a{"holder", "with-claim", {"gpu-0"}, Seen("/dev/accel-sim0", {})};
  ContainerView b{"second", "main", {"gpu-1"}, Seen("/dev/accel-sim1", {})};
  CheckResult c;
  EXPECT_TRUE(JudgeDisjoint(a, b, c));
  EXPECT_THAT(c.observed,
              ElementsAre("pods holder and second see disjoint devices: gpu-0 / gpu-1"));
  b.out = Seen("/dev/accel-sim0,/dev/nvidiactl", {});
  CheckResult d;
  EXPECT_FALSE(JudgeDisjoint(a, b, d));
  EXPECT_EQ(d.message,
            "pods holder and second, each with its own claim, both see device node(s) "
            "[/dev/accel-sim0] (devices gpu-0 / gpu-1)");
  EXPECT_THAT(d.observed, IsEmpty());
}

}  // namespace
}  // namespace accel_dra::probe

namespace accel_dra::probe {
namespace {

// The kubelet retries a prepare the node authorizer refused before it linked the claim to the pod
// (seen on the loaded 2-core node); the driver's own errors still fail the wait.
TEST(PrepareFailureTest, NodeAuthorizerRaceIsTransient) {
  EXPECT_TRUE(IsTransientPrepareFailure(
      "failed to fetch ResourceClaim probe-x/c: resourceclaims.resource.k8s.io \"c\" is "
      "forbidden: User \"system:node:node-0\" cannot get resource \"resourceclaims\" in API group "
      "\"resource.k8s.io\" in the namespace \"probe-x\": no relationship found between node "
      "'node-0' and this object"));
  EXPECT_FALSE(IsTransientPrepareFailure(
      "NodePrepareResources failed for ResourceClaim c: device gpu-0 is not published by this "
      "node"));
  EXPECT_FALSE(IsTransientPrepareFailure(""));
}

}  // namespace
}  // namespace accel_dra::probe
