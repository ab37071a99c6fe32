// The libcurl transport and Client against a scripted local HTTP server: what goes on the wire.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "accel_dra/kube/client.h"
#include "fake_apiserver.h"

namespace accel_dra::kube {
namespace {
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::FakeApiServer;
using testing::FakeRequest;
using testing::FakeResponse;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

RetryPolicy FastRetry(int attempts) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.initial_backoff = milliseconds(1);
  p.max_backoff = milliseconds(5);
  return p;
}

class KubeWireTest : public ::testing::Test {
 protected:
  RestConfig Config() {
    RestConfig c;
    c.server = server_.url();
    c.bearer_token = "static-token";
    c.timeout = milliseconds(3000);
    c.connect_timeout = milliseconds(1000);
    return c;
  }
  std::unique_ptr<Client> NewClient(const RestConfig& config, RetryPolicy retry = FastRetry(3)) {
    auto c = Client::Create(config, retry);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }

  FakeApiServer server_;
};

TEST_F(KubeWireTest, HeadersAndKeepAliveConnectionReuse) {
  server_.SetHandler([](const FakeRequest& r) {
    return FakeResponse::Json(200, R"({"kind":"Node","metadata":{"name":")" +
                                       r.target.substr(r.target.rfind('/') + 1) + "\"}}");
  });
  auto client = NewClient(Config());
  for (int i = 0; i < 10; ++i) {
    auto node = client->Get("/api/v1/nodes/n" + std::to_string(i));
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    EXPECT_EQ((*node)["metadata"]["name"], "n" + std::to_string(i));
  }
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 10u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].target, "/api/v1/nodes/n0");
  EXPECT_EQ(reqs[0].Header("accept"), "application/json");
  EXPECT_EQ(reqs[0].Header("authorization"), "Bearer static-token");
  EXPECT_EQ(reqs[0].Header("user-agent"), "accel-dra");
  EXPECT_EQ(server_.connections(), 1) << "sequential requests must reuse one connection";
}

TEST_F(KubeWireTest, ConcurrentRequestsShareAPoolOfConnections) {
  server_.SetHandler([](const FakeRequest&) { return FakeResponse::Json(200, R"({"ok":1})"); });
  auto client = NewClient(Config());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!client->Get("/api/v1/nodes/x").ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server_.requests().size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_LE(server_.connections(), kThreads);
}

TEST_F(KubeWireTest, MethodsBodiesAndContentTypes) {
  server_.SetHandler([](const FakeRequest&) { return FakeResponse::Json(200, "{}"); });
  auto client = NewClient(Config());
  ASSERT_TRUE(client->Post("/apis/g/v1/things", Json{{"a", 1}}).ok());
  ASSERT_TRUE(client->Put("/apis/g/v1/things/t", Json{{"b", 2}}).ok());
  ASSERT_TRUE(client->Patch("/apis/g/v1/things/t", Json{{"c", 3}}).ok());
  ASSERT_TRUE(client->Delete("/apis/g/v1/things/t").ok());
  ASSERT_TRUE(client->Get("/apis/g/v1/things/t").ok());
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].body, R"({"a":1})");
  EXPECT_EQ(reqs[0].Header("content-type"), "application/json");
  EXPECT_EQ(reqs[1].method, "PUT");
  EXPECT_EQ(reqs[1].body, R"({"b":2})");
  EXPECT_EQ(reqs[2].method, "PATCH");
  EXPECT_EQ(reqs[2].Header("content-type"), "application/merge-patch+json");
  EXPECT_EQ(reqs[3].method, "DELETE");
  EXPECT_EQ(reqs[3].body, "");
  EXPECT_EQ(reqs[4].method, "GET");  // a reused handle does not keep the previous method
  EXPECT_EQ(reqs[4].body, "");
  EXPECT_EQ(reqs[4].Header("content-type"), "");
}

