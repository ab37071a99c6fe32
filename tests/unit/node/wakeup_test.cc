#include "accel_dra/node/wakeup.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

namespace accel_dra::node {
namespace {

bool Readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

TEST(Wakeup, ReadableFromNotifyUntilDrain) {
  auto wakeup = Wakeup::Create();
  ASSERT_TRUE(wakeup.ok()) << wakeup.status().message();
  Wakeup& w = **wakeup;
  EXPECT_FALSE(Readable(w.fd()));
  EXPECT_FALSE(w.Drain());
  std::thread([&w] {
    w.Notify();
    w.Notify();
  }).join();
  EXPECT_TRUE(Readable(w.fd(), 1000));
  EXPECT_TRUE(w.Drain());  // two notifications, one wake-up
  EXPECT_FALSE(Readable(w.fd()));
  EXPECT_FALSE(w.Drain());
}

}  // namespace
}  // namespace accel_dra::node
