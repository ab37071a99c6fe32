#include "accel_dra/node/wakeup.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "accel_dra/common/env.h"

namespace accel_dra::node {

Expected<std::unique_ptr<Wakeup>> Wakeup::Create() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return ErrnoStatus("eventfd", errno);
  return std::unique_ptr<Wakeup>(new Wakeup(fd));
}

Wakeup::~Wakeup() { ::close(fd_); }

void Wakeup::Notify() {
  const uint64_t one = 1;
  // Only fails with EAGAIN when the counter is at its maximum: it is readable then anyway.
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
}

bool Wakeup::Drain() {
  uint64_t count = 0;
  return ::read(fd_, &count, sizeof(count)) == static_cast<ssize_t>(sizeof(count)) && count > 0;
}

}  // namespace accel_dra::node
