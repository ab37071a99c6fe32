// Kubeconfig, in-cluster and resolution-order configuration loading.

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "accel_dra/common/env.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/kube/client.h"
#include "internal.h"

namespace accel_dra::kube {
namespace fs = std::filesystem;

namespace {

// Everything below runs inside one try block in LoadKubeconfig; yaml-cpp exceptions never escape.
class KubeconfigReader {
 public:
  KubeconfigReader(std::string path, YAML::Node root)
      : path_(std::move(path)), root_(std::move(root)) {
    dir_ = fs::path(path_).parent_path();
  }

  Expected<RestConfig> Read(const std::string& wanted_context) {
    if (!root_.IsMap()) return Error("", "the document is not a YAML mapping");
    std::string context_name = wanted_context;
    if (context_name.empty()) {
      RETURN_IF_ERROR(GetString(root_, "current-context", "", &context_name));
      if (context_name.empty()) {
        return Error("", "current-context is not set and no context was given");
      }
    }
    YAML::Node context;
    if (!FindNamed("contexts", context_name, &context)) {
      return NotFoundError("context " + Quote(context_name) + " not found");
    }
    const std::string ctx_where = "context " + Quote(context_name);
    YAML::Node ctx_body = context["context"];
    if (!ctx_body.IsMap()) return Error(ctx_where, "missing field \"context\"");
    std::string cluster_name;
    std::string user_name;
    RETURN_IF_ERROR(GetString(ctx_body, "cluster", ctx_where, &cluster_name));
    RETURN_IF_ERROR(GetString(ctx_body, "user", ctx_where, &user_name));
    if (cluster_name.empty()) return Error(ctx_where, "missing field \"cluster\"");

    RestConfig config;
    RETURN_IF_ERROR(ReadCluster(cluster_name, ctx_where, &config));
    if (!user_name.empty()) RETURN_IF_ERROR(ReadUser(user_name, ctx_where, &config));
    return config;
  }

 private:
  Status Error(const std::string& where, const std::string& what) const {
    return InvalidArgument("kubeconfig " + path_ + ": " + (where.empty() ? "" : where + ": ") +
                           what);
  }
  Status NotFoundError(const std::string& what) const {
    return NotFound("kubeconfig " + path_ + ": " + what);
  }

  // A scalar string field; absent or null leaves *out empty.
  Status GetString(const YAML::Node& map, const char* key, const std::string& where,
                   std::string* out) const {
    out->clear();
    if (!map.IsMap()) return Status::Ok();
    YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) return Status::Ok();
    if (!node.IsScalar())
      return Error(where, "field \"" + std::string(key) + "\" must be a string");
    *out = node.Scalar();
    return Status::Ok();
  }

