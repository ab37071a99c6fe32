#pragma once
// A tiny plain-HTTP/1.1 server for unit tests of the kube client: it listens on 127.0.0.1:<random>,
// answers with scripted responses (optionally streamed in chunks, delayed, or held open), supports
// keep-alive, and records every request. Fault injection only; never used outside tests.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace accel_dra::kube::testing {

struct FakeRequest {
  std::string method;
  std::string target;                          // path and query, as sent
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  int connection = 0;  // 1-based id of the TCP connection it came on
  std::chrono::steady_clock::time_point received;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct FakeResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  // before anything is sent
  // When non-empty, the body is sent with chunked encoding, one write per element, with
  // chunk_delay between writes (so the client sees them as separate reads).
  std::vector<std::string> chunks;
  std::chrono::milliseconds chunk_delay{0};
  bool hold_open = false;  // after the chunks, send nothing more until the client goes away
  bool close = false;      // close the connection after this response
  std::string content_type = "application/json";

  static FakeResponse Json(int status, std::string body) {
    FakeResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  // A metav1.Status error body; `details_json` (e.g. {"name":..,"group":..,"kind":..}) when set.
  static FakeResponse Status(int status, const std::string& reason, const std::string& message,
                             const std::string& details_json = "");
  // The apiserver's answer for an object that does not exist: Status NotFound with details naming
  // it (kind is the resource, e.g. "resourceclaims"; group "" for the core group).
  static FakeResponse NotFound(const std::string& group, const std::string& resource,
                               const std::string& name);
  // What Go's http.NotFound answers (an apiserver that does not serve the path, e.g. a group
  // version during an upgrade): text/plain "404 page not found".
  static FakeResponse PageNotFound();
};

class FakeApiServer {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;

  FakeApiServer();
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  // Responses are taken from the script first (FIFO), then from the handler; with neither the
  // server answers 500.
  void Enqueue(FakeResponse response);
  void SetHandler(Handler handler);

  std::vector<FakeRequest> requests() const;
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd, int id);
  FakeResponse Next(const FakeRequest& request);
  bool SleepUnlessStopping(std::chrono::milliseconds d) const;

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::deque<FakeResponse> script_;
  Handler handler_;
  std::vector<FakeRequest> requests_;
  std::set<int> open_fds_;
  std::vector<std::thread> workers_;
};

// Standard base64 (for building kubeconfig fixtures).
std::string Base64Encode(const std::string& in);

}  // namespace accel_dra::kube::testing
