#pragma once
// A small Kubernetes API client: what accel-dra needs and nothing more.
//
// Promises:
//  - Every request has a deadline (RestConfig::timeout) that covers all its retries and backoff
//    sleeps; nothing blocks forever.
//  - Transient failures (connection refused/reset, timeouts, HTTP 429 and 5xx) are retried with
//    capped exponential backoff and full jitter, up to RetryPolicy::max_attempts; a Retry-After
//    header is honoured up to the cap. Other failures are returned at once.
//  - A failed request returns a Status whose http_status() is the HTTP code (0 for transport
//    errors) and whose message carries the apiserver's Status.message when the body has one.
//    Mapping: 400/422 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
//    409 Conflict (AlreadyExists when reason is AlreadyExists), 429/5xx Unavailable.
//  - NotFound means the apiserver said the object is gone: a 404 whose body is a Status of reason
//    NotFound naming the requested object (details.name; details.kind/group where given). Any
//    other 404 — a bare "404 page not found" (text/plain) from a server that does not serve the
//    group version, e.g. during an upgrade, or a Status about another object — is Unavailable with
//    http_status() 404: the caller does not know whether the object exists.
//  - Connections are kept alive and reused; the client is safe to use from many threads at once.
//  - A bearer token file (in-cluster projected token) is re-read when its mtime or size changes.
//  - Bodies are bounded: a response, or a single watch event, larger than
//    RestConfig::max_response_bytes (16 MiB by default) fails with ResourceExhausted.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"