TEST_F(KubeWireTest, TokenFileIsReReadWhenItChanges) {
  fs::path token = fs::temp_directory_path() / ("kube-wire-token-" + std::to_string(::getpid()));
  std::ofstream(token) << "token-one\n";
  server_.SetHandler([](const FakeRequest&) { return FakeResponse::Json(200, "{}"); });
  RestConfig config = Config();
  config.token_file = token.string();  // wins over bearer_token
  auto client = NewClient(config);

  ASSERT_TRUE(client->Get("/api/v1/nodes/a").ok());
  ASSERT_TRUE(client->Get("/api/v1/nodes/a").ok());
  // Rotation with a different size.
  std::ofstream(token, std::ios::trunc) << "token-two-rotated\n";
  ASSERT_TRUE(client->Get("/api/v1/nodes/a").ok());
  // Rotation with the same size: detected by mtime.
  std::ofstream(token, std::ios::trunc) << "token-TWO-rotated\n";
  timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) + 100, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, token.c_str(), times, 0), 0);
  ASSERT_TRUE(client->Get("/api/v1/nodes/a").ok());
  fs::remove(token);

  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].Header("authorization"), "Bearer token-one");
  EXPECT_EQ(reqs[1].Header("authorization"), "Bearer token-one");
  EXPECT_EQ(reqs[2].Header("authorization"), "Bearer token-two-rotated");
  EXPECT_EQ(reqs[3].Header("authorization"), "Bearer token-TWO-rotated");
}

