#pragma once
// An in-memory Transport for Client/ResourceApi unit tests: scripted answers, recorded calls.

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "accel_dra/kube/client.h"

namespace accel_dra::kube::testing {

inline HttpResponse Resp(int status, std::string body, std::string retry_after = "") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.retry_after = std::move(retry_after);
  return r;
}

// A metav1.Status error body; `details` (name, group, kind) when not null.
inline std::string StatusBody(int code, const std::string& reason, const std::string& message,
                              const Json& details = nullptr) {
  Json body = {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
               {"code", code},     {"reason", reason},   {"message", message}};
  if (!details.is_null()) body["details"] = details;
  return body.dump();
}

// The apiserver's NotFound for the object a request path names, as it sends it: details name the
// object, its resource (plural, as "kind") and its group (omitted for the core group). The path's
// last two segments are taken as resource and name (no subresources in the tests using it).
inline std::string NotFoundBodyFor(const std::string& path) {
  std::string p = path.substr(0, path.find('?'));
  std::vector<std::string> seg;
  for (size_t i = 1; i <= p.size();) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    seg.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  Json details = {{"name", seg.back()}, {"kind", seg[seg.size() - 2]}};
  std::string group = seg[0] == "apis" ? seg[1] : "";
  if (!group.empty()) details["group"] = group;
  std::string qualified = seg[seg.size() - 2] + (group.empty() ? "" : "." + group);
  return StatusBody(404, "NotFound", qualified + " \"" + seg.back() + "\" not found", details);
}

class FakeTransport : public Transport {
 public:
  struct Call {
    std::string method;
    std::string path;
    std::string body;
    std::string content_type;
    std::chrono::milliseconds timeout{0};
  };
  using DoFn = std::function<Expected<HttpResponse>(const Call&)>;

  Expected<HttpResponse> Do(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& content_type,
                            std::chrono::milliseconds timeout) override {
    Call call{method, path, body, content_type, timeout};
    DoFn fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(call);
      if (!script_.empty()) {
        Expected<HttpResponse> r = std::move(script_.front());
        script_.pop_front();
        return r;
      }
      fn = on_do_;
    }
    if (fn) return fn(call);
    return Resp(500, StatusBody(500, "InternalError", "fake transport: nothing scripted"));
  }

  Status Stream(const std::string& path, const std::function<bool(std::string_view)>& on_chunk,
                std::chrono::milliseconds /*timeout*/, const std::atomic<bool>* /*stop*/,
                int* status, std::string* error_body) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stream_paths_.push_back(path);
    }
    *status = stream_status_;
    if (stream_status_ < 200 || stream_status_ > 299) {
      *error_body = stream_error_body_;
      return Status::Ok();
    }
    for (const std::string& chunk : stream_chunks_) {
      ++chunks_delivered_;
      if (!on_chunk(chunk)) break;
    }
    return stream_result_;
  }

  void Push(Expected<HttpResponse> r) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(std::move(r));
  }
  void OnDo(DoFn fn) {
    std::lock_guard<std::mutex> lock(mu_);
    on_do_ = std::move(fn);
  }
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<std::string> stream_paths() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stream_paths_;
  }

  // Splits `text` into chunks of `size` bytes for the next Stream.
  void SetStream(const std::string& text, size_t size) {
    stream_chunks_.clear();
    for (size_t i = 0; i < text.size(); i += size) stream_chunks_.push_back(text.substr(i, size));
  }
  void SetStreamError(int status, std::string body) {
    stream_status_ = status;
    stream_error_body_ = std::move(body);
  }
  void SetStreamResult(Status st) { stream_result_ = std::move(st); }
  size_t chunks_delivered() const { return chunks_delivered_; }
  size_t chunk_count() const { return stream_chunks_.size(); }

 private:
  mutable std::mutex mu_;
  std::deque<Expected<HttpResponse>> script_;
  DoFn on_do_;
  std::vector<Call> calls_;
  std::vector<std::string> stream_paths_;
  std::vector<std::string> stream_chunks_;
  int stream_status_ = 200;
  std::string stream_error_body_;
  Status stream_result_;
  size_t chunks_delivered_ = 0;
};

}  // namespace accel_dra::kube::testing
