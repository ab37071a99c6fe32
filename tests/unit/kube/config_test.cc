// Kubeconfig, in-cluster and ResolveConfig tests.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "accel_dra/kube/client.h"
#include "fake_apiserver.h"

namespace accel_dra::kube {
namespace {
namespace fs = std::filesystem;
using testing::Base64Encode;
using ::testing::HasSubstr;

const char kCaPem[] = "-----BEGIN CERTIFICATE-----\nMIIBCA==\n-----END CERTIFICATE-----\n";
const char kCertPem[] = "-----BEGIN CERTIFICATE-----\nMIIBCB==\n-----END CERTIFICATE-----\n";
const char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nMIIBCC==\n-----END PRIVATE KEY-----\n";

// Sets environment variables for the life of the object and restores them afterwards.
class ScopedEnv {
 public:
  void Set(const std::string& name, const std::optional<std::string>& value) {
    if (!saved_.count(name)) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old == nullptr ? std::nullopt : std::optional<std::string>(old);
    }
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

class KubeConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kube-config-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

  // A kubeconfig with two contexts: "dev" (current: token user, CA data) and "prod".
  std::string Kubeconfig(const std::string& dev_user, const std::string& extra_cluster = "") {
    return "apiVersion: v1\n"
           "kind: Config\n"
           "current-context: dev\n"
           "clusters:\n"
           "- name: dev-cluster\n"
           "  cluster:\n"
           "    server: https://dev.example:6443/\n"
           "    certificate-authority-data: " +
           Base64Encode(kCaPem) +
           "\n"
           "- name: prod-cluster\n"
           "  cluster:\n"
           "    server: https://prod.example:443\n"
           "    certificate-authority: pki/ca.crt\n" +
           extra_cluster +
           "contexts:\n"
           "- name: dev\n"
           "  context: {cluster: dev-cluster, user: dev-user}\n"
           "- name: prod\n"
           "  context: {cluster: prod-cluster, user: prod-user}\n"
           "users:\n"
           "- name: dev-user\n"
           "  user:\n" +
           dev_user +
           "- name: prod-user\n"
           "  user:\n"
           "    client-certificate: pki/client.crt\n"
           "    client-key: pki/client.key\n";
  }

  void WritePki() {
    Write("pki/ca.crt", kCaPem);
    Write("pki/client.crt", kCertPem);
    Write("pki/client.key", kKeyPem);
  }

  fs::path dir_;
};

TEST_F(KubeConfigTest, CurrentContextWithTokenAndCaData) {
  WritePki();
  std::string path = Write("config", Kubeconfig("    token: sekret\n"));
  auto config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://dev.example:6443");  // trailing slash dropped
  EXPECT_EQ(config->bearer_token, "sekret");
  EXPECT_EQ(config->ca_data, kCaPem);
  EXPECT_TRUE(config->ca_file.empty());
  EXPECT_TRUE(config->token_file.empty());
  EXPECT_FALSE(config->insecure_skip_tls_verify);
}

TEST_F(KubeConfigTest, NamedContextWithRelativeCertFilesAndCaFile) {
  WritePki();
  std::string path = Write("config", Kubeconfig("    token: sekret\n"));
  auto config = LoadKubeconfig(path, "prod");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://prod.example:443");
  EXPECT_EQ(config->ca_file, (dir_ / "pki/ca.crt").string());
  EXPECT_EQ(config->client_cert_file, (dir_ / "pki/client.crt").string());
  EXPECT_EQ(config->client_key_file, (dir_ / "pki/client.key").string());
  EXPECT_TRUE(config->bearer_token.empty());
}

TEST_F(KubeConfigTest, TokenFileResolvedAgainstKubeconfigDirectory) {
  Write("secrets/token", "from-file\n");
  std::string path = Write("config", Kubeconfig("    tokenFile: secrets/token\n"));
  auto config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->token_file, (dir_ / "secrets/token").string());
}

TEST_F(KubeConfigTest, ClientCertAndKeyData) {
  std::string path =
      Write("config", Kubeconfig("    client-certificate-data: " + Base64Encode(kCertPem) +
                                 "\n    client-key-data: " + Base64Encode(kKeyPem) + "\n"));
  auto config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->client_cert_data, kCertPem);
  EXPECT_EQ(config->client_key_data, kKeyPem);
  EXPECT_TRUE(config->client_cert_file.empty());
}