TEST_F(KubeWireTest, RetriesServiceUnavailableThenSucceeds) {
  server_.Enqueue(FakeResponse::Status(503, "ServiceUnavailable", "apiserver is starting"));
  server_.Enqueue(FakeResponse::Status(500, "InternalError", "etcd hiccup"));
  server_.Enqueue(FakeResponse::Json(200, R"({"kind":"Node"})"));
  auto client = NewClient(Config());
  auto r = client->Get("/api/v1/nodes/n1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server_.requests().size(), 3u);
}

TEST_F(KubeWireTest, GivesUpAfterMaxAttempts) {
  server_.SetHandler([](const FakeRequest&) {
    return FakeResponse::Status(503, "ServiceUnavailable", "etcd is down");
  });
  auto client = NewClient(Config(), FastRetry(3));
  auto r = client->Get("/api/v1/nodes/n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().http_status(), 503);
  EXPECT_THAT(r.status().message(), HasSubstr("GET /api/v1/nodes/n1: HTTP 503"));
  EXPECT_THAT(r.status().message(), HasSubstr("etcd is down"));
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(server_.requests().size(), 3u);
}

TEST_F(KubeWireTest, NoRetryOn403Or404AndMessagesAreClear) {
  server_.Enqueue(FakeResponse::Status(
      403, "Forbidden",
      "resourceclaims.resource.k8s.io \"c\" is forbidden: User \"system:node:n1\" cannot get "
      "resource \"resourceclaims\""));
  server_.Enqueue(FakeResponse::NotFound("resource.k8s.io", "resourceclaims", "c"));
  auto client = NewClient(Config(), FastRetry(5));
  const std::string path = "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c";

  auto r = client->Get(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(r.status().http_status(), 403);
  EXPECT_EQ(r.status().message(),
            "GET " + path +
                ": HTTP 403 Forbidden: resourceclaims.resource.k8s.io \"c\" is forbidden: User "
                "\"system:node:n1\" cannot get resource \"resourceclaims\"");
  EXPECT_EQ(server_.requests().size(), 1u);

  r = client->Get(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message(),
            "GET " + path + ": HTTP 404 NotFound: resourceclaims.resource.k8s.io \"c\" not found");
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(KubeWireTest, InvalidJsonIsReported) {
  server_.Enqueue(FakeResponse::Json(200, "{\"kind\": \"Node\", "));
  auto client = NewClient(Config());
  auto r = client->Get("/api/v1/nodes/n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDataLoss);
  EXPECT_THAT(r.status().message(),
              HasSubstr("invalid JSON from apiserver for GET /api/v1/nodes/n1: "));
}

TEST_F(KubeWireTest, RetryAfterIsHonouredAndCapped) {
  FakeResponse throttled = FakeResponse::Status(429, "TooManyRequests", "slow down");
  throttled.headers.push_back({"Retry-After", "30"});
  server_.Enqueue(throttled);
  server_.Enqueue(FakeResponse::Json(200, "{}"));
  RetryPolicy p;
  p.max_attempts = 3;
  p.initial_backoff = milliseconds(1);
  p.max_backoff = milliseconds(150);
  auto client = NewClient(Config(), p);
  auto r = client->Get("/api/v1/nodes/n1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  auto gap = reqs[1].received - reqs[0].received;
  EXPECT_GE(gap, milliseconds(140));   // without Retry-After the backoff would be <= 1 ms
  EXPECT_LT(gap, milliseconds(1500));  // capped at max_backoff, not 30 s
}

TEST_F(KubeWireTest, ConnectionRefusedIsRetriedThenUnavailable) {
  // A port nobody listens on: bind, read the port, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  RestConfig config = Config();
  config.server = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto client = NewClient(config, FastRetry(3));
  auto r = client->Get("/api/v1/nodes/n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().http_status(), 0);
  EXPECT_THAT(r.status().message(), HasSubstr("GET /api/v1/nodes/n1: "));
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
}

TEST_F(KubeWireTest, SlowServerHitsTheDeadline) {
  FakeResponse slow = FakeResponse::Json(200, "{}");
  slow.delay = milliseconds(3000);
  server_.Enqueue(slow);
  RestConfig config = Config();
  config.timeout = milliseconds(250);
  auto client = NewClient(config, FastRetry(5));
  auto start = Clock::now();
  auto r = client->Get("/api/v1/nodes/n1");
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded) << r.status().ToString();
  EXPECT_LT(elapsed, milliseconds(1000));
}

TEST_F(KubeWireTest, TlsMaterialAsDataIsAccepted) {
  // Plain HTTP ignores TLS options, but setting the PEM blobs must succeed with this libcurl.
  server_.SetHandler([](const FakeRequest&) { return FakeResponse::Json(200, "{}"); });
  RestConfig config = Config();
  config.ca_data = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  config.client_cert_data = config.ca_data;
  config.client_key_data = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
  auto client = NewClient(config);
  auto r = client->Get("/api/v1/nodes/n1");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

// ---- watch over the wire ----

const std::string kAdded =
    R"({"type":"ADDED","object":{"kind":"ResourceSlice","metadata":{"name":"s1","resourceVersion":"10"}}})"
    "\n";
const std::string kModified =
    R"({"type":"MODIFIED","object":{"kind":"ResourceSlice","metadata":{"name":"s1","resourceVersion":"11"}}})"
    "\n";
const std::string kBookmark =
    R"({"type":"BOOKMARK","object":{"kind":"ResourceSlice","metadata":{"resourceVersion":"12"}}})"
    "\n";

TEST_F(KubeWireTest, WatchEventsSplitAcrossChunks) {
  FakeResponse stream;
  // The first event is split mid-token; the next two arrive in one chunk.
  stream.chunks = {kAdded.substr(0, 17), kAdded.substr(17), kModified + kBookmark};
  stream.chunk_delay = milliseconds(20);
  server_.Enqueue(stream);
  auto client = NewClient(Config());
  std::vector<WatchEvent> events;
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices?labelSelector=a%3Db",
      [&](const WatchEvent& e) {
        events.push_back(e);
        return true;
      },
      milliseconds(2000));
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, "ADDED");
  EXPECT_EQ(events[0].object["metadata"]["resourceVersion"], "10");
  EXPECT_EQ(events[1].type, "MODIFIED");
  EXPECT_EQ(events[2].type, "BOOKMARK");
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target,
            "/apis/resource.k8s.io/v1/resourceslices?labelSelector=a%3Db&watch=1&"
            "allowWatchBookmarks=true&timeoutSeconds=2");
  EXPECT_EQ(reqs[0].Header("authorization"), "Bearer static-token");
}

// Bodies are bounded (issue 11): a response over RestConfig::max_response_bytes fails clearly
// and is not retried; a response at the limit is fine, also when it arrives in chunks.
TEST_F(KubeWireTest, ResponseBodyOverTheLimitFailsWithResourceExhausted) {
  RestConfig config = Config();
  config.max_response_bytes = 1024;
  const std::string at_limit = "{\"pad\":\"" + std::string(1024 - 10, 'x') + "\"}";
  ASSERT_EQ(at_limit.size(), 1024u);
  server_.Enqueue(FakeResponse::Json(200, at_limit));
  FakeResponse chunked;
  chunked.chunks = {at_limit.substr(0, 500), at_limit.substr(500, 500),
                    at_limit.substr(1000) + " "};  // 1025 bytes in three chunks
  server_.Enqueue(chunked);
  server_.Enqueue(FakeResponse::Json(500, std::string(4096, 'e')));  // an error body too
  auto client = NewClient(config);
  ASSERT_TRUE(client->Get("/api/v1/nodes/a").ok());
  for (const char* path : {"/api/v1/nodes/b", "/api/v1/nodes/c"}) {
    auto r = client->Get(path);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().ToString();
    EXPECT_THAT(r.status().message(),
                HasSubstr(std::string("the response body of GET ") + path +
                          " exceeds the limit of 1024 bytes (RestConfig::max_response_bytes)"));
  }
  EXPECT_EQ(server_.requests().size(), 3u) << "an oversized answer is not retried";
  // The default is 16 MiB.
  EXPECT_EQ(RestConfig{}.max_response_bytes, size_t{16} << 20);
}

// A single watch event over the limit ends the watch with ResourceExhausted before it is
// buffered; many events that add up to more than the limit are fine.
TEST_F(KubeWireTest, WatchEventOverTheLimitFailsWithResourceExhausted) {
  RestConfig config = Config();
  config.max_response_bytes = 256;
  const std::string big = R"({"type":"ADDED","object":{"pad":")" + std::string(300, 'x') + "\"}}\n";
  FakeResponse stream;
  stream.chunks = {kAdded,          kModified, kAdded, kModified, big.substr(0, 100),
                   big.substr(100), kBookmark};
  stream.chunk_delay = milliseconds(10);
  server_.Enqueue(stream);
  auto client = NewClient(config);
  ASSERT_LT(kAdded.size(), 256u);
  std::vector<std::string> seen;
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices",
      [&](const WatchEvent& e) {
        seen.push_back(e.type);
        return true;
      },
      milliseconds(2000));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_THAT(st.message(), HasSubstr("a single event (line) of the stream exceeds the limit of "
                                      "256 bytes (RestConfig::max_response_bytes)"));
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED", "MODIFIED", "ADDED", "MODIFIED"}));
}

TEST_F(KubeWireTest, WatchGoneIsFailedPrecondition) {
  FakeResponse stream;
  stream.chunks = {
      kAdded, R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure",)",
      R"j("message":"too old resource version: 1 (42)","reason":"Expired","code":410}})j"
      "\n"};
  stream.hold_open = true;  // the client must end the watch itself
  server_.Enqueue(stream);
  auto client = NewClient(Config());
  int seen = 0;
  auto start = Clock::now();
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices",
      [&](const WatchEvent&) {
        ++seen;
        return true;
      },
      milliseconds(5000));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("too old resource version: 1 (42)"));
  EXPECT_EQ(seen, 1);
}

