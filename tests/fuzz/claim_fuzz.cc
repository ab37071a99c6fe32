// Fuzz target: a ResourceClaim as the claims core reads it (src/claims/prepare.cc: the claim and
// its allocation turned into prepared-device records, the CDI spec and the checkpoint entry).
//
// Input: the ResourceClaim JSON the apiserver would answer. The claim is prepared by a real
// Preparer over a canned simulated inventory (8 GPUs of node-a, device nodes, a driver version
// mount, half of them with nvidia-smi time slicing through a fake CommandRunner), a real
// checkpoint and CDI writer in a private directory under /dev/shm; no apiserver. Another claim
// holds gpu-0 exclusively the whole time.
// Promises checked (claims/preparer.h): nothing crashes or throws; a prepared claim has its
// checkpoint entry (PrepareCompleted) and a CDI spec, only devices the inventory publishes, and
// never gpu-0 unless with admin access; a failed prepare leaves neither entry nor spec; an
// unprepare removes both; the claim holding gpu-0 keeps it.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/checkpoint/checkpoint.h"
#include "accel_dra/claims/preparer.h"
#include "accel_dra/common/command.h"
#include "accel_dra/common/env.h"
#include "accel_dra/discovery/simulated.h"
#include "fuzz_support.h"

namespace fs = std::filesystem;
namespace claims = accel_dra::claims;
using accel_dra::fuzz::Check;
using Json = nlohmann::json;

namespace {

constexpr const char* kDriver = "accel-dra.dev";
constexpr const char* kNode = "node-a";
constexpr const char* kHolderUid = "0b1d6c2e-5f3a-4e71-9c8d-1a2b3c4d5e00";
constexpr const char* kBootId = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

// nvidia-smi always succeeds.
class FakeRunner : public accel_dra::CommandRunner {
 public:
  accel_dra::Expected<accel_dra::CommandResult> Run(const std::vector<std::string>&,
                                                    std::chrono::milliseconds) override {
    return accel_dra::CommandResult{0, ""};
  }
};

struct World {
  fs::path dir;
  FakeRunner runner;
  accel_dra::model::InventoryPtr inventory;
  std::unique_ptr<accel_dra::checkpoint::Checkpoint> checkpoint;
  std::unique_ptr<accel_dra::cdi::CdiWriter> writer;
  std::unique_ptr<claims::Preparer> preparer;
  Json current;  // the claim the getter answers
};
World* g_world = nullptr;

accel_dra::model::InventoryPtr MakeInventory() {
  accel_dra::discovery::SimProfile profile;
  for (auto control : {accel_dra::model::TimeSliceControl::kNone,
                       accel_dra::model::TimeSliceControl::kNvidiaSmi}) {
    accel_dra::discovery::SimDeviceGroup g;
    g.count = 4;
    g.device_node = "/dev/accel{index}";
    g.timeslice_control = control;
    profile.groups.push_back(g);
  }
  profile.driver_version_file = (g_world->dir / "driver-version").string();
  accel_dra::discovery::SimulatedBackend backend(accel_dra::Env::Default(), kNode, profile);
  auto devices = backend.Discover();
  Check(devices.ok(), "simulated inventory");
  return std::make_shared<accel_dra::model::Inventory>(*devices);
}

Json HolderClaim() {
  return Json::parse(R"({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
    "metadata": {"name": "holder", "namespace": "default", "uid": ")" +
                     std::string(kHolderUid) + R"("},
    "status": {"allocation": {"devices": {"results": [
      {"request": "main", "driver": "accel-dra.dev", "pool": "node-a", "device": "gpu-0"}]}}}})");
}

std::string StringAt(const Json& j, const char* key, const std::string& fallback) {
  const Json* meta = j.is_object() && j.contains("metadata") ? &j["metadata"] : nullptr;
  if (meta == nullptr || !meta->is_object() || !meta->contains(key)) return fallback;
  const Json& v = (*meta)[key];
  return v.is_string() ? v.get<std::string>() : fallback;
}

