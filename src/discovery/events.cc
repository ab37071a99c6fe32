#include "accel_dra/discovery/events.h"

#include <libudev.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <system_error>

#include "accel_dra/common/log.h"

namespace accel_dra::discovery {
namespace fs = std::filesystem;

namespace {

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  while (true) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 && (p.revents & POLLIN) != 0;
  }
}

// ---- udev ---------------------------------------------------------------------------------------
// Subsystems whose events can change what we publish: PCI add/remove/bind/unbind, DRM and
// compute-accel nodes, misc (nvidia-uvm, ...), AMD's kfd, NVIDIA's own classes, kernel modules.
constexpr const char* kUdevSubsystems[] = {"pci",    "drm",         "accel",      "misc",  "kfd",
                                           "nvidia", "nvidia-caps", "nvidia-uvm", "module"};

class UdevEvents : public DeviceEventSource {
 public:
  UdevEvents(udev* u, udev_monitor* m) : udev_(u), mon_(m) {}
  ~UdevEvents() override {
    udev_monitor_unref(mon_);
    udev_unref(udev_);
  }
  std::string Name() const override { return "udev"; }
  int fd() const override { return udev_monitor_get_fd(mon_); }
  bool Drain() override {
    bool any = false;
    while (Readable(fd(), 0)) {
      udev_device* d = udev_monitor_receive_device(mon_);
      if (d == nullptr) break;
      const char* action = udev_device_get_action(d);
      const char* sub = udev_device_get_subsystem(d);
      const char* node = udev_device_get_devnode(d);
      LOG_V(4, "udev event {} {} {} {}", action != nullptr ? action : "?",
            sub != nullptr ? sub : "?", udev_device_get_syspath(d), node != nullptr ? node : "");
      // "change" of a DRM device is frequent (hotplug of a monitor) and harmless to rescan.
      any = true;
      udev_device_unref(d);
    }
    return any;
  }

 private:
  udev* udev_;
  udev_monitor* mon_;
};

// ---- inotify ------------------------------------------------------------------------------------
constexpr uint32_t kDirMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                              IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF;

class InotifyEvents : public DeviceEventSource {
 public:
  InotifyEvents(int fd, HostRoot root) : fd_(fd), root_(std::move(root)) {}
  ~InotifyEvents() override { ::close(fd_); }
  std::string Name() const override { return "inotify"; }
  int fd() const override { return fd_; }

  Status Init() {
    fs::path pci = root_.Path("/sys/bus/pci/devices");
    if (::inotify_add_watch(fd_, pci.c_str(), kDirMask) < 0) {
      return ErrnoStatus("inotify watch on " + pci.string(), errno);
    }
    Rearm();
    return Status();
  }

  // Watches the fixed directories that exist now and every PCI device's directory (following the
  // sysfs symlink, so the real device directory under sys/devices is watched) with its drm/ and
  // accel/ subdirectories. inotify_add_watch on an already watched inode is a cheap no-op.
  void Rearm() override {
    std::error_code ec;
    auto watch = [&](const fs::path& p) {
      if (fs::is_directory(p, ec)) ::inotify_add_watch(fd_, p.c_str(), kDirMask);
    };
    fs::path pci = root_.Path("/sys/bus/pci/devices");
    watch(pci);
    for (const auto& e : fs::directory_iterator(pci, ec)) {
      watch(e.path());
      watch(e.path() / "drm");
      watch(e.path() / "accel");
    }
    watch(root_.Path("/sys/module"));
    watch(root_.Path("/proc/driver/nvidia"));
    watch(root_.Path("/proc/driver/nvidia/gpus"));
    fs::path dev = root_.Dev();
    watch(dev);
    for (const auto& e : fs::directory_iterator(dev, ec)) {
      if (!e.is_symlink(ec) && e.is_directory(ec)) watch(e.path());
    }
  }

