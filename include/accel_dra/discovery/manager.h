#pragma once
// DeviceManager merges what its backends find into one Inventory snapshot.
// Promises:
// - A failing backend never hides the others' devices.
// - One failed read keeps the last good state: a backend whose Discover() fails contributes the
//   devices of its last successful Discover() until one succeeds again (they are stale(): the
//   health tracker reports them Unknown); a backend that never succeeded contributes nothing.
//   The failure is logged once per failure (again only when its message changes), the recovery
//   once.
// - Device names are unique in the result (a later duplicate is dropped and reported).
// - Refresh() returns a new snapshot only when something differs.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/discovery/backend.h"
#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

class DeviceManager {
 public:
  void AddBackend(std::unique_ptr<Backend> backend);
  bool empty() const { return backends_.empty(); }
  // Discovers now. Returns the new snapshot, or the current one when nothing changed.
  model::InventoryPtr Refresh();
  // True when a backend reports a possible change (cheap; call it periodically).
  bool MaybeChanged();
  model::InventoryPtr current() const { return current_; }
  // Names of the devices in current() that failing backends kept from their last good scan.
  const std::set<std::string>& stale() const { return stale_; }

 private:
  struct Source {
    std::unique_ptr<Backend> backend;
    std::string error;  // the failure being reported ("" while it works)
    bool ever_ok = false;
    std::vector<model::Device> last_good;
  };
  // The devices source `s` contributes now (its last good ones while it fails).
  const std::vector<model::Device>& Scan(Source& s);

  std::vector<Source> backends_;
  model::InventoryPtr current_ = std::make_shared<const model::Inventory>();
  std::set<std::string> stale_;
};

}  // namespace accel_dra::discovery