  Status GetBool(const YAML::Node& map, const char* key, const std::string& where,
                 bool* out) const {
    YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) return Status::Ok();
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      return Error(where, "field \"" + std::string(key) + "\" must be true or false");
    }
    *out = value;
    return Status::Ok();
  }

  // A base64 "*-data" field holding PEM.
  Status GetPemData(const YAML::Node& map, const char* key, const std::string& where,
                    std::string* out) const {
    std::string encoded;
    RETURN_IF_ERROR(GetString(map, key, where, &encoded));
    out->clear();
    if (encoded.empty()) return Status::Ok();
    if (!internal::Base64Decode(encoded, out)) {
      return Error(where, "field \"" + std::string(key) + "\" is not valid base64");
    }
    if (out->find("-----BEGIN") == std::string::npos) {
      return Error(where, "field \"" + std::string(key) + "\" does not hold PEM data");
    }
    return Status::Ok();
  }

  // A file path field: resolved against the kubeconfig's directory and checked to be readable.
  Status GetFile(const YAML::Node& map, const char* key, const std::string& where,
                 std::string* out) const {
    std::string value;
    RETURN_IF_ERROR(GetString(map, key, where, &value));
    out->clear();
    if (value.empty()) return Status::Ok();
    fs::path p(value);
    if (p.is_relative()) p = dir_ / p;
    if (::access(p.c_str(), R_OK) != 0) {
      Status st = ErrnoStatus(p.string(), errno);
      return {st.code() == Code::kNotFound ? Code::kNotFound : Code::kInvalidArgument,
              "kubeconfig " + path_ + ": " + where + ": field \"" + key +
                  "\" names an unreadable file: " + st.message()};
    }
    *out = p.string();
    return Status::Ok();
  }

  // Finds the entry named `name` in the list root[list_key] ([{name: ..., ...}, ...]).
  bool FindNamed(const char* list_key, const std::string& name, YAML::Node* out) const {
    YAML::Node list = root_[list_key];
    if (!list.IsSequence()) return false;
    for (const YAML::Node& item : list) {
      if (!item.IsMap()) continue;
      YAML::Node n = item["name"];
      if (n.IsScalar() && n.Scalar() == name) {
        *out = item;
        return true;
      }
    }
    return false;
  }

  Status ReadCluster(const std::string& name, const std::string& ctx_where, RestConfig* config) {
    YAML::Node entry;
    if (!FindNamed("clusters", name, &entry)) {
      return NotFoundError("cluster " + Quote(name) + " (used by " + ctx_where + ") not found");
    }
    const std::string where = "cluster " + Quote(name);
    YAML::Node cluster = entry["cluster"];
    if (!cluster.IsMap()) return Error(where, "missing field \"cluster\"");
    RETURN_IF_ERROR(GetString(cluster, "server", where, &config->server));
    if (config->server.empty()) return Error(where, "missing field \"server\"");
    if (config->server.rfind("https://", 0) != 0 && config->server.rfind("http://", 0) != 0) {
      return Error(where, "field \"server\" must be an http:// or https:// URL, got " +
                              Quote(config->server));
    }
    while (config->server.size() > 8 && config->server.back() == '/') config->server.pop_back();
    RETURN_IF_ERROR(GetFile(cluster, "certificate-authority", where, &config->ca_file));
    RETURN_IF_ERROR(GetPemData(cluster, "certificate-authority-data", where, &config->ca_data));
    RETURN_IF_ERROR(
        GetBool(cluster, "insecure-skip-tls-verify", where, &config->insecure_skip_tls_verify));
    return Status::Ok();
  }

  Status ReadUser(const std::string& name, const std::string& ctx_where, RestConfig* config) {
    YAML::Node entry;
    if (!FindNamed("users", name, &entry)) {
      return NotFoundError("user " + Quote(name) + " (used by " + ctx_where + ") not found");
    }
    const std::string where = "user " + Quote(name);
    YAML::Node user = entry["user"];
    if (!user.IsDefined() || user.IsNull()) return Status::Ok();  // anonymous
    if (!user.IsMap()) return Error(where, "field \"user\" must be a mapping");
    RETURN_IF_ERROR(GetString(user, "token", where, &config->bearer_token));
    RETURN_IF_ERROR(GetFile(user, "tokenFile", where, &config->token_file));
    RETURN_IF_ERROR(GetFile(user, "client-certificate", where, &config->client_cert_file));
    RETURN_IF_ERROR(GetFile(user, "client-key", where, &config->client_key_file));
    RETURN_IF_ERROR(GetPemData(user, "client-certificate-data", where, &config->client_cert_data));
    RETURN_IF_ERROR(GetPemData(user, "client-key-data", where, &config->client_key_data));

    const bool has_cert = !config->client_cert_file.empty() || !config->client_cert_data.empty();
    const bool has_key = !config->client_key_file.empty() || !config->client_key_data.empty();
    if (has_cert != has_key) {
      return Error(where, has_cert ? "client-certificate is set but client-key is missing"
                                   : "client-key is set but client-certificate is missing");
    }
    const bool has_token = !config->bearer_token.empty() || !config->token_file.empty();
    if (!has_cert && !has_token) {
      for (const char* unsupported : {"exec", "auth-provider", "username"}) {
        if (user[unsupported].IsDefined()) {
          return Error(where, "field \"" + std::string(unsupported) +
                                  "\" is not supported; use token, tokenFile or a client "
                                  "certificate");
        }
      }
    }
    return Status::Ok();
  }

  std::string path_;
  fs::path dir_;
  YAML::Node root_;
};

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
  return v == nullptr ? "" : v;
}

}  // namespace

