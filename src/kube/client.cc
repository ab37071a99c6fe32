// Client: JSON calls with retry/backoff, and watch-stream decoding.

#include "accel_dra/kube/client.h"

#include <algorithm>
#include <random>
#include <string>
#include <thread>

#include "accel_dra/common/log.h"
#include "accel_dra/common/metrics.h"
#include "accel_dra/common/strings.h"
#include "internal.h"

namespace accel_dra::kube {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

bool IsRetryableHttp(int code) { return code == 429 || (code >= 500 && code <= 599); }

// Retry-After in delta-seconds form; HTTP-dates and junk yield nullopt.
std::optional<milliseconds> ParseRetryAfter(const std::string& value) {
  if (value.empty() || value.size() > 9) return std::nullopt;
  int64_t seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return milliseconds(seconds * 1000);
}

milliseconds JitteredBackoff(const RetryPolicy& policy, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t cap = std::max<int64_t>(0, policy.max_backoff.count());
  int64_t ceiling = std::max<int64_t>(0, policy.initial_backoff.count());
  for (int i = 1; i < attempt && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  if (ceiling <= 0) return milliseconds(0);
  std::uniform_int_distribution<int64_t> dist(0, ceiling);
  return milliseconds(dist(rng));
}

}  // namespace

Client::Client(std::unique_ptr<Transport> transport, RetryPolicy retry, milliseconds timeout)
    : transport_(std::move(transport)), retry_(retry), timeout_(timeout) {}

Expected<std::unique_ptr<Client>> Client::Create(const RestConfig& config, RetryPolicy retry) {
  if (config.server.empty()) return InvalidArgument("kube client: no apiserver URL configured");
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return InvalidArgument(
        "kube client: apiserver URL must start with https:// or http://, got \"" + config.server +
        "\"");
  }
  if (config.timeout.count() <= 0) return InvalidArgument("kube client: timeout must be positive");
  return std::make_unique<Client>(NewCurlTransport(config), retry, config.timeout);
}

Expected<Json> Client::Get(const std::string& path) { return Call("GET", path, "", ""); }

Expected<Json> Client::Post(const std::string& path, const Json& body) {
  return Call("POST", path, body.dump(), "application/json");
}

Expected<Json> Client::Put(const std::string& path, const Json& body) {
  return Call("PUT", path, body.dump(), "application/json");
}

Expected<Json> Client::Patch(const std::string& path, const Json& body,
                             const std::string& content_type) {
  return Call("PATCH", path, body.dump(), content_type);
}

Status Client::Delete(const std::string& path) {
  auto r = Call("DELETE", path, "", "");
  return r.ok() ? Status::Ok() : r.status();
}

Expected<Json> Client::Call(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& content_type) {
  auto raw = CallRaw(method, path, body, content_type);
  if (!raw.ok()) return raw.status();
  if (raw->empty()) return Json::object();
  try {
    return Json::parse(*raw);
  } catch (const Json::exception& e) {
    Status st =
        DataLoss("invalid JSON from apiserver for " + method + " " + path + ": " + e.what());
    st.set_http_status(200);
    return st;
  }
}

Expected<std::string> Client::GetText(const std::string& path) {
  return CallRaw("GET", path, "", "");
}

Expected<std::string> Client::CallRaw(const std::string& method, const std::string& path,
                                      const std::string& body, const std::string& content_type) {
  const auto start = Clock::now();
  const auto deadline = start + timeout_;
  const int max_attempts = std::max(1, retry_.max_attempts);
  Status last;
  bool last_retryable = false;
  int attempt = 0;
  for (;;) {
    ++attempt;
    const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) {
      if (last.ok()) {
        last = DeadlineExceeded(method + " " + path + ": no time left within the " +
                                std::to_string(timeout_.count()) + " ms deadline");
      }
      --attempt;
      last_retryable = true;
      break;
    }
    const auto attempt_start = Clock::now();
    auto resp = transport_->Do(method, path, body, content_type, remaining);
    Metrics().ApiRequest(method, resp.ok() ? resp->status : 0, SecondsSince(attempt_start));
    bool retryable = false;
    std::optional<milliseconds> retry_after;
    if (!resp.ok()) {
      last = resp.status().WithContext(method + " " + path);
      last.set_http_status(0);
      retryable = last.code() == Code::kUnavailable || last.code() == Code::kDeadlineExceeded;
    } else if (resp->status >= 200 && resp->status <= 299) {
      return std::move(resp->body);
    } else {
      last = internal::StatusFromHttp(method, path, resp->status, resp->body);
      retryable = IsRetryableHttp(resp->status);
      retry_after = ParseRetryAfter(resp->retry_after);
    }
    last_retryable = retryable;
    if (!retryable || attempt >= max_attempts) break;
    // Each attempt gets all the time that is left: one that timed out used up the deadline (the
    // transport may give up a hair early; another try in that sliver would only hide the cause).
    if (last.code() == Code::kDeadlineExceeded) break;

    milliseconds backoff =
        retry_after ? std::min(*retry_after, retry_.max_backoff) : JitteredBackoff(retry_, attempt);
    if (Clock::now() + backoff >= deadline) break;  // no time for another attempt
    LOG_V(2, "kube: {} (attempt {}/{}); retrying in {} ms", last.message(), attempt, max_attempts,
          backoff.count());
    std::this_thread::sleep_for(backoff);
  }
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!last_retryable || attempt <= 1) return last;
  Status out(last.code(), last.message() + " (gave up after " + std::to_string(attempt) +
                              " attempts in " + std::to_string(elapsed.count()) + " ms)");
  out.set_http_status(last.http_status());
  return out;
}

