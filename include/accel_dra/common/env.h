#pragma once
// The host seam (in the spirit of LevelDB's Env). Everything that touches the host filesystem or
// the clock goes through an Env, so tests can point the code at fixture trees and inject faults.
// HostRoot says where the host's /sys, /dev and /proc live (a fixture tree in tests).

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"

namespace accel_dra {

// How far a write must have reached when it returns (see Env::WriteFileAtomic).
enum class Durability { kDurable, kVisible };

class Env {
 public:
  virtual ~Env() = default;
  // The process-wide real environment. Never null, never destroyed.
  static Env* Default();

  // Whole-file read. NotFound when the file does not exist.
  virtual Expected<std::string> ReadFile(const std::filesystem::path& path);
  // Atomic replace: readers see either the old or the new content, never a mix (temp file in the
  // same directory, then rename). kDurable: also crash-safe across power loss (fsync of the file
  // before the rename, of the directory after it). kVisible: no fsync; a process crash keeps the
  // new content, a power loss may lose it (for files the caller can re-create after a reboot).
  virtual Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                                 mode_t mode = 0644, Durability durability = Durability::kDurable);
  // Removes a file; a missing file is not an error.
  virtual Status RemoveFile(const std::filesystem::path& path);
  // Renames (atomically replacing `to`).
  virtual Status Rename(const std::filesystem::path& from, const std::filesystem::path& to);
  // Names of the entries of a directory (not recursive, no "." or ".."), sorted.
  virtual Expected<std::vector<std::string>> ListDir(const std::filesystem::path& dir);
  virtual bool Exists(const std::filesystem::path& path);
  // mkdir -p. The directory itself, when this call creates it, gets exactly `mode` (the umask does
  // not apply); missing parents are created as mkdir -p does (0777 minus the umask). An existing
  // directory is fine and keeps its mode.
  virtual Status CreateDirs(const std::filesystem::path& dir, mode_t mode = 0755);
  // Target of a symlink (NotFound / InvalidArgument when it is none).
  virtual Expected<std::filesystem::path> ReadLink(const std::filesystem::path& path);

  virtual std::chrono::system_clock::time_point Now();
  virtual std::chrono::steady_clock::time_point MonotonicNow();
};

// Where the host's directories are. HostRoot("/") is the real host.
class HostRoot {
 public:
  explicit HostRoot(std::filesystem::path root = "/") : root_(std::move(root)) {}
  const std::filesystem::path& root() const { return root_; }
  // Maps an absolute host path ("/sys/bus/pci") to the path under this root.
  std::filesystem::path Path(std::string_view absolute) const;
  std::filesystem::path Sys() const { return Path("/sys"); }
  std::filesystem::path Dev() const { return Path("/dev"); }
  std::filesystem::path Proc() const { return Path("/proc"); }

 private:
  std::filesystem::path root_;
};

// Errno-based Status for a failed system call on `what`.
Status ErrnoStatus(std::string_view what, int err);

}  // namespace accel_dra
