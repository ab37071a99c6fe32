#pragma once
// Device events: something that tells discovery "the devices may have changed, rescan now", so a
// GPU that appears or disappears is republished within a second instead of at the next poll.
//
// A DeviceEventSource is a pollable file descriptor plus a Drain() that consumes what is pending.
// It never says WHAT changed: the caller rescans (DeviceManager::Refresh), which is cheap and
// keeps one source of truth. Two implementations:
//  * udev   — a libudev netlink monitor ("udev" events, after udevd has created the /dev nodes)
//             for the subsystems pci, drm, accel, misc, kfd and nvidia*; for the real host ("/").
//  * inotify — watches a host tree (a fixture under --host-root): <root>/sys/bus/pci/devices, each
//             PCI device's directory (driver link, drm/, accel/), <root>/sys/module, <root>/dev and
//             its subdirectories, <root>/proc/driver/nvidia(/gpus). The test seam for hotplug.
// Both are best effort: the caller keeps a periodic full rescan as a safety net, and falls back
// to polling when a source can't be opened (OpenDeviceEvents logs why, once).
//
// Thread-safety: one thread uses a source at a time.

#include <chrono>
#include <memory>
#include <string>

#include "accel_dra/common/env.h"
#include "accel_dra/common/status.h"

namespace accel_dra::discovery {

class DeviceEventSource {
 public:
  virtual ~DeviceEventSource() = default;
  virtual std::string Name() const = 0;
  // Readable (POLLIN) when events are pending. Owned by the source.
  virtual int fd() const = 0;
  // Reads everything pending without blocking. True when any of it may concern devices.
  virtual bool Drain() = 0;
  // Called after each rescan: a source may start watching what appeared since (inotify adds
  // watches on new device directories). Default: nothing.
  virtual void Rearm() {}
};

// The libudev monitor. Unavailable (e.g. no netlink permission, udev not running: no /run/udev)
// is an error the caller turns into polling.
Expected<std::unique_ptr<DeviceEventSource>> OpenUdevEvents();
// The inotify watcher of a host tree under `root`. Fails only when inotify itself can't be used
// or <root>/sys/bus/pci/devices can't be watched.
Expected<std::unique_ptr<DeviceEventSource>> OpenInotifyEvents(HostRoot root);

enum class DeviceEventsMode { kAuto, kUdev, kInotify, kPoll };
// "auto", "udev", "inotify", "poll".
Expected<DeviceEventsMode> ParseDeviceEventsMode(const std::string& s);
// The source for `mode`: auto = udev when the host root is "/", inotify otherwise; poll = none.
// When the chosen source can't be opened this logs one warning saying that discovery falls back
// to periodic rescans, and returns nullptr.
std::unique_ptr<DeviceEventSource> OpenDeviceEvents(DeviceEventsMode mode, const HostRoot& root);

// Waits up to `timeout` for the source's fd to become readable, then drains it (and keeps draining
// while more events arrive within `settle`, so one hotplug burst gives one rescan). True when
// a relevant event was seen.
bool WaitForDeviceEvent(DeviceEventSource& source, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds settle = std::chrono::milliseconds(50));

}  // namespace accel_dra::discovery
