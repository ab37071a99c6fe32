// The evidence's test environment (nodes, device groups, the simulated marker, attributes a newer
// driver adds such as runtimeVersion) and its raw outputs (commands, excerpts, limits).

#include "accel_dra/probe/evidence.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace accel_dra::probe {
namespace {
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Json NodeObject(const std::string& name) {
  return {{"metadata", {{"name", name}}},
          {"status",
           {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"nodeInfo",
             {{"kubeletVersion", "v1.37.2"},
              {"osImage", "Debian GNU/Linux 12 (bookworm)"},
              {"kernelVersion", "6.1.0-40-amd64"},
              {"architecture", "amd64"},
              {"containerRuntimeVersion", "containerd://2.2.9"}}}}}};
}

Json Device(const std::string& name, const std::string& product, const std::string& driver,
            const std::string& runtime, bool simulated) {
  Json attrs = {{"productName", {{"string", product}}},
                {"vendor", {{"string", simulated ? "simulated" : "nvidia"}}},
                {"driverVersion", {{"version", driver}}}};
  if (!runtime.empty()) attrs["accel-dra.dev/runtimeVersion"] = {{"version", runtime}};
  if (simulated) attrs["simulated"] = {{"bool", true}};
  return {{"name", name}, {"attributes", attrs}};
}

Json Slice(const std::string& node, const std::vector<Json>& devices) {
  return {{"metadata", {{"name", node + "-accel-dra.dev-x1"}}},
          {"spec",
           {{"driver", "accel-dra.dev"},
            {"nodeName", node},
            {"pool", {{"name", node}, {"generation", 1}, {"resourceSliceCount", 1}}},
            {"devices", devices}}}};
}

TEST(ProbeEvidence, EnvironmentGroupsDevicesPerNode) {
  auto inv =
      BuildClusterInventory({NodeObject("n1"), NodeObject("n2")}, nullptr,
                            {Slice("n2", {Device("gpu-0", "H100", "550.54.15", "12.4.0", false)}),
                             Slice("n1", {Device("gpu-0", "Sim 80GB", "1.2.0", "", true),
                                          Device("gpu-1", "Sim 80GB", "1.2.0", "", true),
                                          Device("gpu-2", "Sim 40GB", "1.2.0", "", true)})});
  Environment env = DescribeEnvironment(inv, "accel-dra.dev");
  ASSERT_EQ(env.nodes.size(), 2u);
  const NodeEnvironment& n1 = env.nodes[0];
  EXPECT_EQ(n1.name, "n1");
  EXPECT_EQ(n1.kubelet_version, "v1.37.2");
  EXPECT_EQ(n1.os_image, "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(n1.kernel_version, "6.1.0-40-amd64");
  EXPECT_EQ(n1.container_runtime, "containerd://2.2.9");
  ASSERT_EQ(n1.devices.size(), 2u);
  EXPECT_EQ(n1.devices[0].product, "Sim 80GB");
  EXPECT_THAT(n1.devices[0].devices, ElementsAre("gpu-0", "gpu-1"));
  EXPECT_TRUE(n1.devices[0].simulated);
  EXPECT_EQ(n1.devices[0].runtime_version, "");
  EXPECT_EQ(n1.devices[1].product, "Sim 40GB");
  // runtimeVersion, read by name (here driver-qualified) like every attribute.
  EXPECT_EQ(env.nodes[1].devices[0].runtime_version, "12.4.0");
  EXPECT_FALSE(env.nodes[1].devices[0].simulated);
  EXPECT_TRUE(env.Simulated());

  Report r;
  r.driver = "accel-dra.dev";
  r.server_version = "v1.37.2";
  r.environment = env;
  auto lines = EnvironmentLines(r);
  EXPECT_EQ(lines[0], "Kubernetes server: v1.37.2");
  EXPECT_EQ(lines[1],
            "Node n1: kubelet v1.37.2, OS Debian GNU/Linux 12 (bookworm), kernel 6.1.0-40-amd64, "
            "amd64, container runtime containerd://2.2.9");
  EXPECT_EQ(
      lines[2],
      "  2 x Sim 80GB (vendor simulated, simulated): driverVersion 1.2.0, runtimeVersion (not "
      "published) [gpu-0, gpu-1]");
  EXPECT_THAT(lines[5], HasSubstr("1 x H100 (vendor nvidia): driverVersion 550.54.15, "
                                  "runtimeVersion 12.4.0 [gpu-0]"));
  EXPECT_THAT(lines.back(), HasSubstr("Devices: simulated"));

  r.environment.nodes.erase(r.environment.nodes.begin());  // only the real node
  EXPECT_FALSE(r.environment.Simulated());
  for (const auto& line : EnvironmentLines(r))
    EXPECT_THAT(line, ::testing::Not(HasSubstr("simul")));
}

TEST(ProbeEvidence, RawOutputsNameTheirCommand) {
  RawOutput s =
      SlicesOutput({Slice("n1", {Device("gpu-0", "Sim", "1.2.0", "", true)})}, "accel-dra.dev");
  EXPECT_EQ(s.command,
            "kubectl get resourceslices --field-selector spec.driver=accel-dra.dev -o json");
  auto j = Json::parse(s.output);
  EXPECT_EQ(j[0]["nodeName"], "n1");
  EXPECT_EQ(j[0]["devices"][0]["attributes"]["driverVersion"]["version"], "1.2.0");

  Json claim = {{"metadata", {{"name", "time-sliced"}, {"namespace", "probe-x"}}},
                {"spec", {{"devices", Json::object()}}},
                {"status", {{"reservedFor", Json::array({{{"name", "shared-0"}}})}}}};
  RawOutput c = ClaimOutput(claim);
  EXPECT_EQ(c.command, "kubectl get resourceclaim time-sliced -n probe-x -o json");
  EXPECT_EQ(Json::parse(c.output)["status"]["reservedFor"][0]["name"], "shared-0");
  EXPECT_FALSE(Json::parse(c.output).contains("spec"));

  RawOutput l = LogsOutput("probe-x", "holder", "main", "RESULT: DONE=true\n");
  EXPECT_EQ(l.command, "kubectl logs -n probe-x holder -c main");
  EXPECT_EQ(l.output, "RESULT: DONE=true\n");
  RawOutput big = LogsOutput("ns", "p", "c", std::string(kRawOutputLimit + 10, 'x'));
  EXPECT_THAT(big.output, HasSubstr("(cut: 10 of " + std::to_string(kRawOutputLimit + 10)));

  CheckResult r;
  RecordRaw(r, l);
  RecordRaw(r, c);
  RecordRaw(r, LogsOutput("probe-x", "holder", "main", "newer\n"));
  ASSERT_EQ(r.raw.size(), 2u);
  EXPECT_EQ(r.raw[0].output, "newer\n");
}

}  // namespace
}  // namespace accel_dra::probe
