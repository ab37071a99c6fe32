#pragma once
// http::Server: a small embedded HTTP(S) server (cpp-httplib with OpenSSL) for the plugin's
// metrics and health endpoint and the admission webhook.
//
// Promises:
//  - Start() binds before it returns: a taken port or an unreadable certificate is an error
//    value naming the address and the cause, never an exception or an exit.
//  - Handlers are looked up by exact path (GET, POST, PUT, DELETE); other paths answer 404, a
//    request body over `max_body_bytes` 413. Handlers run on the server's worker threads
//    (`threads`), so they must be thread-safe; an exception in a handler is answered 500 and
//    logged.
//  - With tls_cert_file and tls_key_file set the server speaks only HTTPS (TLS 1.2 or newer);
//    the files are read once at Start().
//  - The destructor stops the server and waits for running handlers.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "accel_dra/common/status.h"

namespace accel_dra::http {

struct Request {
  std::string method;
  std::string path;  // without the query
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response(const Request&)>;

struct ServerOptions {
  std::string address = "127.0.0.1";  // "0.0.0.0" for every IPv4 address
  int port = 0;                       // 0: any free port (see Server::port())
  std::string tls_cert_file;          // PEM certificate (chain); empty: plain HTTP
  std::string tls_key_file;           // PEM private key
  int threads = 2;
  size_t max_body_bytes = 4 << 20;
};

class Server {
 public:
  static Expected<std::unique_ptr<Server>> Start(ServerOptions options,
                                                 std::map<std::string, Handler> handlers);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port it listens on.
  int port() const { return port_; }

  struct Impl;  // server.cc

 private:
  Server() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace accel_dra::http