TEST_F(KubeConfigTest, InsecureSkipTlsVerify) {
  std::string text = Kubeconfig("    token: t\n",
                                "- name: lab\n"
                                "  cluster:\n"
                                "    server: https://lab:6443\n"
                                "    insecure-skip-tls-verify: true\n");
  text.replace(text.find("contexts:\n"), 10,
               "contexts:\n- name: lab\n  context: {cluster: lab, user: dev-user}\n");
  std::string path = Write("config", text);
  auto config = LoadKubeconfig(path, "lab");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->server, "https://lab:6443");
}

TEST_F(KubeConfigTest, BadBoolean) {
  std::string text = Kubeconfig("    token: t\n");
  text.replace(text.find("    server: https://dev.example:6443/\n"), 38,
               "    server: https://dev.example:6443/\n    insecure-skip-tls-verify: maybe\n");
  std::string path = Write("config", text);
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(
      config.status().message(),
      "kubeconfig " + path +
          ": cluster \"dev-cluster\": field \"insecure-skip-tls-verify\" must be true or false");
}

TEST_F(KubeConfigTest, MissingContextIsNamed) {
  std::string path = Write("config", Kubeconfig("    token: t\n"));
  auto config = LoadKubeconfig(path, "foo");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), Code::kNotFound);
  EXPECT_EQ(config.status().message(), "kubeconfig " + path + ": context \"foo\" not found");
}

TEST_F(KubeConfigTest, NoCurrentContext) {
  std::string text = Kubeconfig("    token: t\n");
  text.replace(text.find("current-context: dev\n"), 21, "");
  std::string path = Write("config", text);
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(path));
  EXPECT_THAT(config.status().message(), HasSubstr("current-context is not set"));
}

TEST_F(KubeConfigTest, UnreadableFile) {
  std::string path = (dir_ / "does-not-exist").string();
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), Code::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("kubeconfig " + path + ": cannot read file"));
}

TEST_F(KubeConfigTest, MalformedYaml) {
  std::string path = Write("config", "clusters: [\n  - name: x\n  cluster: {server: \n");
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("kubeconfig " + path + ": malformed YAML"));
}

TEST_F(KubeConfigTest, NotAMapping) {
  std::string path = Write("config", "- just\n- a list\n");
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("not a YAML mapping"));
}

TEST_F(KubeConfigTest, MissingServer) {
  std::string text = Kubeconfig("    token: t\n");
  text.replace(text.find("    server: https://dev.example:6443/\n"), 38, "");
  std::string path = Write("config", text);
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "kubeconfig " + path + ": cluster \"dev-cluster\": missing field \"server\"");
}

TEST_F(KubeConfigTest, MissingClusterAndUserEntries) {
  std::string text = Kubeconfig("    token: t\n");
  text.replace(text.find("cluster: dev-cluster, user: dev-user"), 36,
               "cluster: nope, user: dev-user");
  std::string path = Write("config", text);
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("cluster \"nope\" (used by context \"dev\") not found"));

  text = Kubeconfig("    token: t\n");
  text.replace(text.find("user: dev-user}"), 15, "user: ghost}");
  path = Write("config", text);
  config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("user \"ghost\" (used by context \"dev\") not found"));
}

TEST_F(KubeConfigTest, BadBase64AndNonPemData) {
  std::string path = Write("config", Kubeconfig("    client-certificate-data: '!!notbase64'\n"
                                                "    client-key-data: " +
                                                Base64Encode(kKeyPem) + "\n"));
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "kubeconfig " + path +
                ": user \"dev-user\": field \"client-certificate-data\" is not valid base64");

  path = Write("config", Kubeconfig("    client-certificate-data: " + Base64Encode("hello") +
                                    "\n    client-key-data: " + Base64Encode(kKeyPem) + "\n"));
  config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("does not hold PEM data"));
}

