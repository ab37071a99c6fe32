// The libcurl Transport: a pool of reusable easy handles (each keeps its keep-alive connection),
// a shared DNS/TLS-session cache, a rotating bearer token, and a multi-handle loop for watches.

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/kube/client.h"

namespace accel_dra::kube {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The bearer token: a fixed string, or a file that is re-read whenever its identity, size or
// mtime changes (projected service-account tokens are rotated by the kubelet).
class TokenSource {
 public:
  TokenSource(std::string file, std::string fixed)
      : file_(std::move(file)), fixed_(Trim(std::move(fixed))) {}

  Expected<std::string> Get() {
    if (file_.empty()) return fixed_;
    struct stat st {};
    const bool stat_ok = ::stat(file_.c_str(), &st) == 0;
    const int stat_err = errno;
    std::lock_guard<std::mutex> lock(mu_);
    if (!stat_ok) {
      if (loaded_) return token_;  // keep using the last good token while the file is swapped
      return Status(Code::kUnauthenticated,
                    "bearer token file: " + ErrnoStatus(file_, stat_err).message());
    }
    if (loaded_ && st.st_dev == dev_ && st.st_ino == ino_ && st.st_size == size_ &&
        st.st_mtim.tv_sec == mtime_.tv_sec && st.st_mtim.tv_nsec == mtime_.tv_nsec) {
      return token_;
    }
    auto data = Env::Default()->ReadFile(file_);
    if (!data.ok()) {
      if (loaded_) return token_;
      return Status(Code::kUnauthenticated, "bearer token file: " + data.status().message());
    }
    std::string token = Trim(std::move(data).value());
    if (token.empty()) {
      if (loaded_) return token_;
      return Status(Code::kUnauthenticated, "bearer token file " + file_ + " is empty");
    }
    // The stat taken before the read: if the file changed while we read it, the next request
    // sees a different stat and reads it again.
    token_ = std::move(token);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    size_ = st.st_size;
    mtime_ = st.st_mtim;
    loaded_ = true;
    return token_;
  }

