// CDI spec model: minimum versions, names, validation, JSON rendering and parsing.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {
namespace {

Spec MinimalSpec() {
  Spec s;
  s.kind = "k8s.accel-dra.dev/device";
  Device d;
  d.name = "accel-0";
  d.container_edits.env = {"A=1"};
  s.devices.push_back(d);
  return s;
}

DeviceNode Node(std::string path) {
  DeviceNode n;
  n.path = std::move(path);
  return n;
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- MinimumVersion ----------------------------------------------------------------------------

TEST(CdiMinimumVersion, NeverBelowFloor) { EXPECT_EQ(MinimumVersion(MinimalSpec()), "0.5.0"); }

TEST(CdiMinimumVersion, MountTypeNeeds040ButFloorWins) {
  Spec s = MinimalSpec();
  s.devices[0].container_edits.mounts.push_back({"/a", "/b", {}, "tmpfs"});
  EXPECT_EQ(MinimumVersion(s), "0.5.0");
}

TEST(CdiMinimumVersion, HostPathAndDigitNameNeed050) {
  Spec s = MinimalSpec();
  s.devices[0].name = "1234-accel-0";
  EXPECT_EQ(MinimumVersion(s), "0.5.0");
  Spec h = MinimalSpec();
  DeviceNode n;
  n.path = "/dev/accel0";
  n.host_path = "/dev/real0";
  h.container_edits.device_nodes.push_back(n);
  EXPECT_EQ(MinimumVersion(h), "0.5.0");
}

TEST(CdiMinimumVersion, AnnotationsAndDottedClassNeed060) {
  Spec s = MinimalSpec();
  s.annotations["a.b/c"] = "d";
  EXPECT_EQ(MinimumVersion(s), "0.6.0");
  Spec d = MinimalSpec();
  d.devices[0].annotations["x"] = "y";
  EXPECT_EQ(MinimumVersion(d), "0.6.0");
  Spec k = MinimalSpec();
  k.kind = "k8s.accel-dra.dev/dev.ice";
  EXPECT_EQ(MinimumVersion(k), "0.6.0");
  // Dots in the vendor are fine at any version.
  EXPECT_EQ(MinimumVersion(MinimalSpec()), "0.5.0");
}

TEST(CdiMinimumVersion, GidsAndIntelRdtNeed070) {
  Spec s = MinimalSpec();
  s.devices[0].container_edits.additional_gids = {44};
  EXPECT_EQ(MinimumVersion(s), "0.7.0");
  Spec r = MinimalSpec();
  r.container_edits.intel_rdt = IntelRdt{"c", "", "", {}, false};
  EXPECT_EQ(MinimumVersion(r), "0.7.0");
  r.container_edits.intel_rdt->schemata = {"L3:0=f"};
  EXPECT_EQ(MinimumVersion(r), "1.1.0");
}

TEST(CdiMinimumVersion, NetDevicesNeed110AndHighestRuleWins) {
  Spec s = MinimalSpec();
  s.annotations["a"] = "b";
  s.devices[0].container_edits.net_devices.push_back({"eth1", "net1"});
  s.devices[0].container_edits.additional_gids = {1};
  EXPECT_EQ(MinimumVersion(s), "1.1.0");
}

TEST(CdiVersions, CompareAndKnown) {
  EXPECT_LT(CompareVersions("0.5.0", "0.6.0"), 0);
  EXPECT_GT(CompareVersions("1.0.0", "0.8.0"), 0);
  EXPECT_GT(CompareVersions("0.10.0", "0.9.0"), 0);
  EXPECT_EQ(CompareVersions("1.1.0", "1.1.0"), 0);
  EXPECT_TRUE(IsKnownVersion("0.3.0"));
  EXPECT_TRUE(IsKnownVersion("1.1.0"));
  EXPECT_FALSE(IsKnownVersion("0.9.0"));
  EXPECT_FALSE(IsKnownVersion(""));
}

// ---- Names -------------------------------------------------------------------------------------

TEST(CdiNames, DriverNaming) {
  EXPECT_EQ(VendorForDriver("accel-dra.dev"), "k8s.accel-dra.dev");
  EXPECT_EQ(KindForDriver("accel-dra.dev"), "k8s.accel-dra.dev/device");
  EXPECT_EQ(ClaimDeviceName("6f1c-uid", "accel-0").value(), "6f1c-uid-accel-0");
  EXPECT_EQ(ClaimDeviceId("accel-dra.dev", "6f1c-uid", "accel-0").value(),
            "k8s.accel-dra.dev/device=6f1c-uid-accel-0");
  EXPECT_EQ(ClaimSpecFileName("accel-dra.dev", "6f1c-uid").value(),
            "k8s.accel-dra.dev-device_6f1c-uid.json");
  EXPECT_EQ(EnvKeyForDevice("accel-0"), "ACCEL_0");
  EXPECT_EQ(EnvKeyForDevice("Accel.1:x"), "ACCEL_1_X");
}

TEST(CdiNames, ValidNames) {
  EXPECT_TRUE(ValidateVendorName("k8s.accel-dra.dev").ok());
  EXPECT_TRUE(ValidateVendorName("a").ok());
  EXPECT_TRUE(ValidateClassName("device").ok());
  EXPECT_TRUE(ValidateClassName("dev.ice_2").ok());
  EXPECT_TRUE(ValidateDeviceName("0").ok());
  EXPECT_TRUE(ValidateDeviceName("4b6e5c1a-0d6f-4d3e-9c1b-2f7e1a9b8c7d-accel-0").ok());
  EXPECT_TRUE(ValidateDeviceName("a:b.c_d-e").ok());
  EXPECT_TRUE(ValidateKind("vendor.com/class").ok());
}

TEST(CdiNames, InvalidNamesSayWhy) {
  struct Case {
    Status st;
    std::string_view expect;
  };
  const Case cases[] = {
      {ValidateVendorName(""), "empty"},
      {ValidateVendorName("1vendor"), "must start with a letter"},
      {ValidateVendorName("vendor-"), "must end with a letter or digit"},
      {ValidateVendorName("ven/dor"), "'/' at position 3 is not allowed"},
      {ValidateClassName("cl ass"), "' ' at position 2 is not allowed"},
      {ValidateClassName(std::string(64, 'a')), "longer than 63"},
      {ValidateDeviceName("-dev"), "must start with a letter or digit"},
      {ValidateDeviceName("dev/0"), "'/' at position 3"},
      {ValidateDeviceName("dev_"), "must end with a letter or digit"},
      {ValidateDeviceName("d\x01x"), "byte 0x01"},
      {ValidateKind("vendor.com"), "exactly one '/'"},
      {ValidateKind("a/b/c"), "exactly one '/'"},
      {ValidateKind("a/1b"), "invalid CDI class \"1b\""},
      {ValidateClaimUid(""), "empty"},
      {ValidateClaimUid("../etc"), "invalid claim UID"},
      {ClaimDeviceName("uid", "accel/0").status(), "cannot be named in CDI"},
      {ClaimDeviceName("uid", "").status(), "empty"},
      {QualifiedDeviceId("bad", "x").status(), "exactly one '/'"},
      {ClaimSpecFileName("accel-dra.dev", "a/b").status(), "invalid claim UID"},
      {ClaimSpecFileName("bad driver", "uid").status(), "not allowed"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.st.code(), Code::kInvalidArgument) << c.st.ToString();
    EXPECT_TRUE(Contains(c.st.message(), c.expect)) << c.st.message() << " lacks " << c.expect;
  }
}

// ---- Validation --------------------------------------------------------------------------------

TEST(CdiValidate, RejectsWhatRuntimesReject) {
  auto expect_invalid = [](const Spec& s, std::string_view what) {
    Status st = Validate(s);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << what;
    EXPECT_TRUE(Contains(st.message(), what)) << st.message() << " lacks " << what;
    EXPECT_FALSE(ToJson(s).ok());
  };
  EXPECT_TRUE(Validate(MinimalSpec()).ok());

  Spec s = MinimalSpec();
  s.devices.clear();
  expect_invalid(s, "no devices");
  s = MinimalSpec();
  s.devices.push_back(s.devices[0]);
  expect_invalid(s, "appears twice");
  s = MinimalSpec();
  s.devices[0].container_edits = {};
  expect_invalid(s, "no container edits");
  s = MinimalSpec();
  s.devices[0].container_edits.env = {"=x"};
  expect_invalid(s, "invalid environment variable");
  s = MinimalSpec();
  s.container_edits.env = {"NOEQUALS"};
  expect_invalid(s, "invalid environment variable");
  s = MinimalSpec();
  s.devices[0].container_edits.device_nodes.push_back(Node("/dev/x"));
  s.devices[0].container_edits.device_nodes.back().type = "z";
  expect_invalid(s, "invalid type");
  s = MinimalSpec();
  s.devices[0].container_edits.device_nodes.push_back(Node("/dev/x"));
  s.devices[0].container_edits.device_nodes.back().permissions = "rwx";
  expect_invalid(s, "invalid permissions");
  s = MinimalSpec();
  s.devices[0].container_edits.device_nodes.push_back(Node(""));
  expect_invalid(s, "empty path");
  s = MinimalSpec();
  s.devices[0].container_edits.hooks.push_back(Hook{"preStart", "/bin/true", {}, {}, std::nullopt});
  expect_invalid(s, "invalid hook name");
  s = MinimalSpec();
  s.devices[0].container_edits.mounts.push_back(Mount{"/a", "", {}, ""});
  expect_invalid(s, "empty containerPath");
  s = MinimalSpec();
  s.cdi_version = "0.4.0";
  expect_invalid(s, "needs 0.5.0");
  s = MinimalSpec();
  s.cdi_version = "9.9.9";
  expect_invalid(s, "unknown cdiVersion");
  s = MinimalSpec();
  s.kind = "nokind";
  expect_invalid(s, "exactly one '/'");
}

// ---- JSON --------------------------------------------------------------------------------------

TEST(CdiJson, OmitsEmptyFieldsAndWritesMinimumVersion) {
  auto json = ToJson(MinimalSpec());
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(*json,
            "{\n"
            "  \"cdiVersion\": \"0.5.0\",\n"
            "  \"kind\": \"k8s.accel-dra.dev/device\",\n"
            "  \"devices\": [\n"
            "    {\n"
            "      \"name\": \"accel-0\",\n"
            "      \"containerEdits\": {\n"
            "        \"env\": [\n"
            "          \"A=1\"\n"
            "        ]\n"
            "      }\n"
            "    }\n"
            "  ]\n"
            "}\n");
}

Spec FullSpec() {
  Spec s = MinimalSpec();
  s.cdi_version = "1.1.0";
  s.annotations = {{"z", "1"}, {"a", "2"}};
  s.container_edits.env = {"COMMON=1"};
  s.container_edits.hooks.push_back(
      {"createContainer", "/usr/bin/hook", {"hook", "--x"}, {"K=V"}, 5});
  auto& e = s.devices[0].container_edits;
  e.device_nodes.push_back({"/dev/accel0", "/dev/real0", "c", 241, 0, 0660, "rw", 0, 44});
  e.mounts.push_back({"/host/lib", "/usr/lib/accel", {"ro", "bind"}, "bind"});
  e.additional_gids = {44, 45};
  e.intel_rdt = IntelRdt{"clos", "L3:0=f", "MB:0=50", {"L3:0=f"}, true};
  e.net_devices.push_back({"eth1", "net1"});
  s.devices[0].annotations = {{"k", "v"}};
  return s;
}

TEST(CdiJson, AllFieldsUseCdiKeys) {
  auto json = ToJson(FullSpec());
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  auto j = nlohmann::json::parse(*json);
  EXPECT_EQ(j["cdiVersion"], "1.1.0");
  EXPECT_EQ(j["annotations"]["a"], "2");
  const auto& node = j["devices"][0]["containerEdits"]["deviceNodes"][0];
  EXPECT_EQ(node["path"], "/dev/accel0");
  EXPECT_EQ(node["hostPath"], "/dev/real0");
  EXPECT_EQ(node["type"], "c");
  EXPECT_EQ(node["major"], 241);
  EXPECT_EQ(node["minor"], 0);  // set explicitly, so written even though zero
  EXPECT_EQ(node["fileMode"], 0660);
  EXPECT_EQ(node["permissions"], "rw");
  EXPECT_EQ(node["uid"], 0);
  EXPECT_EQ(node["gid"], 44);
  const auto& mount = j["devices"][0]["containerEdits"]["mounts"][0];
  EXPECT_EQ(mount["hostPath"], "/host/lib");
  EXPECT_EQ(mount["containerPath"], "/usr/lib/accel");
  EXPECT_EQ(mount["type"], "bind");
  EXPECT_EQ(j["containerEdits"]["hooks"][0]["hookName"], "createContainer");
  EXPECT_EQ(j["containerEdits"]["hooks"][0]["timeout"], 5);
  EXPECT_EQ(j["devices"][0]["containerEdits"]["additionalGids"][1], 45);
  EXPECT_EQ(j["devices"][0]["containerEdits"]["intelRdt"]["closID"], "clos");
  EXPECT_EQ(j["devices"][0]["containerEdits"]["netDevices"][0]["hostInterfaceName"], "eth1");
}

TEST(CdiJson, DeterministicBytes) {
  Spec a = FullSpec();
  Spec b = FullSpec();
  // Same content, annotations inserted in another order.
  b.annotations.clear();
  b.annotations["a"] = "2";
  b.annotations["z"] = "1";
  auto ja = ToJson(a);
  auto jb = ToJson(b);
  ASSERT_TRUE(ja.ok() && jb.ok());
  EXPECT_EQ(*ja, *jb);
  EXPECT_EQ(*ja, ToJson(a).value());
}

TEST(CdiJson, RoundTrip) {
  Spec s = FullSpec();
  auto json = ToJson(s);
  ASSERT_TRUE(json.ok());
  auto back = ParseJson(*json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(ToJson(*back).value(), *json);
}

TEST(CdiJson, ParseIsStrict) {
  auto expect_error = [](std::string_view text, std::string_view what) {
    auto r = ParseJson(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(r.status().message(), what)) << r.status().message() << " lacks " << what;
  };
  expect_error("{", "not valid JSON");
  expect_error("[]", "must be an object");
  expect_error(
      R"({"cdiVersion":"0.5.0","kind":"a/b","devices":[{"name":"x","containerEdits":{"env":["A=1"]}}],"extra":1})",
      "extra: unknown field");
  expect_error(
      R"({"cdiVersion":"0.5.0","kind":"a/b","devices":[{"name":"x","containerEdits":{"env":["A=1"],"deviceNodes":[{"path":"/d","mjor":1}]}}]})",
      "devices[0].containerEdits.deviceNodes[0].mjor: unknown field");
  expect_error(
      R"({"cdiVersion":"0.5.0","kind":"a/b","devices":[{"name":"x","containerEdits":{"env":"A=1"}}]})",
      "must be an array of strings");
  expect_error(R"({"cdiVersion":"0.5.0","kind":"a/b"})", "devices: required");
  expect_error(R"({"kind":"a/b","devices":[]})", "cdiVersion: required");
  expect_error(
      R"({"cdiVersion":"0.5.0","kind":"a/b","devices":[{"name":"x","containerEdits":{"deviceNodes":[{"path":"/d","uid":-1}]}}]})",
      "uid: is out of range");
  expect_error(
      R"({"cdiVersion":"0.3.0","kind":"a/b","devices":[{"name":"1x","containerEdits":{"env":["A=1"]}}]})",
      "needs 0.5.0");
}

}  // namespace
}  // namespace accel_dra::cdi