bool HasEntry(const std::string& uid) { return g_world->checkpoint->Find(uid).has_value(); }

bool HasSpec(const std::string& uid) {
  auto path = g_world->writer->ClaimSpecPath(uid);
  return path.ok() && fs::exists(*path);
}

// The world every input runs in, made at the first input.
World* MakeWorld() {
  g_world = new World();
  fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  g_world->dir = base / ("accel-dra-claim-fuzz-" + std::to_string(::getpid()));
  fs::remove_all(g_world->dir);
  fs::create_directories(g_world->dir / "data");
  fs::create_directories(g_world->dir / "host/proc/sys/kernel/random");
  { std::ofstream(g_world->dir / "host/proc/sys/kernel/random/boot_id") << kBootId << "\n"; }
  { std::ofstream(g_world->dir / "driver-version") << "1.2.3\n"; }
  g_world->inventory = MakeInventory();
  auto cp = accel_dra::checkpoint::Checkpoint::Open(
      accel_dra::Env::Default(), g_world->dir / "data", accel_dra::HostRoot(g_world->dir / "host"));
  Check(cp.ok(), "checkpoint: " + cp.status().ToString());
  g_world->checkpoint = std::move(cp).value();
  g_world->writer = std::make_unique<accel_dra::cdi::CdiWriter>(accel_dra::Env::Default(),
                                                                g_world->dir / "cdi", kDriver);
  claims::PreparerOptions opts;
  opts.driver_name = kDriver;
  opts.pool_name = kNode;
  opts.runner = &g_world->runner;
  opts.inspect_tool = "/usr/local/bin/accel-dra-inspect";
  auto inv = g_world->inventory;
  g_world->preparer = std::make_unique<claims::Preparer>(
      opts,
      [](const std::string&, const std::string&) -> accel_dra::Expected<Json> {
        return g_world->current;
      },
      [inv] { return inv; }, g_world->checkpoint.get(), g_world->writer.get());
  g_world->current = HolderClaim();
  auto held = g_world->preparer->Prepare({{"default", "holder", kHolderUid}});
  Check(held[kHolderUid].ok(), "the holder claim: " + held[kHolderUid].error);
  return g_world;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* const world = MakeWorld();
  (void)world;
  Json claim = Json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (claim.is_discarded()) return 0;
  accel_dra::model::ClaimRef ref{StringAt(claim, "namespace", "default"),
                                 StringAt(claim, "name", "fuzz"),
                                 StringAt(claim, "uid", "6f1c2d3e-0000-4000-8000-000000000001")};
  if (ref.uid == kHolderUid) return 0;
  g_world->current = claim;
  auto results = g_world->preparer->Prepare({ref});
  Check(results.size() == 1 && results.count(ref.uid) == 1, "Prepare answered another claim");
  const auto& r = results[ref.uid];
  if (r.ok()) {
    auto entry = g_world->checkpoint->Find(ref.uid);
    Check(entry && entry->state == accel_dra::model::ClaimState::kPrepareCompleted,
          "a prepared claim without a PrepareCompleted checkpoint entry");
    Check(HasSpec(ref.uid), "a prepared claim without its CDI spec");
    for (const auto& d : r.devices) {
      Check(g_world->inventory->Find(d.device) != nullptr, "prepared unpublished " + d.device);
      Check(d.pool == kNode, "prepared a device of pool " + d.pool);
      if (d.device == "gpu-0") Check(d.admin_access, "gpu-0 given twice");
    }
  } else {
    Check(!HasEntry(ref.uid), "a failed prepare left a checkpoint entry: " + r.error);
    Check(!HasSpec(ref.uid), "a failed prepare left a CDI spec: " + r.error);
  }
  auto errors = g_world->preparer->Unprepare({ref});
  Check(errors[ref.uid].empty(), "unprepare failed: " + errors[ref.uid]);
  Check(!HasEntry(ref.uid) && !HasSpec(ref.uid), "unprepare left the entry or the spec");
  Check(HasEntry(kHolderUid) && HasSpec(kHolderUid), "the holder claim lost its entry or spec");
  return 0;
}