TEST_F(KubeConfigTest, MissingReferencedFileIsNamed) {
  std::string path = Write("config", Kubeconfig("    token: t\n"));
  auto config = LoadKubeconfig(path, "prod");  // pki/ files not written
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("cluster \"prod-cluster\": field \"certificate-authority\" names an "
                        "unreadable file: " +
                        (dir_ / "pki/ca.crt").string()));
}

TEST_F(KubeConfigTest, CertWithoutKeyAndUnsupportedExec) {
  Write("pki/client.crt", kCertPem);
  std::string path = Write("config", Kubeconfig("    client-certificate: pki/client.crt\n"));
  auto config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("client-key is missing"));

  path = Write("config", Kubeconfig("    exec: {command: aws}\n"));
  config = LoadKubeconfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("field \"exec\" is not supported"));
}

TEST_F(KubeConfigTest, InClusterConfig) {
  Write("sa/token", "sa-token\n");
  Write("sa/ca.crt", kCaPem);
  ScopedEnv env;
  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  auto config = InClusterConfig((dir_ / "sa").string());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token_file, (dir_ / "sa/token").string());
  EXPECT_EQ(config->bearer_token, "sa-token");
  EXPECT_EQ(config->ca_file, (dir_ / "sa/ca.crt").string());

  env.Set("KUBERNETES_SERVICE_HOST", "fd00:10:96::1");
  config = InClusterConfig((dir_ / "sa").string());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server, "https://[fd00:10:96::1]:443");
}

TEST_F(KubeConfigTest, InClusterConfigErrors) {
  ScopedEnv env;
  env.Set("KUBERNETES_SERVICE_HOST", std::nullopt);
  env.Set("KUBERNETES_SERVICE_PORT", std::nullopt);
  auto config = InClusterConfig((dir_ / "sa").string());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(config.status().message(), HasSubstr("KUBERNETES_SERVICE_HOST"));

  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  config = InClusterConfig((dir_ / "sa").string());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr((dir_ / "sa/token").string()));

  Write("sa/token", "t");
  config = InClusterConfig((dir_ / "sa").string());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr((dir_ / "sa/ca.crt").string()));
}

TEST_F(KubeConfigTest, ResolveOrder) {
  ScopedEnv env;
  env.Set("KUBERNETES_SERVICE_HOST", std::nullopt);
  env.Set("KUBERNETES_SERVICE_PORT", std::nullopt);
  env.Set("HOME", (dir_ / "home").string());
  env.Set("KUBECONFIG", std::nullopt);

  // Nothing anywhere: the error lists every source tried.
  auto config = ResolveConfig("");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("$KUBECONFIG (not set)"));
  EXPECT_THAT(config.status().message(), HasSubstr("in-cluster (KUBERNETES_SERVICE_HOST not set)"));
  EXPECT_THAT(config.status().message(), HasSubstr((dir_ / "home/.kube/config").string()));

  // ~/.kube/config.
  std::string home_config = Write("home/.kube/config", Kubeconfig("    token: home\n"));
  config = ResolveConfig("");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->bearer_token, "home");

  // $KUBECONFIG (a list; the first existing file) wins over ~/.kube/config.
  std::string env_config = Write("env-config", Kubeconfig("    token: env\n"));
  env.Set("KUBECONFIG", (dir_ / "missing").string() + ":" + env_config);
  config = ResolveConfig("");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->bearer_token, "env");

  // An explicit path wins over everything, and its errors are not masked.
  std::string explicit_config = Write("explicit", Kubeconfig("    token: explicit\n"));
  config = ResolveConfig(explicit_config);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->bearer_token, "explicit");
  config = ResolveConfig((dir_ / "nope").string());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr((dir_ / "nope").string()));
}

TEST_F(KubeConfigTest, ResolveFallsBackWhenInClusterIsIncomplete) {
  ScopedEnv env;
  Write("home/.kube/config", Kubeconfig("    token: home\n"));
  env.Set("HOME", (dir_ / "home").string());
  env.Set("KUBECONFIG", std::nullopt);
  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  // The default SA dir does not exist here, so in-cluster fails and ~/.kube/config is used.
  if (fs::exists("/var/run/secrets/kubernetes.io/serviceaccount/token")) GTEST_SKIP();
  auto config = ResolveConfig("");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->bearer_token, "home");
}

}  // namespace
}  // namespace accel_dra::kube
