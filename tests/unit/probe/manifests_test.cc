// The objects accel-dra-probe creates: CEL, DeviceClass, claims, pods, and the shell fallback.

#include "accel_dra/probe/manifests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "accel_dra/config/device_config.h"
#include "accel_dra/probe/inspect.h"
#include "accel_dra/probe/runner.h"
#include "run_command.h"

namespace accel_dra::probe {
namespace {
using ::testing::HasSubstr;

TEST(ProbeCel, DriverAndMinimumVersion) {
  EXPECT_EQ(DriverCel("accel-dra.dev"), R"(device.driver == "accel-dra.dev")");
  EXPECT_EQ(MinDriverVersionCel("accel-dra.dev", "1.2.0"),
            R"(device.attributes["accel-dra.dev"].driverVersion.compareTo(semver("1.2.0")) >= 0)");
}

TEST(ProbeManifests, DeviceClassAndClaims) {
  Json cls = DeviceClassManifest("c1", {DriverCel("d"), "true"}, "ns1");
  EXPECT_EQ(cls["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(cls["kind"], "DeviceClass");
  EXPECT_EQ(cls["metadata"]["labels"]["accel-dra.dev/probe"], "ns1");
  ASSERT_EQ(cls["spec"]["selectors"].size(), 2u);
  EXPECT_EQ(cls["spec"]["selectors"][0]["cel"]["expression"], R"(device.driver == "d")");

  Json t = ClaimTemplateManifest("t1", "c1", 3, "ns1");
  EXPECT_EQ(t["kind"], "ResourceClaimTemplate");
  const Json& req = t["spec"]["spec"]["devices"]["requests"][0];
  EXPECT_EQ(req["name"], "accel");
  EXPECT_EQ(req["exactly"]["deviceClassName"], "c1");
  EXPECT_EQ(req["exactly"]["count"], 3);

  Json claim = ClaimManifest("x", "c1", 1, SharingConfig("d", "TimeSlicing", "Short", 0), "ns1");
  const Json& cfg = claim["spec"]["devices"]["config"][0];
  EXPECT_EQ(cfg["requests"], Json::array({"accel"}));
  EXPECT_EQ(cfg["opaque"]["driver"], "d");
  auto parsed = config::ParseDeviceConfig(cfg["opaque"]["parameters"]);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->strategy, config::SharingStrategy::kTimeSlicing);
  EXPECT_EQ(parsed->interval, config::TimeSliceInterval::kShort);

  auto part = config::ParseDeviceConfig(
      SharingConfig("d", "SpacePartitioning", "", 2)["opaque"]["parameters"]);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(part->strategy, config::SharingStrategy::kSpacePartitioning);
  EXPECT_FALSE(ClaimManifest("y", "c1", 1, nullptr, "ns1")["spec"]["devices"].contains("config"));
}

TEST(ProbeManifests, PodsAreUnprivilegedAndQuick) {
  PodSpec s;
  s.name = "p";
  s.image = "busybox";
  s.containers = {{"with-claim", true}, {"without-claim", false}};
  s.claim_template = "t1";
  s.node_selector = {{"kubernetes.io/hostname", "n1"}};
  s.label_value = "ns1";
  Json pod = PodManifest(s);
  EXPECT_EQ(pod["spec"]["terminationGracePeriodSeconds"], 1);
  EXPECT_EQ(pod["spec"]["resourceClaims"][0]["resourceClaimTemplateName"], "t1");
  EXPECT_EQ(pod["spec"]["nodeSelector"]["kubernetes.io/hostname"], "n1");
  EXPECT_EQ(pod["spec"]["containers"][0]["resources"]["claims"][0]["name"], "accel");
  EXPECT_FALSE(pod["spec"]["containers"][1].contains("resources"));
  EXPECT_FALSE(pod["spec"].contains("volumes"));
  std::string why;
  EXPECT_FALSE(PodUsesPrivilegeOrHostPath(pod, &why)) << why;
  EXPECT_THAT(pod["spec"]["containers"][0]["command"][2].get<std::string>(),
              HasSubstr("/usr/local/bin/accel-dra-inspect"));

  s.claim_template.clear();
  s.claim_name = "shared";
  EXPECT_EQ(PodManifest(s)["spec"]["resourceClaims"][0]["resourceClaimName"], "shared");
  s.claim_name.clear();
  EXPECT_FALSE(PodManifest(s)["spec"].contains("resourceClaims"));

  Json bad = pod;
  bad["spec"]["volumes"] = Json::array({{{"name", "h"}, {"hostPath", {{"path", "/"}}}}});
  EXPECT_TRUE(PodUsesPrivilegeOrHostPath(bad, &why));
  EXPECT_THAT(why, HasSubstr("hostPath"));
  bad = pod;
  bad["spec"]["containers"][0]["securityContext"]["privileged"] = true;
  EXPECT_TRUE(PodUsesPrivilegeOrHostPath(bad, &why));
  EXPECT_THAT(why, HasSubstr("with-claim"));
}

TEST(ProbeVersions, NumericPrefixComparison) {
  EXPECT_EQ(CompareVersions("1.0.0", "1.0.0"), 0);
  EXPECT_EQ(CompareVersions("v1.0", "1.0.0"), 0);
  EXPECT_LT(CompareVersions("550.54.15", "550.100.0"), 0);
  EXPECT_GT(CompareVersions("2.0.0", "1.99.99"), 0);
  EXPECT_EQ(CompareVersions("2.2.9", "2.2.9-rc1"), 0);
}

// The shell fallback prints the same keys as the tool; run it with the host's sh.
TEST(ProbeShellFallback, PrintsParseableResults) {
  std::string script = ShellInspectScript();
  std::string path = ::testing::TempDir() + "/probe-fallback.sh";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(script.c_str(), f);
  std::fclose(f);
  int rc = 0;
  std::string out =
      testing::RunCommand("env -i PATH=/usr/bin:/bin ACCEL_VISIBLE_DEVICES=gpu-9 sh " + path, &rc);
  EXPECT_EQ(rc, 0) << out;
  InspectResult r = ParseResult(out);
  EXPECT_TRUE(r.done) << out;
  EXPECT_EQ(r.tool, "shell");
  EXPECT_EQ(r.accel_env["ACCEL_VISIBLE_DEVICES"], "gpu-9");
  EXPECT_THAT(out, HasSubstr("RESULT: ACCEL_ENV_COUNT=1\n"));
  for (const char* key : {"INSPECT_VERSION=1", "HOSTNAME=", "DEVICE_NODE_COUNT=", "DEVICE_NODES=",
                          "ACCELERATOR_COUNT=", "ACCELERATOR_DEVICES=", "DRIVER_VERSION=",
                          "DRIVER_VERSION_SOURCE=", "RUNTIME_VERSION="}) {
    EXPECT_THAT(out, HasSubstr(std::string("RESULT: ") + key)) << key;
  }
  for (const auto& d : r.device_nodes) {
    EXPECT_FALSE(IsRuntimeDefaultDevice(d)) << d;
  }
}

}  // namespace
}  // namespace accel_dra::probe

namespace accel_dra::probe {
namespace {

TEST(ProbeOptions, ValidationNamesTheOption) {
  RunOptions o;
  EXPECT_TRUE(ValidateRunOptions(o).ok());
  o.only = {"gpu_sharing", "no_such_check"};
  Status st = ValidateRunOptions(o);
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("--only: unknown check \"no_such_check\""));
  EXPECT_THAT(st.message(), HasSubstr("secure_accelerator_access"));
  o.only.clear();
  o.sharing_pods = 1;
  EXPECT_THAT(ValidateRunOptions(o).message(), HasSubstr("--sharing-pods"));
}

}  // namespace
}  // namespace accel_dra::probe
