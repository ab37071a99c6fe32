#include "fake_apiserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace accel_dra::kube::testing {
namespace {

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

std::string Hex(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%zx", n);
  return buf;
}

}  // namespace

FakeResponse FakeResponse::Status(int status, const std::string& reason, const std::string& message,
                                  const std::string& details_json) {
  nlohmann::json body = {
      {"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()},
      {"status", "Failure"}, {"message", message}, {"reason", reason},
      {"code", status}};
  if (!details_json.empty()) body["details"] = nlohmann::json::parse(details_json);
  return Json(status, body.dump());
}

FakeResponse FakeResponse::NotFound(const std::string& group, const std::string& resource,
                                    const std::string& name) {
  nlohmann::json details = {{"name", name}, {"kind", resource}};
  if (!group.empty()) details["group"] = group;
  std::string qualified = group.empty() ? resource : resource + "." + group;
  return Status(404, "NotFound", qualified + " \"" + name + "\" not found", details.dump());
}

FakeResponse FakeResponse::PageNotFound() {
  FakeResponse r;
  r.status = 404;
  r.body = "404 page not found\n";
  r.content_type = "text/plain; charset=utf-8";
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

FakeApiServer::FakeApiServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) std::abort();
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) std::abort();
  if (::listen(listen_fd_, 128) != 0) std::abort();
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeApiServer::~FakeApiServer() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
}

void FakeApiServer::Enqueue(FakeResponse response) {
  std::lock_guard<std::mutex> lock(mu_);
  script_.push_back(std::move(response));
}

void FakeApiServer::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

std::vector<FakeRequest> FakeApiServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeApiServer::AcceptLoop() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    int id = ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    open_fds_.insert(fd);
    workers_.emplace_back([this, fd, id] { Serve(fd, id); });
  }
}

FakeResponse FakeApiServer::Next(const FakeRequest& request) {
  Handler handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    if (!script_.empty()) {
      FakeResponse r = std::move(script_.front());
      script_.pop_front();
      return r;
    }
    handler = handler_;
  }
  if (handler) return handler(request);
  return FakeResponse::Status(500, "InternalError", "fake apiserver: no scripted response");
}

bool FakeApiServer::SleepUnlessStopping(std::chrono::milliseconds d) const {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (stopping_) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return !stopping_;
}

void FakeApiServer::Serve(int fd, int id) {
  std::string buf;
  char tmp[16384];
  bool open = true;
  while (open && !stopping_) {
    // Read one request: headers, then Content-Length bytes of body.
    size_t header_end;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        open = false;
        break;
      }
      buf.append(tmp, static_cast<size_t>(n));
    }
    if (!open) break;
    FakeRequest req;
    req.connection = id;
    req.received = std::chrono::steady_clock::now();
    std::string head = buf.substr(0, header_end);
    buf.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.rfind(' ');
    req.method = request_line.substr(0, sp1);
    req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        req.headers[Lower(line.substr(0, colon))] = Trim(line.substr(colon + 1));
      }
      pos = e + 2;
    }
    size_t content_length = 0;
    if (!req.Header("content-length").empty()) {
      content_length = std::stoul(req.Header("content-length"));
    }
    while (buf.size() < content_length) {
      ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        open = false;
        break;
      }
      buf.append(tmp, static_cast<size_t>(n));
    }
    if (!open) break;
    req.body = buf.substr(0, content_length);
    buf.erase(0, content_length);

    FakeResponse resp = Next(req);
    if (resp.delay.count() > 0 && !SleepUnlessStopping(resp.delay)) break;
    std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + Reason(resp.status) +
                      "\r\nContent-Type: " + resp.content_type + "\r\n";
    for (const auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
    if (resp.close) out += "Connection: close\r\n";
    if (resp.chunks.empty()) {
      out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n\r\n" + resp.body;
      if (!SendAll(fd, out)) break;
    } else {
      out += "Transfer-Encoding: chunked\r\n\r\n";
      if (!SendAll(fd, out)) break;
      bool ok = true;
      for (size_t i = 0; i < resp.chunks.size() && ok; ++i) {
        if (i > 0 && resp.chunk_delay.count() > 0) ok = SleepUnlessStopping(resp.chunk_delay);
        const std::string& c = resp.chunks[i];
        if (ok && !c.empty()) ok = SendAll(fd, Hex(c.size()) + "\r\n" + c + "\r\n");
      }
      if (!ok) break;
      if (resp.hold_open) {
        // Wait until the client hangs up or the server stops.
        while (!stopping_) {
          pollfd p{fd, POLLIN, 0};
          int r = ::poll(&p, 1, 20);
          if (r > 0) {
            ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
            if (n <= 0) break;
          }
        }
        break;
      }
      if (!SendAll(fd, "0\r\n\r\n")) break;
    }
    if (resp.close) break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(fd);
  }
  ::close(fd);
}

std::string Base64Encode(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  if (i + 1 == in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace accel_dra::kube::testing
