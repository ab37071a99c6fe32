#include "accel_dra/common/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

#include "accel_dra/common/fault.h"

namespace accel_dra {
namespace fs = std::filesystem;

Status ErrnoStatus(std::string_view what, int err) {
  Code code = Code::kInternal;
  switch (err) {
    case ENOENT:
      code = Code::kNotFound;
      break;
    case EACCES:
    case EPERM:
    case EROFS:
      code = Code::kPermissionDenied;
      break;
    case ENOSPC:
    case EDQUOT:
      code = Code::kResourceExhausted;
      break;
    case EEXIST:
      code = Code::kAlreadyExists;
      break;
    case EINVAL:
    case ENOTDIR:
    case EISDIR:
      code = Code::kInvalidArgument;
      break;
    default:
      break;
  }
  return {code, std::string(what) + ": " + std::strerror(err)};
}

Env* Env::Default() {
  static Env* env = new Env();  // NOLINT(cppcoreguidelines-owning-memory): lives forever
  return env;
}

Expected<std::string> Env::ReadFile(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + path.string(), errno);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus("read " + path.string(), err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {
Status WriteAll(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + path.string(), errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status FsyncDir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open directory " + dir.string(), errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync directory " + dir.string(), err);
  return Status::Ok();
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream s;
  s << std::hex << rng();
  return s.str();
}
}  // namespace

Status Env::WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                            Durability durability) {
  const bool durable = durability == Durability::kDurable;
  fs::path dir = path.parent_path();
  // A leading dot keeps half-written files out of directory scanners (CDI, pluginwatcher).
  // Built by appending: `"." + std::string&&` trips GCC 12's -Wrestrict false positive at -O2+
  // (GCC bug 105329, basic_string::insert inlined), which breaks Release builds under -Werror.
  std::string tmp_name = ".";
  tmp_name.append(path.filename().string()).append(".tmp-").append(RandomSuffix());
  fs::path tmp = dir / tmp_name;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus("create " + tmp.string(), errno);
  Status st = WriteAll(fd, data, tmp);
  if (st.ok() && ::fchmod(fd, mode) != 0) st = ErrnoStatus("chmod " + tmp.string(), errno);
  if (st.ok() && durable && ::fsync(fd) != 0) st = ErrnoStatus("fsync " + tmp.string(), errno);
  if (::close(fd) != 0 && st.ok()) st = ErrnoStatus("close " + tmp.string(), errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  CrashPoint("atomic-write-before-rename");
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus("rename " + tmp.string() + " to " + path.string(), err);
  }
  return durable ? FsyncDir(dir) : Status::Ok();
}

Status Env::RemoveFile(const fs::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus("remove " + path.string(), errno);
  }
  return Status::Ok();
}

Status Env::Rename(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus("rename " + from.string() + " to " + to.string(), errno);
  }
  return Status::Ok();
}

Expected<std::vector<std::string>> Env::ListDir(const fs::path& dir) {
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return ErrnoStatus("list " + dir.string(), ec.value());
  std::sort(names.begin(), names.end());
  return names;
}

bool Env::Exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

Status Env::CreateDirs(const fs::path& dir, mode_t mode) {
  const fs::path target = dir.has_filename() ? dir : dir.parent_path();  // "a/b/" is "a/b"
  std::error_code ec;
  if (fs::is_directory(target, ec)) return Status::Ok();
  const fs::path parent = target.parent_path();
  if (!parent.empty() && parent != target) {
    fs::create_directories(parent, ec);
    if (ec) return ErrnoStatus("create directory " + parent.string(), ec.value());
  }
  // Created owner-only, then given exactly `mode` (the umask does not apply): never wider than
  // asked, not even for an instant.
  if (::mkdir(target.c_str(), 0700) != 0) {
    const int err = errno;
    if (err == EEXIST && fs::is_directory(target, ec)) return Status::Ok();  // a racing creator
    return ErrnoStatus("create directory " + target.string(), err);
  }
  if (::chmod(target.c_str(), mode) != 0) {
    return ErrnoStatus("chmod " + target.string(), errno);
  }
  return Status::Ok();
}

Expected<fs::path> Env::ReadLink(const fs::path& path) {
  std::error_code ec;
  fs::path target = fs::read_symlink(path, ec);
  if (ec) return ErrnoStatus("readlink " + path.string(), ec.value());
  return target;
}

std::chrono::system_clock::time_point Env::Now() { return std::chrono::system_clock::now(); }
std::chrono::steady_clock::time_point Env::MonotonicNow() {
  return std::chrono::steady_clock::now();
}

fs::path HostRoot::Path(std::string_view absolute) const {
  fs::path p(absolute);
  return root_ / p.relative_path();
}

}  // namespace accel_dra
