#pragma once
// Wakeup: an eventfd that one thread polls and any thread may set, so a background thread can
// wake the NodeAgent's loop without calling into it.
//
// Promises: Notify() never blocks and may be called from any thread, any number of times;
// fd() is readable (POLLIN) from the first Notify() until the next Drain(), which never blocks
// either. Notifications are not counted: many Notify() calls before one Drain() are one wake-up.

#include <memory>

#include "accel_dra/common/status.h"

namespace accel_dra::node {

class Wakeup {
 public:
  static Expected<std::unique_ptr<Wakeup>> Create();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  int fd() const { return fd_; }
  void Notify();
  // Clears the fd; true when Notify() was called since the last Drain().
  bool Drain();

 private:
  explicit Wakeup(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace accel_dra::node
