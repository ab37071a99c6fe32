#pragma once
// Unix-domain socket file helpers for the kubelet-facing servers (internal to accel_dra_plugin).

#include <cstddef>
#include <string>

#include "accel_dra/common/status.h"

namespace accel_dra::kubelet {

// Longest usable unix socket path on Linux (sun_path is 108 bytes including the NUL).
inline constexpr std::size_t kMaxUnixSocketPathLength = 107;

// InvalidArgument with an explanation when `path` does not fit into sockaddr_un.sun_path.
Status CheckUnixSocketPath(const std::string& path, const std::string& what);

// Removes `path` when it is a unix socket (a stale one of ours). OK when nothing is there.
// Anything else at that path (file, directory) is left alone and reported as FailedPrecondition.
Status RemoveStaleSocket(const std::string& path);

// Removes `path` if it is a socket; logs (does not fail) on other errors. For shutdown.
void RemoveSocketQuietly(const std::string& path);

// chmod(path, mode) with a descriptive error.
Status SetFileMode(const std::string& path, unsigned mode);

// Creates `dir` and missing parents (mode 0750 for new directories).
Status EnsureDirectory(const std::string& dir);

}  // namespace accel_dra::kubelet
