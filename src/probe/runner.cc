// accel-dra-probe run: the orchestration (see runner.h). The cluster plumbing is the session
// (cluster_session.h); each check is one file under checks/ (check.h).

#include "accel_dra/probe/runner.h"

#include <algorithm>
#include <ctime>
#include <exception>
#include <iterator>
#include <set>

#include "accel_dra/common/strings.h"
#include "accel_dra/probe/evidence.h"
#include "accel_dra/probe/verdicts.h"
#include "checks/check.h"
#include "cluster_session.h"

namespace accel_dra::probe {
namespace {

using Clock = std::chrono::steady_clock;

struct CheckDef {
  std::string_view id;
  CheckFn run;
};

// The checks in run order: the ids of kCheckIds (report.h), one function each.
constexpr CheckDef kChecks[] = {{"dra_support", DraSupport},
                                {"driver_runtime_management", DriverRuntimeManagement},
                                {"gpu_sharing", GpuSharing},
                                {"secure_accelerator_access", SecureAcceleratorAccess}};
static_assert(std::size(kChecks) == std::size(kCheckIds));
static_assert(kChecks[0].id == kCheckIds[0] && kChecks[1].id == kCheckIds[1] &&
              kChecks[2].id == kCheckIds[2] && kChecks[3].id == kCheckIds[3]);

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The DeviceClass plain claims use, as the first thing every check ran.
void RecordPlainClass(const ClusterSession& session, CheckResult& c) {
  const RunOptions& opt = session.options();
  if (!session.plain_class_manifest().title.empty()) {
    c.ran.push_back("DeviceClass " + session.plain_class() + " with CEL: " + DriverCel(opt.driver));
    c.manifests.push_back(session.plain_class_manifest());
  } else if (!opt.device_class.empty()) {
    c.ran.push_back("existing DeviceClass " + opt.device_class + " (--device-class)");
  }
}

// Runs one check, then releases its pods and claims (failing a passed check when that fails). An
// interruption during either fails the check as interrupted.
CheckResult RunCheck(ClusterSession& session, const CheckDef& check) {
  CheckResult c;
  c.id = std::string(check.id);
  auto t0 = Clock::now();
  session.Say("check " + c.id + ": start");
  session.RecordInto(&c);
  RunGuarded(c, [&] {
    RecordPlainClass(session, c);
    check.run(session, c);
  });
  session.RecordInto(nullptr);
  if (!session.interrupted()) {
    Status st = session.ResetNamespace();
    if (!st.ok() && !session.interrupted()) {
      if (c.status == CheckStatus::kPass) {
        Fail(c, "releasing the check's pods and claims: " + st.message());
      }
      session.Say("warning: " + st.message());
    }
  }
  if (session.interrupted()) Fail(c, "interrupted by a signal before the check finished");
  c.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  session.Say("check " + c.id + ": " + std::string(CheckStatusName(c.status)) +
              (c.message.empty() ? "" : " - " + c.message));
  return c;
}

// The test environment, before any check takes a device: the nodes and devices of the driver.
void RecordEnvironment(ClusterSession& session, Report* report) {
  if (!session.dra_version().ok()) return;
  auto inv = session.LoadInventory();
  if (!inv.ok()) {
    session.Say("warning: the test environment is incomplete: " + inv.status().message());
    return;
  }
  report->environment = DescribeEnvironment(*inv, session.driver());
  for (const auto& line : EnvironmentLines(*report)) session.Say("environment: " + line);
}

// The selected checks in order; after an interruption the rest are skipped.
void RunChecks(ClusterSession& session, Report* report) {
  const RunOptions& opt = session.options();
  std::set<std::string> only(opt.only.begin(), opt.only.end());
  for (const CheckDef& check : kChecks) {
    if (!only.empty() && only.count(std::string(check.id)) == 0) continue;
    if (session.interrupted()) {
      CheckResult c;
      c.id = std::string(check.id);
      c.status = CheckStatus::kSkip;
      c.message = "not run: the probe was interrupted";
      report->checks.push_back(c);
      continue;
    }
    report->checks.push_back(RunCheck(session, check));
    if (session.interrupted()) report->interrupted = true;
  }
}

}  // namespace

Status ValidateRunOptions(const RunOptions& o) {
  for (const auto& id : o.only) {
    if (std::find(std::begin(kCheckIds), std::end(kCheckIds), id) == std::end(kCheckIds)) {
      std::vector<std::string> ids(std::begin(kCheckIds), std::end(kCheckIds));
      return InvalidArgument("--only: unknown check \"" + id + "\" (known: " + Join(ids, ", ") +
                             ")");
    }
  }
  if (o.sharing_pods < 2 || o.sharing_pods > 16) {
    return InvalidArgument("--sharing-pods must be 2..16, got " + std::to_string(o.sharing_pods));
  }
  if (o.image.empty()) return InvalidArgument("--image must not be empty");
  if (o.timeout.count() <= 0) return InvalidArgument("--timeout must be positive");
  if (o.driver.empty()) return InvalidArgument("--driver must not be empty");
  return Status::Ok();
}

Status RunProbe(const RunOptions& options, const std::atomic<bool>* stop,
                const ProgressFn& progress, Report* report) {
  RETURN_IF_ERROR(ValidateRunOptions(options));
  auto t0 = Clock::now();
  report->probe_version = options.probe_version;
  report->driver = options.driver;
  report->command = options.command;
  report->started_at = NowRfc3339();
  ClusterSession session(options, stop, progress);
  Status st = Status::Ok();
  // An exception from the set-up or between checks (each check is guarded itself) must not skip
  // the clean-up below: it becomes the run's error.
  try {
    st = session.Open();
    report->server_version = session.server_version();
    report->namespace_ = session.namespace_name();
    if (!st.ok() && session.interrupted()) {
      report->interrupted = true;
      st = FailedPrecondition("interrupted by a signal during setup");
    }
    if (st.ok()) {
      RecordEnvironment(session, report);
      RunChecks(session, report);
    }
  } catch (const std::exception& e) {
    st = Internal(std::string("internal error in the probe (please report it): ") + e.what());
  } catch (...) {
    st = Internal("internal error in the probe (please report it): an unknown exception");
  }
  for (auto& line : session.Close()) report->cleanup.push_back(std::move(line));
  report->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return st;
}

}  // namespace accel_dra::probe
