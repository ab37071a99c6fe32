#include "accel_dra/common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace accel_dra {
namespace {
std::atomic<int> g_verbosity{0};

void AppendJsonString(std::string_view s, spdlog::memory_buf_t& out) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out.append(std::string_view("\\\""));
        break;
      case '\\':
        out.append(std::string_view("\\\\"));
        break;
      case '\n':
        out.append(std::string_view("\\n"));
        break;
      case '\r':
        out.append(std::string_view("\\r"));
        break;
      case '\t':
        out.append(std::string_view("\\t"));
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out.append(std::string_view(buf));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// `"msg":"<escaped message>"`, plus `"claim":"<ns>/<name>","claimUID":"<uid>"` when the message
// names a claim the way the claims core does ("ResourceClaim <ns>/<name> (uid <uid>)").
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    dest.append(std::string_view("\"msg\":"));
    AppendJsonString(text, dest);
    constexpr std::string_view kClaim = "ResourceClaim ";
    constexpr std::string_view kUid = " (uid ";
    auto at = text.find(kClaim);
    if (at == std::string_view::npos) return;
    auto name_start = at + kClaim.size();
    auto uid_at = text.find(kUid, name_start);
    auto space = text.find(' ', name_start);
    if (uid_at == std::string_view::npos || space != uid_at) return;
    auto uid_start = uid_at + kUid.size();
    auto close = text.find(')', uid_start);
    if (close == std::string_view::npos) return;
    dest.append(std::string_view(",\"claim\":"));
    AppendJsonString(text.substr(name_start, uid_at - name_start), dest);
    dest.append(std::string_view(",\"claimUID\":"));
    AppendJsonString(text.substr(uid_start, close - uid_start), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

void InitLogging(int verbosity, bool json) {
  g_verbosity.store(verbosity);
  spdlog::drop("accel-dra");
  auto logger = spdlog::stderr_logger_mt("accel-dra");
  if (json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%*})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%C%m%d %H:%M:%S.%f %L %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

int LogVerbosity() { return g_verbosity.load(std::memory_order_relaxed); }

}  // namespace accel_dra
