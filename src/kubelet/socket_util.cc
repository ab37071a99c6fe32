#include "socket_util.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "accel_dra/common/log.h"

namespace accel_dra::kubelet {

static_assert(sizeof(sockaddr_un::sun_path) == kMaxUnixSocketPathLength + 1);

Status CheckUnixSocketPath(const std::string& path, const std::string& what) {
  if (path.size() > kMaxUnixSocketPathLength) {
    return InvalidArgument(what + " path '" + path + "' is " + std::to_string(path.size()) +
                           " bytes long, but Linux limits unix socket paths to " +
                           std::to_string(kMaxUnixSocketPathLength) +
                           " bytes (108 with the terminating NUL); use a shorter directory, "
                           "driver name or pod UID");
  }
  return Status::Ok();
}

Status RemoveStaleSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Internal("cannot stat '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return FailedPrecondition("'" + path +
                              "' exists and is not a unix socket; refusing to remove it. Remove "
                              "it by hand or choose another directory");
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Internal("cannot remove stale socket '" + path + "': " + std::strerror(errno));
  }
  LOG_V(2, "removed stale socket {}", path);
  return Status::Ok();
}

void RemoveSocketQuietly(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return;  // already gone (gRPC may have removed it)
  if (!S_ISSOCK(st.st_mode)) {
    spdlog::warn("not removing '{}': it is no longer a socket", path);
    return;
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("cannot remove socket '{}': {}", path, std::strerror(errno));
  }
}

Status SetFileMode(const std::string& path, unsigned mode) {
  if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return Internal("cannot chmod '" + path + "': " + std::strerror(errno));
  }
  return Status::Ok();
}

Status EnsureDirectory(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return Status::Ok();
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return FailedPrecondition("cannot create directory '" + dir + "': " + ec.message() +
                              " (is the host path mounted and writable?)");
  }
  std::filesystem::permissions(dir,
                               std::filesystem::perms::owner_all |
                                   std::filesystem::perms::group_read |
                                   std::filesystem::perms::group_exec,
                               ec);
  return Status::Ok();
}

}  // namespace accel_dra::kubelet
