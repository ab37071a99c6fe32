#include "accel_dra/node/agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "accel_dra/common/env.h"
#include "accel_dra/common/log.h"

namespace accel_dra::node {

Expected<std::unique_ptr<NodeAgent>> NodeAgent::Create(Options options, Parts parts) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int signal_fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) return ErrnoStatus("signalfd", errno);
  auto stop = Wakeup::Create();
  if (!stop.ok()) {
    ::close(signal_fd);
    return stop.status();
  }
  std::unique_ptr<NodeAgent> agent(
      new NodeAgent(std::move(options), std::move(parts), signal_fd, std::move(*stop)));
  agent->Rescan();
  agent->CheckHealth();
  return agent;
}

NodeAgent::NodeAgent(Options options, Parts parts, int signal_fd, std::unique_ptr<Wakeup> stop)
    : options_(std::move(options)),
      parts_(std::move(parts)),
      signal_fd_(signal_fd),
      stop_(std::move(stop)),
      composer_(options_.pool, parts_.publish) {}

NodeAgent::~NodeAgent() { ::close(signal_fd_); }

void NodeAgent::Rescan() {
  auto inventory = parts_.devices->Refresh();
  inventory_.Set(inventory);
  if (parts_.events != nullptr) parts_.events->Rearm();
  composer_.SetInventory(std::move(inventory));
}

// A few stat()s per device.
void NodeAgent::CheckHealth() {
  std::optional<discovery::NvmlInfo> nvml;
  if (parts_.nvml != nullptr) nvml = parts_.nvml->last_info();
  model::InventoryPtr inventory = inventory_.Get();
  discovery::HealthContext context;
  context.nvml = nvml ? &*nvml : nullptr;
  context.stale = parts_.devices->stale();
  context.held = CheckHeld(*inventory);
  parts_.health->Update(*inventory, context);
  composer_.SetUnhealthy(parts_.health->Unhealthy());
}

void NodeAgent::SetHeldDevices(model::HeldDevicesSource held) {
  held_ = std::move(held);
  CheckHealth();
}

std::map<std::string, discovery::HealthProblem> NodeAgent::CheckHeld(
    const model::Inventory& inventory) {
  std::map<std::string, discovery::HealthProblem> problems;
  if (!held_) return problems;
  std::map<std::string, std::string> reported;
  for (const model::HeldDevice& h : held_()) {
    model::HeldDeviceCheck c = model::CheckHeldDevice(h.record, inventory);
    if (c.state == model::HeldDeviceState::kPresent) continue;
    const std::string who = "ResourceClaim " + h.claim + " (uid " + h.claim_uid + ")";
    const std::string key = who + ": device " + h.record.device;
    auto was = held_reported_.find(key);
    if (was == held_reported_.end() || was->second != c.message) {
      if (c.state == model::HeldDeviceState::kRenamed) {
        spdlog::info("{} holds {} under its former name; it keeps it until it is unprepared", who,
                     c.message);
      } else {
        spdlog::warn(
            "{} is prepared, but its {}: its containers no longer get the device "
            "they were prepared with; delete the pod so the claim is allocated again",
            who, c.message);
      }
    }
    reported[key] = c.message;
    if (c.state == model::HeldDeviceState::kRenamed) continue;
    bool vanished = c.state == model::HeldDeviceState::kVanished;
    problems.emplace(h.record.device,
                     discovery::HealthProblem{vanished ? "DeviceVanished" : "DeviceChanged",
                                              c.message + ", held by " + who});
  }
  for (const auto& [key, message] : held_reported_) {
    if (reported.count(key) == 0) spdlog::info("{} is published again, or was unprepared", key);
  }
  held_reported_ = std::move(reported);
  return problems;
}

// Drain first: a change after it makes the fd readable again, so none is missed.
void NodeAgent::ReadNodeAttributes() {
  parts_.node_attributes->Drain();
  composer_.SetNodeAttributes(parts_.node_attributes->current());
}

void NodeAgent::Publish() {
  if (parts_.node_attributes != nullptr) ReadNodeAttributes();
  composer_.Publish();
}

NodeAgent::Ready NodeAgent::Wait(std::chrono::steady_clock::time_point until) {
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
  // poll() ignores the negative fds of missing sources.
  pollfd fds[4] = {
      {signal_fd_, POLLIN, 0},
      {stop_->fd(), POLLIN, 0},
      {parts_.events != nullptr ? parts_.events->fd() : -1, POLLIN, 0},
      {parts_.node_attributes != nullptr ? parts_.node_attributes->fd() : -1, POLLIN, 0},
  };
  Ready ready;
  if (::poll(fds, 4, static_cast<int>(std::max<int64_t>(0, wait.count()))) <= 0) return ready;
  if ((fds[0].revents & POLLIN) != 0) {
    signalfd_siginfo si{};
    if (::read(signal_fd_, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
      spdlog::info("received {}, shutting down", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      ready.shutdown = true;
      return ready;
    }
  }
  if ((fds[1].revents & POLLIN) != 0) {  // not drained: Stop() stays in force
    ready.shutdown = true;
    return ready;
  }
  if ((fds[2].revents & POLLIN) != 0) {
    // Let a burst settle (a hotplug is many files and nodes), then rescan once.
    ready.device_event = discovery::WaitForDeviceEvent(*parts_.events, std::chrono::milliseconds(0),
                                                       options_.event_settle);
    if (ready.device_event) LOG_V(2, "device event: rescanning");
  }
  ready.node_attributes = (fds[3].revents & POLLIN) != 0;
  return ready;
}

void NodeAgent::Run(const Sweep& sweep) {
  using Clock = std::chrono::steady_clock;
  auto next_check = Clock::now() + options_.check_every;
  auto next_rescan = Clock::now() + options_.rescan_every;
  auto next_sweep = Clock::now() + options_.sweep_every;
  while (true) {
    auto until = std::min({next_check, next_rescan, next_sweep});
    if (auto due = composer_.NextDeadline(); due && *due < until) until = *due;
    Ready ready = Wait(until);
    if (ready.shutdown) return;
    if (ready.node_attributes) ReadNodeAttributes();
    bool rescan = ready.device_event;
    auto now = Clock::now();
    bool tick = now >= next_check;
    if (tick) {
      rescan = parts_.devices->MaybeChanged() || rescan;
      next_check = now + options_.check_every;
    }
    if (now >= next_rescan) {
      rescan = true;
      next_rescan = now + options_.rescan_every;
    }
    if (rescan) Rescan();
    // Health is re-checked on every rescan and every check tick; the composer republishes only
    // when the inventory, health or node attributes changed.
    if (rescan || tick) CheckHealth();
    composer_.Publish();
    if (now >= next_sweep) {
      if (sweep) sweep();
      next_sweep = Clock::now() + options_.sweep_every;
    }
  }
}

}  // namespace accel_dra::node
