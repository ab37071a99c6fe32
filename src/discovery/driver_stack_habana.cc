// Habana's driver stack (driver_stack.h, docs/driver-stack.md): the container gets the device's
// /dev/accel nodes from discovery; hl-smi and the SynapseAI libraries stay in the image (Habana
// ships them in its base images, built for a driver version), so nothing is injected and no
// runtime API version is published.

#include <string>

#include "accel_dra/discovery/driver_stack.h"

namespace accel_dra::discovery {
namespace {

class HabanaDriverStack : public DriverStackSource {
 public:
  Expected<DriverStack> Find(const std::string& /*driver_version*/) override {
    return DriverStack{};
  }
};

}  // namespace

std::unique_ptr<DriverStackSource> MakeHabanaDriverStack(const DriverRoot& /*root*/) {
  return std::make_unique<HabanaDriverStack>();
}

}  // namespace accel_dra::discovery
