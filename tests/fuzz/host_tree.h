#pragma once
// A host tree held in memory and served through the Env seam, for fuzzing the sysfs/proc readers
// (tests/fuzz/pci_sysfs_fuzz.cc). The fuzz input is a list of records
//   <kind><path>\0<content>\0      kind 'f' file (content: its bytes), 'l' symlink (content: the
//                                  target), 'd' directory (content ignored)
// with paths relative to the host root; parent directories exist implicitly. make_corpus.py
// writes the fixture hosts of tests/fixtures/hosts in this form (the seed corpus).

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/env.h"

namespace accel_dra::fuzz {

class HostTreeEnv : public Env {
 public:
  // Paths under `root` are served from the tree; others (the PCI ID database) from the real host.
  explicit HostTreeEnv(std::filesystem::path root) : root_(std::move(root)) {}

  void Load(std::string_view records) {
    files_.clear();
    links_.clear();
    dirs_.clear();
    dirs_.insert(root_);
    while (!records.empty()) {
      char kind = records.front();
      records.remove_prefix(1);
      size_t end = records.find('\0');
      std::string path(records.substr(0, end));
      records.remove_prefix(end == std::string_view::npos ? records.size() : end + 1);
      end = records.find('\0');
      std::string content(records.substr(0, end));
      records.remove_prefix(end == std::string_view::npos ? records.size() : end + 1);
      std::filesystem::path p = Under(path);
      if (p.empty()) continue;
      AddParents(p);
      if (kind == 'f') files_[p] = content;
      if (kind == 'l') links_[p] = content;
      if (kind == 'd') dirs_.insert(p);
    }
  }

  Expected<std::string> ReadFile(const std::filesystem::path& path) override {
    if (!Inside(path)) return Env::ReadFile(path);
    auto p = path.lexically_normal();
    if (auto it = files_.find(p); it != files_.end()) return it->second;
    if (dirs_.count(p) != 0) return ErrnoStatus("read " + path.string(), EISDIR);
    return ErrnoStatus("open " + path.string(), ENOENT);
  }
  Expected<std::vector<std::string>> ListDir(const std::filesystem::path& dir) override {
    if (!Inside(dir)) return Env::ListDir(dir);
    auto d = dir.lexically_normal();
    if (dirs_.count(d) == 0) {
      return ErrnoStatus("opendir " + dir.string(), Exists(d) ? ENOTDIR : ENOENT);
    }
    std::set<std::string> names;
    auto add = [&](const std::filesystem::path& p) {
      if (p.parent_path() == d) names.insert(p.filename().string());
    };
    for (const auto& [p, c] : files_) add(p);
    for (const auto& [p, c] : links_) add(p);
    for (const auto& p : dirs_) add(p);
    return std::vector<std::string>(names.begin(), names.end());
  }
  bool Exists(const std::filesystem::path& path) override {
    if (!Inside(path)) return Env::Exists(path);
    auto p = path.lexically_normal();
    return files_.count(p) != 0 || links_.count(p) != 0 || dirs_.count(p) != 0;
  }
  Expected<std::filesystem::path> ReadLink(const std::filesystem::path& path) override {
    if (!Inside(path)) return Env::ReadLink(path);
    auto p = path.lexically_normal();
    if (auto it = links_.find(p); it != links_.end()) return std::filesystem::path(it->second);
    return ErrnoStatus("readlink " + path.string(), Exists(p) ? EINVAL : ENOENT);
  }
  // The tree is read-only.
  Status WriteFileAtomic(const std::filesystem::path& path, std::string_view, mode_t,
                         Durability) override {
    return ErrnoStatus("write " + path.string(), EROFS);
  }
  Status RemoveFile(const std::filesystem::path& path) override {
    return ErrnoStatus("unlink " + path.string(), EROFS);
  }
  Status Rename(const std::filesystem::path& from, const std::filesystem::path&) override {
    return ErrnoStatus("rename " + from.string(), EROFS);
  }
  Status CreateDirs(const std::filesystem::path& dir, mode_t) override {
    return ErrnoStatus("mkdir " + dir.string(), EROFS);
  }

 private:
  bool Inside(const std::filesystem::path& p) const {
    auto rel = p.lexically_normal().lexically_relative(root_);
    return !rel.empty() && *rel.begin() != "..";
  }
  // The absolute path of a record's relative path; empty when it leaves the root.
  std::filesystem::path Under(const std::string& rel) const {
    if (rel.empty()) return {};
    std::filesystem::path p =
        (root_ / std::filesystem::path(rel).relative_path()).lexically_normal();
    if (!Inside(p) || p == root_) return {};
    return p;
  }
  void AddParents(const std::filesystem::path& p) {
    for (auto d = p.parent_path(); Inside(d) || d == root_; d = d.parent_path()) {
      if (!dirs_.insert(d).second || d == root_) break;
    }
  }

  std::filesystem::path root_;
  std::map<std::filesystem::path, std::string> files_;
  std::map<std::filesystem::path, std::string> links_;
  std::set<std::filesystem::path> dirs_;
};

}  // namespace accel_dra::fuzz
