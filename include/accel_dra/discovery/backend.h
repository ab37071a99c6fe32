#pragma once
// The discovery extension point: a source of devices (PCI/sysfs, NVML, simulated, ...) that the
// DeviceManager merges into one Inventory.

#include <string>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

// A source of devices (PCI/sysfs, NVML, simulated, ...).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;
  // Finds the devices now. Partial knowledge is not an error: a device whose details can't be
  // read is still returned with what is known (problems are logged once by the backend).
  virtual Expected<std::vector<model::Device>> Discover() = 0;
  // Cheap check whether Discover() might now return something different (e.g. a watched file
  // changed). Backends driven by events return false and use their own notification instead.
  virtual bool MaybeChanged() { return false; }
};

}  // namespace accel_dra::discovery