Status Client::Watch(const std::string& path,
                     const std::function<bool(const WatchEvent&)>& on_event, milliseconds timeout,
                     const std::atomic<bool>* stop) {
  std::string url = path;
  if (!internal::HasQueryParam(url, "watch")) url = internal::AddQuery(url, "watch", "1");
  if (!internal::HasQueryParam(url, "allowWatchBookmarks")) {
    url = internal::AddQuery(url, "allowWatchBookmarks", "true");
  }
  // Let the server end the watch cleanly just before our own deadline.
  if (timeout.count() >= 2000 && !internal::HasQueryParam(url, "timeoutSeconds")) {
    url = internal::AddQuery(url, "timeoutSeconds", std::to_string(timeout.count() / 1000));
  }
  const std::string what = "watch GET " + url;

  std::string buffer;
  size_t scanned = 0;  // bytes of `buffer` known to hold no newline
  Status result;
  bool finished = false;

  // Returns false when the watch must end (handler said so, or an error was recorded).
  auto handle_line = [&](std::string_view raw) -> bool {
    std::string line = Trim(raw);
    if (line.empty()) return true;
    Json parsed;
    try {
      parsed = Json::parse(line);
    } catch (const Json::exception& e) {
      result = DataLoss("invalid JSON in " + what + ": " + e.what());
      return false;
    }
    auto type = parsed.is_object() ? parsed.find("type") : parsed.end();
    if (!parsed.is_object() || type == parsed.end() || !type->is_string()) {
      result = DataLoss("malformed event in " + what + ": no \"type\"");
      return false;
    }
    WatchEvent event;
    event.type = type->get<std::string>();
    auto object = parsed.find("object");
    if (object != parsed.end()) event.object = std::move(*object);
    if (event.type == "ERROR") {
      int code = 500;
      std::string message;
      if (event.object.is_object()) {
        auto c = event.object.find("code");
        if (c != event.object.end() && c->is_number_integer()) code = c->get<int>();
        auto m = event.object.find("message");
        if (m != event.object.end() && m->is_string()) message = m->get<std::string>();
      }
      if (code == 410) {
        result = FailedPrecondition(what +
                                    ": resourceVersion is too old (410 Gone), re-list: " + message);
        result.set_http_status(410);
      } else {
        result = internal::StatusFromHttp("watch GET", url, code, event.object.dump());
      }
      return false;
    }
    return on_event(event);
  };

  auto on_chunk = [&](std::string_view chunk) -> bool {
    if (finished) return false;
    buffer.append(chunk);
    size_t start = 0;
    for (;;) {
      size_t nl = buffer.find('\n', std::max(start, scanned));
      if (nl == std::string::npos) break;
      std::string_view line(buffer.data() + start, nl - start);
      start = nl + 1;
      if (!handle_line(line)) {
        finished = true;
        return false;
      }
    }
    buffer.erase(0, start);
    scanned = buffer.size();
    return true;
  };

  int http_status = 0;
  std::string error_body;
  Status st = transport_->Stream(url, on_chunk, timeout, stop, &http_status, &error_body);
  if (!result.ok()) return result;
  if (!st.ok()) {
    Status out = st.WithContext(what);
    out.set_http_status(http_status < 200 || http_status > 299 ? http_status : 0);
    return out;
  }
  if (http_status != 0 && (http_status < 200 || http_status > 299)) {
    return internal::StatusFromHttp("watch GET", url, http_status, error_body);
  }
  if (!finished && !buffer.empty() && !(stop != nullptr && stop->load())) {
    // A final event without a trailing newline.
    handle_line(buffer);
    if (!result.ok()) return result;
  }
  return Status::Ok();
}

}  // namespace accel_dra::kube
