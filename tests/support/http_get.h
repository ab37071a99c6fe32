#pragma once
// Test support: a minimal blocking HTTP/1.1 client over loopback TCP (plain HTTP only), for
// tests of the embedded HTTP endpoints.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace accel_dra::test_support {

struct HttpAnswer {
  int status = 0;  // 0: no connection
  std::string body;
};

inline HttpAnswer HttpRequest(int port, const std::string& method, const std::string& path,
                              const std::string& body = "") {
  HttpAnswer out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return out;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return out;
  }
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto sp = raw.find(' ');
  auto head_end = raw.find("\r\n\r\n");
  if (sp == std::string::npos || head_end == std::string::npos) return out;
  out.status = std::stoi(raw.substr(sp + 1, 3));
  out.body = raw.substr(head_end + 4);
  return out;
}

inline HttpAnswer HttpGet(int port, const std::string& path) {
  return HttpRequest(port, "GET", path);
}

}  // namespace accel_dra::test_support
