// http::Server: routing, body limit, handler exceptions, bad TLS files.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "accel_dra/http/server.h"
#include "http_get.h"

namespace accel_dra::http {
namespace {

using test_support::HttpRequest;
using ::testing::HasSubstr;

TEST(HttpServerTest, RoutesByExactPathAndPassesTheBody) {
  std::map<std::string, Handler> handlers;
  handlers["/echo"] = [](const Request& r) {
    return Response{200, "text/plain", r.method + " " + r.path + " " + r.body};
  };
  handlers["/throw"] = [](const Request&) -> Response { throw std::runtime_error("boom"); };
  ServerOptions o;
  o.max_body_bytes = 10;
  auto s = Server::Start(o, handlers);
  ASSERT_TRUE(s.ok()) << s.status().message();
  int port = (*s)->port();
  auto echo = HttpRequest(port, "POST", "/echo", "hello");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, "POST /echo hello");
  EXPECT_EQ(HttpRequest(port, "POST", "/echo", "01234567890123456789").status, 413);
  EXPECT_EQ(HttpRequest(port, "GET", "/echo/sub").status, 404);
  EXPECT_EQ(HttpRequest(port, "GET", "/throw").status, 500);
  EXPECT_EQ(HttpRequest(port, "GET", "/echo").status, 200);  // still serving
}

TEST(HttpServerTest, TlsNeedsBothFilesAndReadableOnes) {
  ServerOptions o;
  o.tls_cert_file = "/nonexistent/tls.crt";
  auto half = Server::Start(o, {});
  ASSERT_FALSE(half.ok());
  EXPECT_THAT(half.status().message(), HasSubstr("needs both a certificate file and a key file"));
  o.tls_key_file = "/nonexistent/tls.key";
  auto missing = Server::Start(o, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(),
              HasSubstr("cannot load the TLS certificate /nonexistent/tls.crt"));
}

}  // namespace
}  // namespace accel_dra::http
