// Client retry, error mapping and watch decoding, over an in-memory transport.

#include "accel_dra/kube/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_transport.h"

namespace accel_dra::kube {
namespace {
using std::chrono::milliseconds;
using testing::FakeTransport;
using ::testing::HasSubstr;
using testing::Resp;
using testing::StatusBody;
using Clock = std::chrono::steady_clock;

RetryPolicy FastRetry(int attempts) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.initial_backoff = milliseconds(1);
  p.max_backoff = milliseconds(4);
  return p;
}

class KubeClientTest : public ::testing::Test {
 protected:
  void Make(RetryPolicy retry = FastRetry(3), milliseconds timeout = milliseconds(5000)) {
    auto t = std::make_unique<FakeTransport>();
    fake_ = t.get();
    client_ = std::make_unique<Client>(std::move(t), retry, timeout);
  }
  void SetUp() override { Make(); }

  FakeTransport* fake_ = nullptr;
  std::unique_ptr<Client> client_;
};

TEST_F(KubeClientTest, ErrorMappingCarriesApiserverMessageAndIsNotRetried) {
  struct Case {
    int http;
    std::string reason;
    Code code;
  };
  const std::vector<Case> cases = {
      {400, "BadRequest", Code::kInvalidArgument}, {401, "Unauthorized", Code::kUnauthenticated},
      {403, "Forbidden", Code::kPermissionDenied}, {404, "NotFound", Code::kNotFound},
      {409, "Conflict", Code::kConflict},          {409, "AlreadyExists", Code::kAlreadyExists},
      {422, "Invalid", Code::kInvalidArgument},    {410, "Gone", Code::kFailedPrecondition},
  };
  for (const Case& c : cases) {
    Make(FastRetry(5));
    // The apiserver's NotFound names the object it did not find.
    Json details = c.http == 404 ? Json{{"name", "n1"}, {"kind", "nodes"}} : Json();
    fake_->Push(
        Resp(c.http, StatusBody(c.http, c.reason, "the apiserver says " + c.reason, details)));
    auto r = client_->Get("/api/v1/nodes/n1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << c.http << " " << c.reason;
    EXPECT_EQ(r.status().http_status(), c.http);
    EXPECT_THAT(r.status().message(),
                HasSubstr("GET /api/v1/nodes/n1: HTTP " + std::to_string(c.http) + " " + c.reason +
                          ": the apiserver says " + c.reason));
    EXPECT_EQ(fake_->calls().size(), 1u) << "4xx must not be retried: " << c.http;
  }
}

TEST_F(KubeClientTest, NonStatusErrorBodyIsQuoted) {
  Make(FastRetry(1));
  fake_->Push(Resp(502, "<html>bad gateway</html>\n"));
  auto r = client_->Get("/api/v1/nodes/n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("HTTP 502 BadGateway: <html>bad gateway</html>"));
}

TEST_F(KubeClientTest, RetriesTransportErrorsThenSucceeds) {
  fake_->Push(Unavailable("connection refused"));
  fake_->Push(Resp(503, StatusBody(503, "ServiceUnavailable", "starting")));
  fake_->Push(Resp(200, R"({"kind":"Node"})"));
  auto r = client_->Get("/api/v1/nodes/n1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["kind"], "Node");
  EXPECT_EQ(fake_->calls().size(), 3u);
}

TEST_F(KubeClientTest, TransportErrorGiveUpHasNoHttpStatus) {
  for (int i = 0; i < 3; ++i) fake_->Push(Unavailable("connection refused"));
  auto r = client_->Get("/api/v1/nodes/n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().http_status(), 0);
  EXPECT_THAT(r.status().message(), HasSubstr("GET /api/v1/nodes/n1: connection refused"));
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
}

TEST_F(KubeClientTest, NonTransientTransportErrorIsNotRetried) {
  fake_->Push(FailedPrecondition("TLS setup failed: bad CA"));
  auto r = client_->Get("/api/v1/nodes/n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(fake_->calls().size(), 1u);
}

TEST_F(KubeClientTest, BackoffIsCapped) {
  RetryPolicy p;
  p.max_attempts = 6;
  p.initial_backoff = milliseconds(2);
  p.max_backoff = milliseconds(5);
  Make(p);
  fake_->OnDo([](const FakeTransport::Call&) -> Expected<HttpResponse> {
    return Resp(500, StatusBody(500, "InternalError", "boom"));
  });
  auto start = Clock::now();
  auto r = client_->Get("/x");
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(fake_->calls().size(), 6u);
  EXPECT_LT(elapsed, milliseconds(200));  // 5 sleeps of at most 5 ms each
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 6 attempts"));
  EXPECT_EQ(r.status().http_status(), 500);
}

TEST_F(KubeClientTest, DeadlineBoundsTotalTime) {
  RetryPolicy p;
  p.max_attempts = 1000;
  p.initial_backoff = milliseconds(20);
  p.max_backoff = milliseconds(20);
  Make(p, milliseconds(200));
  fake_->OnDo([](const FakeTransport::Call&) -> Expected<HttpResponse> {
    return Resp(503, StatusBody(503, "ServiceUnavailable", "overloaded"));
  });
  auto start = Clock::now();
  auto r = client_->Get("/x");
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_LT(elapsed, milliseconds(400));
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after"));
  auto calls = fake_->calls();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_LE(calls.front().timeout, milliseconds(200));
  EXPECT_LT(calls.back().timeout, calls.front().timeout);  // each attempt gets what is left
}

TEST_F(KubeClientTest, RetryAfterIsHonouredUpToTheCap) {
  RetryPolicy p;
  p.max_attempts = 3;
  p.initial_backoff = milliseconds(1);
  p.max_backoff = milliseconds(60);
  Make(p);
  fake_->Push(Resp(429, StatusBody(429, "TooManyRequests", "slow down"), "100"));
  fake_->Push(Resp(200, "{}"));
  auto start = Clock::now();
  auto r = client_->Get("/x");
  auto elapsed = Clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(elapsed, milliseconds(55));    // honoured (jitter alone would be <= 1 ms)
  EXPECT_LT(elapsed, milliseconds(1000));  // capped at max_backoff, not 100 s
}

TEST_F(KubeClientTest, SuccessBodies) {
  fake_->Push(Resp(200, ""));
  auto r = client_->Get("/x");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_object());
  EXPECT_TRUE(r->empty());

  fake_->Push(Resp(200, "{\"a\": tru"));
  r = client_->Get("/apis/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("invalid JSON from apiserver for GET /apis/x: "));
  EXPECT_EQ(fake_->calls().size(), 2u);  // not retried
}

TEST_F(KubeClientTest, MethodsBodiesAndContentTypes) {
  for (int i = 0; i < 5; ++i) fake_->Push(Resp(200, R"({"ok":true})"));
  ASSERT_TRUE(client_->Post("/p", Json{{"a", 1}}).ok());
  ASSERT_TRUE(client_->Put("/u", Json{{"b", 2}}).ok());
  ASSERT_TRUE(client_->Patch("/m", Json{{"c", 3}}).ok());
  ASSERT_TRUE(client_->Patch("/s", Json{{"d", 4}}, "application/apply-patch+yaml").ok());
  ASSERT_TRUE(client_->Delete("/d").ok());
  auto calls = fake_->calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[0].method, "POST");
  EXPECT_EQ(Json::parse(calls[0].body), (Json{{"a", 1}}));
  EXPECT_EQ(calls[0].content_type, "application/json");
  EXPECT_EQ(calls[1].method, "PUT");
  EXPECT_EQ(calls[2].method, "PATCH");
  EXPECT_EQ(calls[2].content_type, "application/merge-patch+json");
  EXPECT_EQ(calls[3].content_type, "application/apply-patch+yaml");
  EXPECT_EQ(calls[4].method, "DELETE");
  EXPECT_EQ(calls[4].path, "/d");
  EXPECT_TRUE(calls[4].body.empty());
}

// ---- watch decoding ----

const std::string kEvents =
    R"({"type":"ADDED","object":{"kind":"ResourceSlice","metadata":{"name":"a","resourceVersion":"1"}}})"
    "\n"
    R"({"type":"MODIFIED","object":{"kind":"ResourceSlice","metadata":{"name":"a","resourceVersion":"2"},"spec":{"note":"line\nbreak in a string"}}})"
    "\r\n"
    "\n"
    R"({"type":"BOOKMARK","object":{"kind":"ResourceSlice","metadata":{"resourceVersion":"3"}}})"
    "\n"
    R"({"type":"DELETED","object":{"kind":"ResourceSlice","metadata":{"name":"a","resourceVersion":"4"}}})"
    "\n";

std::vector<WatchEvent> CollectWatch(Client& client, Status* st, const std::string& path = "/w") {
  std::vector<WatchEvent> events;
  *st = client.Watch(
      path,
      [&](const WatchEvent& e) {
        events.push_back(e);
        return true;
      },
      milliseconds(5000));
  return events;
}

TEST_F(KubeClientTest, WatchDecodesEventsSplitAnywhere) {
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, kEvents.size()}) {
    fake_->SetStream(kEvents, chunk);
    Status st;
    auto events = CollectWatch(*client_, &st);
    ASSERT_TRUE(st.ok()) << st.ToString() << " chunk=" << chunk;
    ASSERT_EQ(events.size(), 4u) << "chunk=" << chunk;
    EXPECT_EQ(events[0].type, "ADDED");
    EXPECT_EQ(events[0].object["metadata"]["name"], "a");
    EXPECT_EQ(events[1].type, "MODIFIED");
    EXPECT_EQ(events[1].object["spec"]["note"], "line\nbreak in a string");
    EXPECT_EQ(events[2].type, "BOOKMARK");
    EXPECT_EQ(events[2].object["metadata"]["resourceVersion"], "3");
    EXPECT_EQ(events[3].type, "DELETED");
  }
}

TEST_F(KubeClientTest, WatchFinalEventWithoutNewline) {
  fake_->SetStream(R"({"type":"ADDED","object":{"metadata":{"name":"x"}}})", 5);
  Status st;
  auto events = CollectWatch(*client_, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(events.size(), 1u);
}

TEST_F(KubeClientTest, WatchQueryString) {
  fake_->SetStream("", 1);
  Status st;
  CollectWatch(*client_, &st, "/apis/resource.k8s.io/v1/resourceslices");
  CollectWatch(*client_, &st, "/apis/resource.k8s.io/v1/resourceslices?labelSelector=a%3Db");
  CollectWatch(*client_, &st,
               "/api/v1/nodes?watch=true&allowWatchBookmarks=false&timeoutSeconds=9");
  auto paths = fake_->stream_paths();
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(
      paths[0],
      "/apis/resource.k8s.io/v1/resourceslices?watch=1&allowWatchBookmarks=true&timeoutSeconds=5");
  EXPECT_EQ(paths[1],
            "/apis/resource.k8s.io/v1/resourceslices?labelSelector=a%3Db&watch=1&"
            "allowWatchBookmarks=true&timeoutSeconds=5");
  EXPECT_EQ(paths[2], "/api/v1/nodes?watch=true&allowWatchBookmarks=false&timeoutSeconds=9");
}

TEST_F(KubeClientTest, WatchExpiredResourceVersionIsFailedPrecondition) {
  fake_->SetStream(
      R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})"
      "\n"
      R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 5 (90)","reason":"Expired","code":410}})j"
      "\n"
      R"({"type":"ADDED","object":{"metadata":{"name":"never-delivered"}}})"
      "\n",
      11);
  Status st;
  auto events = CollectWatch(*client_, &st);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_EQ(st.http_status(), 410);
  EXPECT_THAT(st.message(), HasSubstr("too old resource version: 5 (90)"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].object["metadata"]["name"], "a");
}

TEST_F(KubeClientTest, WatchOtherErrorEvent) {
  fake_->SetStream(
      R"({"type":"ERROR","object":{"kind":"Status","message":"etcd unavailable","reason":"InternalError","code":500}})"
      "\n",
      1000);
  Status st;
  CollectWatch(*client_, &st);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_EQ(st.http_status(), 500);
  EXPECT_THAT(st.message(), HasSubstr("etcd unavailable"));
}

TEST_F(KubeClientTest, WatchInvalidJsonIsDataLoss) {
  fake_->SetStream("{\"type\":\"ADDED\",\"object\":{\"metadata\":\n", 1000);
  Status st;
  CollectWatch(*client_, &st);
  EXPECT_EQ(st.code(), Code::kDataLoss);
  EXPECT_THAT(st.message(), HasSubstr("invalid JSON in watch GET /w?watch=1"));

  fake_->SetStream("[1,2]\n", 1000);
  CollectWatch(*client_, &st);
  EXPECT_EQ(st.code(), Code::kDataLoss);
  EXPECT_THAT(st.message(), HasSubstr("no \"type\""));
}

TEST_F(KubeClientTest, WatchHandlerCanStop) {
  fake_->SetStream(kEvents, 1);
  int seen = 0;
  Status st = client_->Watch(
      "/w",
      [&](const WatchEvent&) {
        ++seen;
        return false;
      },
      milliseconds(1000));
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(seen, 1);
  EXPECT_LT(fake_->chunks_delivered(), fake_->chunk_count());
}

TEST_F(KubeClientTest, WatchHttpErrorAndTransportError) {
  fake_->SetStreamError(403, StatusBody(403, "Forbidden",
                                        "resourceslices.resource.k8s.io is forbidden: User "
                                        "\"system:anonymous\" cannot watch resource"));
  Status st;
  CollectWatch(*client_, &st);
  EXPECT_EQ(st.code(), Code::kPermissionDenied);
  EXPECT_EQ(st.http_status(), 403);
  EXPECT_THAT(st.message(), HasSubstr("cannot watch resource"));

  fake_->SetStreamError(200, "");
  fake_->SetStream("", 1);
  fake_->SetStreamResult(Unavailable("Connection refused"));
  CollectWatch(*client_, &st);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("watch GET /w?watch=1"));
  EXPECT_THAT(st.message(), HasSubstr("Connection refused"));
}

}  // namespace
}  // namespace accel_dra::kube