namespace accel_dra::kube {

using Json = nlohmann::json;

struct RestConfig {
  std::string server;  // "https://127.0.0.1:6443"
  std::string bearer_token;
  std::string token_file;  // re-read on change; wins over bearer_token when set
  std::string ca_file;
  std::string ca_data;  // PEM
  std::string client_cert_file;
  std::string client_key_file;
  std::string client_cert_data;  // PEM
  std::string client_key_data;   // PEM
  bool insecure_skip_tls_verify = false;
  std::string user_agent = "accel-dra";
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds connect_timeout{3000};
  // The most bytes of one response body (after decompression), and of one line of a streamed
  // body (one watch event), the transport accepts. More fails the request with
  // ResourceExhausted naming the limit (not retried) instead of growing memory without bound.
  size_t max_response_bytes = size_t{16} << 20;
};

// Reads a kubeconfig file: the named context, or current-context when `context` is empty.
// Understands token, tokenFile, client-certificate(-data), client-key(-data),
// certificate-authority(-data) and insecure-skip-tls-verify; relative file paths are resolved
// against the kubeconfig's directory. Errors name the file and the missing/bad field.
Expected<RestConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

// In-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and the service-account token and CA
// under `sa_dir` (default /var/run/secrets/kubernetes.io/serviceaccount).
Expected<RestConfig> InClusterConfig(
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// The usual resolution order: explicit path, then $KUBECONFIG, then in-cluster, then
// ~/.kube/config. The error says which sources were tried.
Expected<RestConfig> ResolveConfig(const std::string& kubeconfig_path);

struct RetryPolicy {
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string retry_after;  // raw Retry-After header, if any
};

// One HTTP exchange. The real one uses libcurl; tests substitute one to inject faults.
class Transport {
 public:
  virtual ~Transport() = default;
  // Transport-level failures (refused, reset, timeout) return Unavailable/DeadlineExceeded.
  virtual Expected<HttpResponse> Do(const std::string& method, const std::string& path,
                                    const std::string& body, const std::string& content_type,
                                    std::chrono::milliseconds timeout) = 0;
  // Streams a long-running GET (watch), calling on_chunk for each chunk of body bytes.
  // Returns when the server closes, on_chunk returns false, `stop` becomes true, or the timeout
  // passes (then OK). The HTTP status (non-2xx bodies are collected, not streamed) is in *status.
  virtual Status Stream(const std::string& path,
                        const std::function<bool(std::string_view)>& on_chunk,
                        std::chrono::milliseconds timeout, const std::atomic<bool>* stop,
                        int* status, std::string* error_body) = 0;
};

std::unique_ptr<Transport> NewCurlTransport(const RestConfig& config);

// A watch event: type is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
struct WatchEvent {
  std::string type;
  Json object;
};

class Client {
 public:
  Client(std::unique_ptr<Transport> transport, RetryPolicy retry = {},
         std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  static Expected<std::unique_ptr<Client>> Create(const RestConfig& config, RetryPolicy retry = {});

  // Raw JSON calls; `path` starts with "/api" or "/apis" and may carry a query string.
  Expected<Json> Get(const std::string& path);
  Expected<Json> Post(const std::string& path, const Json& body);
  Expected<Json> Put(const std::string& path, const Json& body);
  Expected<Json> Patch(const std::string& path, const Json& body,
                       const std::string& content_type = "application/merge-patch+json");
  Status Delete(const std::string& path);
  // A GET whose answer is not JSON (e.g. pod logs: /api/v1/namespaces/NS/pods/NAME/log); returns
  // the body as is. Same retries and error mapping as the JSON calls.
  Expected<std::string> GetText(const std::string& path);

  // Watches `path` (a collection URL; "watch=1" and "allowWatchBookmarks=true" are added, and
  // "timeoutSeconds" when `timeout` is at least 2 s). Calls on_event for every event until it
  // returns false, `stop` is set (noticed within ~50 ms), the server ends the stream, or `timeout`
  // passes; all of these return OK. ERROR events are not passed to on_event: they end the watch
  // with the Status they carry, and a 410 Gone (expired resourceVersion) is returned as
  // FailedPrecondition so the caller can re-list. Unparseable events end it with DataLoss, a
  // broken connection with Unavailable. The watch itself is not retried.
  Status Watch(const std::string& path, const std::function<bool(const WatchEvent&)>& on_event,
               std::chrono::milliseconds timeout, const std::atomic<bool>* stop = nullptr);

 private:
  Expected<Json> Call(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& content_type);
  Expected<std::string> CallRaw(const std::string& method, const std::string& path,
                                const std::string& body, const std::string& content_type);
  std::unique_ptr<Transport> transport_;
  RetryPolicy retry_;
  std::chrono::milliseconds timeout_;
};

// Typed helpers for the objects the driver uses. Objects are exchanged in the resource.k8s.io/v1
// shape whatever version the server serves; v1beta1 (slice devices[].basic, claim requests without
// "exactly") is converted on the way. Returned objects carry apiVersion "resource.k8s.io/v1".
// Thread-safe.
class ResourceApi {
 public:
  explicit ResourceApi(Client* client) : client_(client) {}

  // Discovers the newest served resource.k8s.io version: "v1", else "v1beta2", else "v1beta1".
  // Cached after the first success. FailedPrecondition when none is served.
  Expected<std::string> Version();

  struct SliceList {
    std::vector<Json> items;
    std::string resource_version;
  };
  // Selectors use the API's syntax ("a=b,c=d"); empty means none.
  Expected<SliceList> ListResourceSlices(const std::string& label_selector,
                                         const std::string& field_selector);
  // Watches slices from `resource_version` (see Client::Watch).
  Status WatchResourceSlices(const std::string& label_selector, const std::string& field_selector,
                             const std::string& resource_version,
                             const std::function<bool(const WatchEvent&)>& on_event,
                             std::chrono::milliseconds timeout,
                             const std::atomic<bool>* stop = nullptr);
  Expected<Json> CreateResourceSlice(const Json& slice);
  Expected<Json> UpdateResourceSlice(const Json& slice);
  Status DeleteResourceSlice(const std::string& name);

  // NotFound only when the apiserver says this claim does not exist (see the mapping above). A
  // 404 that is not such an answer also forgets the discovered version, so the next call
  // discovers again (an upgrade may have stopped serving it).
  Expected<Json> GetResourceClaim(const std::string& ns, const std::string& name);
  Expected<Json> GetNode(const std::string& name);
  // Watches the one Node `name` from `resource_version` (see Client::Watch; events carry the
  // v1 Node object).
  Status WatchNode(const std::string& name, const std::string& resource_version,
                   const std::function<bool(const WatchEvent&)>& on_event,
                   std::chrono::milliseconds timeout, const std::atomic<bool>* stop = nullptr);

  // Any resource.k8s.io object in the v1 shape. `resource` is the plural ("deviceclasses",
  // "resourceclaims", "resourceclaimtemplates", "resourceslices"); `ns` is empty for
  // cluster-scoped ones. Claims and claim templates are converted to and from v1beta1 when that is
  // what the server serves. ListObjects takes a label selector ("" for all).
  Expected<Json> CreateObject(const std::string& resource, const std::string& ns, const Json& obj);
  Expected<Json> GetObject(const std::string& resource, const std::string& ns,
                           const std::string& name);
  Expected<std::vector<Json>> ListObjects(const std::string& resource, const std::string& ns,
                                          const std::string& label_selector = "");
  // NotFound counts as success (the object is gone either way).
  Status DeleteObject(const std::string& resource, const std::string& ns, const std::string& name);
  // The resource names (plurals, without subresources) the discovered version serves.
  Expected<std::vector<std::string>> ServedResources();

 private:
  std::string Base();
  // A 404 that is not a NotFound: the cached version may no longer be served.
  void ForgetVersionIfNotServed(const Status& st);
  std::string ObjectPath(const std::string& resource, const std::string& ns,
                         const std::string& name);
  Client* client_;
  std::mutex mu_;
  std::string version_;
};

// api.Version(), retried every `interval` while the apiserver cannot be reached (Unavailable,
// DeadlineExceeded) until `deadline`: a plugin often starts before the network is ready. Any other
// error, or the last one at the deadline, is returned at once.
Expected<std::string> WaitForVersion(
    ResourceApi& api, std::chrono::steady_clock::time_point deadline,
    std::chrono::milliseconds interval = std::chrono::milliseconds(500));

// The core (v1) objects the conformance probe uses. Thread-safe.
class CoreApi {
 public:
  explicit CoreApi(Client* client) : client_(client) {}

  // GET /version (gitVersion, major, minor, ...).
  Expected<Json> ServerVersion();
  Expected<Json> CreateNamespace(const std::string& name, const Json& labels = Json::object());
  Expected<Json> GetNamespace(const std::string& name);
  // NotFound counts as success.
  Status DeleteNamespace(const std::string& name);
  Expected<Json> GetServiceAccount(const std::string& ns, const std::string& name);
  Expected<Json> CreatePod(const std::string& ns, const Json& pod);
  Expected<Json> GetPod(const std::string& ns, const std::string& name);
  Expected<std::vector<Json>> ListPods(const std::string& ns,
                                       const std::string& label_selector = "");
  // Deletes with the given grace period (seconds; negative: the pod's own). NotFound is success.
  Status DeletePod(const std::string& ns, const std::string& name, int grace_seconds = -1);
  // GET /api/v1/namespaces/NS/pods/NAME/log?container=C (container may be empty).
  Expected<std::string> PodLogs(const std::string& ns, const std::string& name,
                                const std::string& container);
  Expected<std::vector<Json>> ListNodes(const std::string& label_selector = "");
  // Events of one namespace, optionally filtered ("involvedObject.name=x").
  Expected<std::vector<Json>> ListEvents(const std::string& ns,
                                         const std::string& field_selector = "");

 private:
  Client* client_;
};

}  // namespace accel_dra::kube
