#pragma once
// A writable copy of a fixture host (tests/fixtures/hosts/<name>) in a fresh temp directory,
// removed at destruction, with helpers to hot-add and remove PCI devices the way sysfs shows them.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace accel_dra::discovery::testing {

namespace fs = std::filesystem;

inline const fs::path kHosts = fs::path(ACCEL_DRA_SOURCE_DIR) / "tests/fixtures/hosts";

class FixtureCopy {
 public:
  explicit FixtureCopy(const std::string& host) {
    std::string tmpl = (fs::temp_directory_path() / "accel-dra-host-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    fs::copy(kHosts / host, root_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  }
  ~FixtureCopy() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const fs::path& root() const { return root_; }
  fs::path operator/(const std::string& rel) const { return root_ / rel; }
  fs::path PciLink(const std::string& bdf) const { return root_ / "sys/bus/pci/devices" / bdf; }
  // The device's real directory (the target of its sys/bus/pci/devices link).
  fs::path DeviceDir(const std::string& bdf) const {
    return (PciLink(bdf).parent_path() / fs::read_symlink(PciLink(bdf))).lexically_normal();
  }
  // Hot-adds `new_bdf` as a copy of `like`: its directory next to the original (complete before
  // it becomes visible), its /proc/driver/nvidia/gpus entry if any, then the sysfs link.
  void AddDeviceLike(const std::string& like, const std::string& new_bdf) {
    fs::path src = DeviceDir(like);
    fs::path dst = src.parent_path() / new_bdf;
    fs::copy(src, dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::path proc = root_ / "proc/driver/nvidia/gpus";
    if (fs::exists(proc / like)) fs::copy(proc / like, proc / new_bdf, fs::copy_options::recursive);
    fs::create_symlink(fs::read_symlink(PciLink(like)).parent_path() / new_bdf, PciLink(new_bdf));
  }
  // Takes the device off the bus (its sys/bus/pci/devices link); ReAddDevice() brings it back.
  void RemoveDevice(const std::string& bdf) {
    removed_[bdf] = fs::read_symlink(PciLink(bdf));
    fs::remove(PciLink(bdf));
  }
  void ReAddDevice(const std::string& bdf) { fs::create_symlink(removed_.at(bdf), PciLink(bdf)); }

 private:
  fs::path root_;
  std::map<std::string, fs::path> removed_;
};

}  // namespace accel_dra::discovery::testing
