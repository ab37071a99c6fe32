// http::Server over cpp-httplib (Debian's libcpp-httplib, built with OpenSSL). Debian's civetweb
// 1.15 cannot serve TLS with OpenSSL 3 (it loads libssl at run time and calls
// SSL_get_peer_certificate, which OpenSSL 3 no longer exports: a null call on every connection),
// so the server is cpp-httplib; prometheus-cpp is used for its core library only.

#include "accel_dra/http/server.h"

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <utility>

#include "accel_dra/common/log.h"

namespace accel_dra::http {

struct Server::Impl {
  ServerOptions options;
  std::map<std::string, Handler> handlers;
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
};

namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return std::string(" (") + buf + ")";
}

// Sets up `ctx` from the options; on failure `error` says why.
bool SetUpTls(SSL_CTX& ctx, const ServerOptions& o, std::string& error) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, o.tls_cert_file.c_str()) != 1) {
    error = "cannot load the TLS certificate " + o.tls_cert_file +
            " (a PEM certificate chain is expected)" + OpenSslError();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "cannot load the TLS key " + o.tls_key_file + OpenSslError();
    return false;
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    error = "the TLS key " + o.tls_key_file + " does not match the certificate " + o.tls_cert_file +
            OpenSslError();
    return false;
  }
  return true;
}

void Dispatch(const Server::Impl& impl, const httplib::Request& hreq, httplib::Response& hres) {
  Request req{hreq.method, hreq.path, hreq.body};
  auto it = impl.handlers.find(req.path);
  Response resp;
  if (it == impl.handlers.end()) {
    resp = {404, "text/plain; charset=utf-8", "not found: " + req.path + "\n"};
  } else {
    try {
      resp = it->second(req);
    } catch (const std::exception& e) {
      spdlog::error("http {} {}: handler failed: {}", req.method, req.path, e.what());
      resp = {500, "text/plain; charset=utf-8", "internal error\n"};
    }
  }
  hres.status = resp.status;
  hres.set_header("Cache-Control", "no-store");
  hres.set_content(resp.body, resp.content_type.c_str());
}

}  // namespace

Expected<std::unique_ptr<Server>> Server::Start(ServerOptions options,
                                                std::map<std::string, Handler> handlers) {
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return InvalidArgument("TLS needs both a certificate file and a key file");
  }
  std::unique_ptr<Server> server(new Server());
  server->impl_ = std::make_unique<Impl>();
  Impl& impl = *server->impl_;
  impl.options = std::move(options);
  impl.handlers = std::move(handlers);
  const std::string endpoint = impl.options.address + ":" + std::to_string(impl.options.port);
  const std::string what = std::string("cannot serve HTTP") + (tls ? "S" : "") + " on " + endpoint;
  if (tls) {
    std::string error;
    const ServerOptions& o = impl.options;
    impl.server = std::make_unique<httplib::SSLServer>(
        [&o, &error](SSL_CTX& ctx) { return SetUpTls(ctx, o, error); });
    if (!impl.server->is_valid()) return Unavailable(what + ": " + error);
  } else {
    impl.server = std::make_unique<httplib::Server>();
  }
  const int threads = impl.options.threads;
  impl.server->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  impl.server->set_payload_max_length(impl.options.max_body_bytes);
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
  // process bind the same port silently and take half of the requests.
  impl.server->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  auto handle = [&impl](const httplib::Request& req, httplib::Response& res) {
    Dispatch(impl, req, res);
  };
  impl.server->Get(".*", handle).Post(".*", handle).Put(".*", handle).Delete(".*", handle);
  errno = 0;
  const int port =
      impl.options.port == 0
          ? impl.server->bind_to_any_port(impl.options.address)
          : (impl.server->bind_to_port(impl.options.address, impl.options.port) ? impl.options.port
                                                                                : -1);
  if (port < 0) {
    return Unavailable(what + ": " +
                       (errno != 0 ? std::strerror(errno) : "cannot bind (address in use?)"));
  }
  server->port_ = port;
  impl.thread = std::thread([&impl] { impl.server->listen_after_bind(); });
  // stop() before the listener runs would be lost (httplib only stops a running server), so
  // Start() returns once it runs.
  for (int i = 0; i < 5000 && !impl.server->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return server;
}

Server::~Server() {
  if (!impl_ || !impl_->server) return;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace accel_dra::http