 private:
  const std::string file_;
  const std::string fixed_;
  std::mutex mu_;
  bool loaded_ = false;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  off_t size_ = 0;
  timespec mtime_{};
  std::string token_;
};

struct EasyHandle {
  EasyHandle() : curl(curl_easy_init()) {}
  ~EasyHandle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
  EasyHandle(const EasyHandle&) = delete;
  EasyHandle& operator=(const EasyHandle&) = delete;
  CURL* curl;
  std::array<char, CURL_ERROR_SIZE> errbuf{};
};

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct ResponseSink {
  std::string* body = nullptr;
  std::string retry_after;
  size_t limit = 0;
  bool too_large = false;
};

size_t WriteToString(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<ResponseSink*>(user);
  if (size * n > sink->limit - std::min(sink->limit, sink->body->size())) {
    sink->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  sink->body->append(data, size * n);
  return size * n;
}

Status TooLarge(const std::string& what, size_t limit) {
  return Status(Code::kResourceExhausted,
                what + " exceeds the limit of " + std::to_string(limit) +
                    " bytes (RestConfig::max_response_bytes); the transfer was aborted");
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    char b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

size_t HeaderLine(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<ResponseSink*>(user);
  std::string_view line(data, size * n);
  if (StartsWithNoCase(line, "HTTP/")) {
    sink->retry_after.clear();  // a new response (after 1xx) starts
  } else if (StartsWithNoCase(line, "retry-after:")) {
    line.remove_prefix(12);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) {
      line.remove_suffix(1);
    }
    sink->retry_after = std::string(line);
  }
  return size * n;
}

Status CurlError(CURLcode rc, const char* errbuf, const std::string& server,
                 std::chrono::milliseconds timeout) {
  std::string detail = curl_easy_strerror(rc);
  if (errbuf != nullptr && errbuf[0] != '\0') detail += ": " + std::string(errbuf);
  detail += " (server " + server + ")";
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return DeadlineExceeded("timed out (limit " + std::to_string(timeout.count()) +
                              " ms): " + detail);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN:
    case CURLE_WEIRD_SERVER_REPLY:
      return Unavailable(detail);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return FailedPrecondition("TLS setup failed: " + detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return InvalidArgument(detail);
    default:
      return Internal(detail);
  }
}

// The state a streaming transfer's callbacks share.
struct StreamContext {
  CURL* curl = nullptr;
  const std::function<bool(std::string_view)>* on_chunk = nullptr;
  const std::atomic<bool>* stop = nullptr;
  std::string* error_body = nullptr;
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  bool consumer_stopped = false;
  bool callback_threw = false;
  size_t line_limit = 0;  // the longest line (one watch event) accepted
  size_t line_bytes = 0;  // bytes of the current line so far
  bool too_large = false;
};

// Tracks the length of the current line across `chunk`; false when a line exceeds the limit.
bool WithinLineLimit(StreamContext* ctx, std::string_view chunk) {
  for (;;) {
    const size_t nl = chunk.find('\n');
    const size_t part = nl == std::string_view::npos ? chunk.size() : nl;
    if (part > ctx->line_limit - std::min(ctx->line_limit, ctx->line_bytes)) return false;
    if (nl == std::string_view::npos) {
      ctx->line_bytes += part;
      return true;
    }
    ctx->line_bytes = 0;
    chunk.remove_prefix(nl + 1);
  }
}

constexpr size_t kMaxErrorBody = 1 << 20;

size_t StreamWrite(char* data, size_t size, size_t n, void* user) {
  auto* ctx = static_cast<StreamContext*>(user);
  const size_t len = size * n;
  if (ctx->status == 0) curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &ctx->status);
  if (ctx->status < 200 || ctx->status > 299) {
    if (ctx->error_body != nullptr && ctx->error_body->size() < kMaxErrorBody) {
      ctx->error_body->append(data, std::min(len, kMaxErrorBody - ctx->error_body->size()));
    }
    return len;
  }
  if (!WithinLineLimit(ctx, std::string_view(data, len))) {
    ctx->too_large = true;
    return 0;  // aborts the transfer before the consumer buffers it
  }
  try {
    if (!(*ctx->on_chunk)(std::string_view(data, len))) {
      ctx->consumer_stopped = true;
      return 0;  // aborts the transfer
    }
  } catch (...) {
    ctx->callback_threw = true;
    return 0;
  }
  return len;
}

int StreamProgress(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                   curl_off_t /*ulnow*/) {
  auto* ctx = static_cast<StreamContext*>(user);
  return ctx->stop != nullptr && ctx->stop->load(std::memory_order_relaxed) ? 1 : 0;
}

// A watch with no bytes at all (not even a bookmark) for this long is treated as a dead connection.
constexpr long kStreamIdleSeconds = 120;  // NOLINT(google-runtime-int)
constexpr int kStopPollMs = 50;
constexpr size_t kMaxIdleHandles = 256;

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(const RestConfig& config)
      : config_(config), tokens_(config.token_file, config.bearer_token) {
    GlobalInit();
    while (!config_.server.empty() && config_.server.back() == '/') config_.server.pop_back();
    share_ = curl_share_init();
    if (share_ != nullptr) {
      curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlTransport::Lock);
      curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlTransport::Unlock);
      curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
  }

  ~CurlTransport() override {
    idle_.clear();  // easy handles first: they reference the share
    if (share_ != nullptr) curl_share_cleanup(share_);
  }

  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Expected<HttpResponse> Do(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& content_type,
                            std::chrono::milliseconds timeout) override {
    auto token = tokens_.Get();
    if (!token.ok()) return token.status();
    ASSIGN_OR_RETURN(std::unique_ptr<EasyHandle> h, Acquire());
    CURL* c = h->curl;

    HttpResponse resp;
    ResponseSink sink;
    sink.body = &resp.body;
    sink.limit = config_.max_response_bytes;
    Slist headers = Headers(token.value(), content_type);
    Target(h.get(), path, headers.get(), timeout);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteToString);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &HeaderLine);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
    // The handle may have served another method before: set every method option each time.
    const bool with_body = method == "POST" || !body.empty();
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
                     method == "GET" || method == "POST" ? nullptr : method.c_str());
    if (with_body) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    } else {
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(-1));
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);  // after POSTFIELDS, which implies POST
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
      Status err = sink.too_large
                       ? TooLarge("the response body of " + method + " " + path, sink.limit)
                       : CurlError(rc, h->errbuf.data(), config_.server, timeout);
      Release(std::move(h));
      return err;
    }
    long code = 0;  // NOLINT(google-runtime-int)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    resp.status = static_cast<int>(code);
    resp.retry_after = std::move(sink.retry_after);
    Release(std::move(h));
    return resp;
  }

  Status Stream(const std::string& path, const std::function<bool(std::string_view)>& on_chunk,
                std::chrono::milliseconds timeout, const std::atomic<bool>* stop, int* status,
                std::string* error_body) override {
    if (status != nullptr) *status = 0;
    if (stop != nullptr && stop->load()) return Status::Ok();
    auto token = tokens_.Get();
    if (!token.ok()) return token.status();
    // Streams get their own handle and multi handle: the transfer is driven here so that `stop`
    // is noticed within kStopPollMs even when no bytes arrive.
    ASSIGN_OR_RETURN(std::unique_ptr<EasyHandle> h, NewHandle());
    CURLM* multi = curl_multi_init();
    if (multi == nullptr) return Internal("curl_multi_init failed");
    CURL* c = h->curl;
    Slist headers = Headers(token.value(), "");
    Target(h.get(), path, headers.get(), timeout);
    StreamContext ctx;
    ctx.curl = c;
    ctx.on_chunk = &on_chunk;
    ctx.stop = stop;
    ctx.error_body = error_body;
    ctx.line_limit = config_.max_response_bytes;
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING,
                     static_cast<char*>(nullptr));  // no gzip on a stream of small events
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &StreamWrite);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &StreamProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &ctx);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kStreamIdleSeconds);

    curl_multi_add_handle(multi, c);
    bool stopped = false;
    CURLcode rc = CURLE_OK;
    for (;;) {
      if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
        stopped = true;
        break;
      }
      int running = 0;
      CURLMcode mc = curl_multi_perform(multi, &running);
      if (mc != CURLM_OK) {
        rc = CURLE_RECV_ERROR;
        break;
      }
      if (running == 0) {
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
          if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
        }
        break;
      }
      curl_multi_poll(multi, nullptr, 0, kStopPollMs, nullptr);
    }
    if (ctx.status == 0) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ctx.status);
    curl_multi_remove_handle(multi, c);
    curl_multi_cleanup(multi);
    if (status != nullptr) *status = static_cast<int>(ctx.status);

    if (ctx.callback_threw) return Internal("watch event handler threw an exception");
    if (ctx.too_large) return TooLarge("a single event (line) of the stream", ctx.line_limit);
    if (stopped || ctx.consumer_stopped || rc == CURLE_OK) return Status::Ok();
    if (rc == CURLE_ABORTED_BY_CALLBACK && stop != nullptr && stop->load()) return Status::Ok();
    // The deadline (or the idle limit) ending an established stream is a normal end.
    if (rc == CURLE_OPERATION_TIMEDOUT && ctx.status != 0) return Status::Ok();
    return CurlError(rc, h->errbuf.data(), config_.server, timeout);
  }

 private:
  static void Lock(CURL* /*handle*/, curl_lock_data data, curl_lock_access /*access*/, void* user) {
    static_cast<CurlTransport*>(user)->share_mu_[Index(data)].lock();
  }
  static void Unlock(CURL* /*handle*/, curl_lock_data data, void* user) {
    static_cast<CurlTransport*>(user)->share_mu_[Index(data)].unlock();
  }
  static size_t Index(curl_lock_data data) {
    auto i = static_cast<size_t>(data);
    return i < kShareLocks ? i : 0;
  }

  Expected<std::unique_ptr<EasyHandle>> Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (!idle_.empty()) {
        std::unique_ptr<EasyHandle> h = std::move(idle_.back());
        idle_.pop_back();
        return h;
      }
    }
    return NewHandle();
  }

  // A new, configured easy handle attached to the shared DNS/TLS-session cache.
  Expected<std::unique_ptr<EasyHandle>> NewHandle() const {
    auto h = std::make_unique<EasyHandle>();
    if (h->curl == nullptr) return Internal("curl_easy_init failed");
    RETURN_IF_ERROR(Configure(h.get()));
    return h;
  }

  void Release(std::unique_ptr<EasyHandle> h) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (idle_.size() < kMaxIdleHandles) idle_.push_back(std::move(h));
  }

  Slist Headers(const std::string& token, const std::string& content_type) const {
    curl_slist* list = curl_slist_append(nullptr, "Accept: application/json");
    if (!token.empty()) list = curl_slist_append(list, ("Authorization: Bearer " + token).c_str());
    if (!content_type.empty()) {
      list = curl_slist_append(list, ("Content-Type: " + content_type).c_str());
    }
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip for bodies
    return Slist(list);
  }

  // Per-request options. Everything else is set once per handle by Configure(); handles are not
  // reset between requests (the pooled ones only ever run Do()).
  void Target(EasyHandle* h, const std::string& path, curl_slist* headers,
              std::chrono::milliseconds timeout) const {
    CURL* c = h->curl;
    h->errbuf[0] = '\0';
    const std::string url = config_.server + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(0, timeout.count())));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  }

  // The options every request shares: timeouts, keep-alive, identity and TLS material.
  Status Configure(EasyHandle* h) const {
    CURL* c = h->curl;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf.data());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(config_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, config_.user_agent.c_str());
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (share_ != nullptr) curl_easy_setopt(c, CURLOPT_SHARE, share_);

    if (config_.insecure_skip_tls_verify) {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = CURLE_OK;
    auto blob = [](const std::string& pem) {
      curl_blob b{};
      b.data = const_cast<char*>(pem.data());  // NOLINT: libcurl does not write through it
      b.len = pem.size();
      b.flags = CURL_BLOB_NOCOPY;  // config_ outlives every handle
      return b;
    };
    if (!config_.ca_data.empty()) {
      curl_blob b = blob(config_.ca_data);
      rc = curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
      if (rc != CURLE_OK) return Setup("certificate-authority-data", rc);
    } else if (!config_.ca_file.empty()) {
      rc = curl_easy_setopt(c, CURLOPT_CAINFO, config_.ca_file.c_str());
      if (rc != CURLE_OK) return Setup("certificate-authority", rc);
    }
    if (!config_.client_cert_data.empty()) {
      curl_blob b = blob(config_.client_cert_data);
      rc = curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
      if (rc != CURLE_OK) return Setup("client-certificate-data", rc);
      curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (!config_.client_cert_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, config_.client_cert_file.c_str());
      curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (!config_.client_key_data.empty()) {
      curl_blob b = blob(config_.client_key_data);
      rc = curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
      if (rc != CURLE_OK) return Setup("client-key-data", rc);
      curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (!config_.client_key_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLKEY, config_.client_key_file.c_str());
      curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    return Status::Ok();
  }

  static Status Setup(const char* what, CURLcode rc) {
    return FailedPrecondition(std::string("cannot use ") + what +
                              " with this libcurl: " + curl_easy_strerror(rc));
  }

  static constexpr size_t kShareLocks = 16;

  RestConfig config_;
  TokenSource tokens_;
  CURLSH* share_ = nullptr;
  std::array<std::mutex, kShareLocks> share_mu_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<EasyHandle>> idle_;
};

}  // namespace

std::unique_ptr<Transport> NewCurlTransport(const RestConfig& config) {
  return std::make_unique<CurlTransport>(config);
}

}  // namespace accel_dra::kube