Expected<RestConfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  auto data = Env::Default()->ReadFile(path);
  if (!data.ok()) {
    return Status(data.status().code(),
                  "kubeconfig " + path + ": cannot read file: " + data.status().message());
  }
  try {
    YAML::Node root = YAML::Load(data.value());
    KubeconfigReader reader(path, root);
    return reader.Read(context);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("kubeconfig " + path + ": malformed YAML: " + e.what());
  } catch (const std::exception& e) {
    return InvalidArgument("kubeconfig " + path + ": " + e.what());
  }
}

Expected<RestConfig> InClusterConfig(const std::string& sa_dir) {
  std::string host = GetEnv("KUBERNETES_SERVICE_HOST");
  std::string port = GetEnv("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return FailedPrecondition(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set "
        "(not running in a pod?)");
  }
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  RestConfig config;
  config.server = "https://" + host + ":" + port;
  config.token_file = (fs::path(sa_dir) / "token").string();
  config.ca_file = (fs::path(sa_dir) / "ca.crt").string();
  auto token = Env::Default()->ReadFile(config.token_file);
  if (!token.ok()) {
    return Status(token.status().code(),
                  "in-cluster config: service-account token: " + token.status().message());
  }
  std::string t = token.value();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) {
    return FailedPrecondition("in-cluster config: service-account token " + config.token_file +
                              " is empty");
  }
  config.bearer_token = t;
  if (::access(config.ca_file.c_str(), R_OK) != 0) {
    Status st = ErrnoStatus(config.ca_file, errno);
    return Status(st.code(), "in-cluster config: service-account CA: " + st.message());
  }
  return config;
}

Expected<RestConfig> ResolveConfig(const std::string& kubeconfig_path) {
  if (!kubeconfig_path.empty()) return LoadKubeconfig(kubeconfig_path);
  std::string tried = "explicit kubeconfig path (none given)";

  const std::string env_kubeconfig = GetEnv("KUBECONFIG");
  if (env_kubeconfig.empty()) {
    tried += ", $KUBECONFIG (not set)";
  } else {
    // A colon-separated list: the first existing file is used (files are not merged).
    size_t start = 0;
    while (start <= env_kubeconfig.size()) {
      size_t end = env_kubeconfig.find(':', start);
      if (end == std::string::npos) end = env_kubeconfig.size();
      std::string candidate = env_kubeconfig.substr(start, end - start);
      if (!candidate.empty() && Env::Default()->Exists(candidate)) {
        return LoadKubeconfig(candidate);
      }
      start = end + 1;
    }
    tried += ", $KUBECONFIG=" + env_kubeconfig + " (no such file)";
  }

  if (!GetEnv("KUBERNETES_SERVICE_HOST").empty()) {
    auto in_cluster = InClusterConfig();
    if (in_cluster.ok()) return in_cluster;
    tried += ", in-cluster (" + in_cluster.status().message() + ")";
  } else {
    tried += ", in-cluster (KUBERNETES_SERVICE_HOST not set)";
  }

  const std::string home = GetEnv("HOME");
  if (home.empty()) {
    tried += ", ~/.kube/config ($HOME not set)";
  } else {
    fs::path p = fs::path(home) / ".kube" / "config";
    if (Env::Default()->Exists(p)) return LoadKubeconfig(p.string());
    tried += ", " + p.string() + " (no such file)";
  }
  return FailedPrecondition("no Kubernetes client configuration found; tried " + tried);
}

}  // namespace accel_dra::kube