TEST_F(KubeWireTest, WatchStopsPromptlyWhenStopIsSet) {
  FakeResponse stream;
  stream.chunks = {kAdded};
  stream.hold_open = true;  // then silence: only the stop flag can end it
  server_.Enqueue(stream);
  auto client = NewClient(Config());
  std::atomic<bool> stop{false};
  std::atomic<bool> got_event{false};
  Clock::time_point stop_set;
  std::thread stopper([&] {
    while (!got_event) std::this_thread::sleep_for(milliseconds(5));
    std::this_thread::sleep_for(milliseconds(100));
    stop_set = Clock::now();
    stop = true;
  });
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices",
      [&](const WatchEvent&) {
        got_event = true;
        return true;
      },
      milliseconds(10000), &stop);
  auto returned = Clock::now();
  stopper.join();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(got_event);
  EXPECT_LT(returned - stop_set, milliseconds(400));
}

TEST_F(KubeWireTest, WatchHandlerReturningFalseEndsIt) {
  FakeResponse stream;
  stream.chunks = {kAdded + kModified};
  stream.hold_open = true;
  server_.Enqueue(stream);
  auto client = NewClient(Config());
  int seen = 0;
  auto start = Clock::now();
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices",
      [&](const WatchEvent&) {
        ++seen;
        return false;
      },
      milliseconds(10000));
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(seen, 1);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

TEST_F(KubeWireTest, WatchDeadlineEndsAnIdleStream) {
  FakeResponse stream;
  stream.chunks = {kAdded};
  stream.hold_open = true;
  server_.Enqueue(stream);
  auto client = NewClient(Config());
  int seen = 0;
  auto start = Clock::now();
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices",
      [&](const WatchEvent&) {
        ++seen;
        return true;
      },
      milliseconds(300));
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(seen, 1);
  EXPECT_LT(Clock::now() - start, milliseconds(1500));
}

TEST_F(KubeWireTest, WatchHttpErrorCarriesMessage) {
  server_.Enqueue(FakeResponse::Status(
      403, "Forbidden", "resourceslices.resource.k8s.io is forbidden: cannot watch"));
  auto client = NewClient(Config());
  Status st = client->Watch(
      "/apis/resource.k8s.io/v1/resourceslices", [](const WatchEvent&) { return true; },
      milliseconds(2000));
  EXPECT_EQ(st.code(), Code::kPermissionDenied);
  EXPECT_EQ(st.http_status(), 403);
  EXPECT_THAT(st.message(), HasSubstr("is forbidden: cannot watch"));
}

}  // namespace
}  // namespace accel_dra::kube
