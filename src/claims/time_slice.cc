// TimeSlicing on devices whose time slice the driver controls: what is recorded, applying it,
// and resetting it when the last claim that set it goes.

#include <set>

#include "accel_dra/common/log.h"
#include "preparer_internal.h"

namespace accel_dra::claims {

model::AppliedTimeSlice TimeSliceFor(const model::Device& dev, model::TimeSliceInterval interval) {
  model::AppliedTimeSlice ts;
  ts.setting = model::TimeSliceSetting(interval);
  if (dev.timeslice_control == model::TimeSliceControl::kNvidiaSmi &&
      !dev.timeslice_target.empty()) {
    ts.control = model::TimeSliceControl::kNvidiaSmi;
    ts.target = dev.timeslice_target;
  }
  return ts;
}

Status Preparer::SetTimeSlice(const std::string& target, int setting,
                              const std::string& for_claim) {
  CommandRunner* runner = options_.runner != nullptr ? options_.runner : CommandRunner::Default();
  std::vector<std::string> argv = {options_.nvidia_smi, "compute-policy",       "-i", target,
                                   "--set-timeslice",   std::to_string(setting)};
  const std::string shown = CommandLineForDisplay(argv);
  auto r = runner->Run(argv, options_.command_timeout);
  if (!r.ok()) {
    return Status(r.status().code() == Code::kDeadlineExceeded ? Code::kDeadlineExceeded
                                                               : Code::kFailedPrecondition,
                  r.status().message() +
                      " (install the NVIDIA driver's nvidia-smi or point --nvidia-smi at it)");
  }
  if (r->exit_code != 0) {
    std::string tail = OutputTail(r->output);
    return FailedPrecondition(shown + " failed with exit code " + std::to_string(r->exit_code) +
                              (tail.empty() ? "" : ": " + tail) +
                              " (the GPU may not support time-slice settings; use the Default "
                              "interval or another strategy)");
  }
  spdlog::info("time slice of device {} set to {} ({}) for {}", target, setting, shown, for_claim);
  return Status();
}

Status Preparer::ApplyTimeSlices(const std::vector<model::PreparedDevice>& devices,
                                 const std::string& for_claim) {
  std::set<std::string> applied;
  for (const auto& d : devices) {
    if (!d.TimeSliceEnforced() || !applied.insert(d.time_slice->target).second) continue;
    Status st = SetTimeSlice(d.time_slice->target, d.time_slice->setting, for_claim);
    if (!st.ok()) {
      return st.WithContext("applying the TimeSlicing interval to device " + d.device);
    }
  }
  return Status();
}

Status Preparer::ResetTimeSlices(const std::string& uid,
                                 const std::vector<model::PreparedDevice>& devices,
                                 const std::string& for_claim) {
  std::set<std::string> targets;
  for (const auto& d : devices) {
    if (d.TimeSliceEnforced()) targets.insert(d.time_slice->target);
  }
  if (targets.empty()) return Status();
  // Devices another claim still has a setting on keep it.
  for (const auto& [other_uid, other] : checkpoint_->Snapshot().claims) {
    if (other_uid == uid) continue;
    for (const auto& d : other.devices) {
      if (d.TimeSliceEnforced()) targets.erase(d.time_slice->target);
    }
  }
  Status first;
  for (const auto& t : targets) {
    Status st = SetTimeSlice(t, 0, for_claim);
    if (!st.ok() && first.ok()) first = st.WithContext("resetting the time slice of device " + t);
  }
  return first;
}

}  // namespace accel_dra::claims