  bool Drain() override {
    bool any = false;
    alignas(inotify_event) char buf[16384];
    while (true) {
      ssize_t n = ::read(fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EAGAIN: nothing more
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(buf + off);
        if ((ev->mask & IN_Q_OVERFLOW) != 0) {
          LOG_V(2, "inotify queue overflow; rescanning");
        }
        LOG_V(4, "inotify event mask={:#x} name={}", ev->mask, ev->len > 0 ? ev->name : "");
        // IN_IGNORED alone (a watch went away with its directory) follows a delete we already saw.
        if (ev->mask != IN_IGNORED) any = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    return any;
  }

 private:
  int fd_;
  HostRoot root_;
};

}  // namespace

Expected<std::unique_ptr<DeviceEventSource>> OpenUdevEvents() {
  std::error_code ec;
  // Without udevd nothing is ever sent on the "udev" netlink group (e.g. in a container that
  // does not mount the host's /run/udev): say so instead of silently never reporting anything.
  if (!fs::exists("/run/udev/control", ec)) {
    return FailedPrecondition(
        "udev is not running or not visible here (no /run/udev/control; mount the host's /run/udev "
        "into the container)");
  }
  udev* u = udev_new();
  if (u == nullptr) return Internal("udev_new failed");
  udev_monitor* m = udev_monitor_new_from_netlink(u, "udev");
  if (m == nullptr) {
    udev_unref(u);
    return Unavailable("cannot open a udev netlink monitor (needs the host network namespace)");
  }
  for (const char* s : kUdevSubsystems) {
    udev_monitor_filter_add_match_subsystem_devtype(m, s, nullptr);
  }
  if (int r = udev_monitor_enable_receiving(m); r < 0) {
    udev_monitor_unref(m);
    udev_unref(u);
    return ErrnoStatus("udev monitor", -r);
  }
  return std::unique_ptr<DeviceEventSource>(new UdevEvents(u, m));
}

Expected<std::unique_ptr<DeviceEventSource>> OpenInotifyEvents(HostRoot root) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return ErrnoStatus("inotify_init1", errno);
  auto src = std::make_unique<InotifyEvents>(fd, std::move(root));  // owns fd from here
  RETURN_IF_ERROR(src->Init());
  return std::unique_ptr<DeviceEventSource>(std::move(src));
}

Expected<DeviceEventsMode> ParseDeviceEventsMode(const std::string& s) {
  if (s == "auto") return DeviceEventsMode::kAuto;
  if (s == "udev") return DeviceEventsMode::kUdev;
  if (s == "inotify") return DeviceEventsMode::kInotify;
  if (s == "poll") return DeviceEventsMode::kPoll;
  return InvalidArgument("device events \"" + s + "\": expected auto, udev, inotify or poll");
}

std::unique_ptr<DeviceEventSource> OpenDeviceEvents(DeviceEventsMode mode, const HostRoot& root) {
  if (mode == DeviceEventsMode::kPoll) return nullptr;
  bool real_host = root.root() == "/" || root.root().empty();
  bool udev = mode == DeviceEventsMode::kUdev || (mode == DeviceEventsMode::kAuto && real_host);
  auto src = udev ? OpenUdevEvents() : OpenInotifyEvents(root);
  if (!src.ok()) {
    spdlog::warn("device events ({}) unavailable: {}; falling back to periodic rescans",
                 udev ? "udev" : "inotify", src.status().message());
    return nullptr;
  }
  spdlog::info("device events: {}{}", (*src)->Name(),
               udev ? "" : " watching the tree under " + root.root().string());
  return std::move(*src);
}

bool WaitForDeviceEvent(DeviceEventSource& source, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds settle) {
  if (!Readable(source.fd(), static_cast<int>(timeout.count()))) return false;
  bool any = source.Drain();
  while (settle.count() > 0 && Readable(source.fd(), static_cast<int>(settle.count()))) {
    any = source.Drain() || any;
  }
  return any;
}

}  // namespace accel_dra::discovery
