#pragma once
// DeviceManager merges what its backends find into one Inventory snapshot.
// Promises: a failing backend never hides the others' devices (its error is logged once per
// distinct message); device names are unique in the result (a later duplicate is dropped and
// reported); Refresh() returns a new snapshot only when something differs.

#include <memory>
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

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::string> last_errors_;
  model::InventoryPtr current_ = std::make_shared<const model::Inventory>();
};

}  // namespace accel_dra::discovery
