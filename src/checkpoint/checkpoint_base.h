#pragma once
// Internal: what both checkpoint modes share once Open() has loaded the file: the paths, the boot
// ID and writer version, the load report, and turning a state into the file's bytes on disk.

#include <chrono>
#include <filesystem>
#include <string>

#include "accel_dra/checkpoint/checkpoint.h"
#include "format.h"

namespace accel_dra::checkpoint {

class CheckpointBase : public Checkpoint {
 public:
  // What Open() found and decided.
  struct Setup {
    Env* env = nullptr;
    std::filesystem::path dir;
    std::string boot_id;
    std::string writer_version;
    std::chrono::milliseconds lock_timeout{0};
    LoadReport report;
  };

  const LoadReport& load_report() const final { return report_; }
  const std::string& boot_id() const final { return boot_id_; }
  const std::filesystem::path& file_path() const final { return file_; }

 protected:
  explicit CheckpointBase(Setup setup);

  // The file's bytes (current format) for `state` under this boot ID and writer version.
  format::Contents ContentsOf(const State& state) const {
    return {state, boot_id_, writer_version_};
  }
  // Replaces the file with `bytes` (crash points checkpoint-before-write and
  // checkpoint-after-write around it); errors name the file.
  Status WriteFile(const std::string& bytes, Durability durability) const;

  Env* const env_;
  const std::filesystem::path dir_;
  const std::filesystem::path file_;
  const std::filesystem::path lock_path_;
  const std::string boot_id_;
  const std::string writer_version_;
  const std::chrono::milliseconds lock_timeout_;
  const LoadReport report_;
};

}  // namespace accel_dra::checkpoint
