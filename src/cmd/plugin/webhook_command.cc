#include "webhook_command.h"

#include <signal.h>

#include <cstdio>

#include "accel_dra/build_info.h"
#include "accel_dra/common/log.h"
#include "accel_dra/webhook/webhook.h"

namespace accel_dra {

CLI::App* AddWebhookCommand(CLI::App& app, WebhookFlags& f) {
  auto* cmd = app.add_subcommand(
      "webhook",
      "serve the validating admission webhook for ResourceClaims and ResourceClaimTemplates "
      "(HTTPS, POST " +
          std::string(webhook::kValidatePath) + ")");
  cmd->fallthrough();  // global flags (--driver-name, -v, --log-format) may follow
  cmd->add_option("--webhook-address", f.address, "address the webhook listens on")
      ->envname("WEBHOOK_ADDRESS")
      ->capture_default_str();
  cmd->add_option("--webhook-port", f.port, "HTTPS port of the webhook")
      ->envname("WEBHOOK_PORT")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  cmd->add_option("--tls-cert-file", f.tls_cert_file,
                  "PEM certificate (chain) the webhook serves; read once at start")
      ->envname("TLS_CERT_FILE")
      ->required();
  cmd->add_option("--tls-private-key-file", f.tls_key_file, "PEM private key of the certificate")
      ->envname("TLS_PRIVATE_KEY_FILE")
      ->required();
  return cmd;
}

int RunWebhook(const WebhookFlags& f, const std::string& driver_name) {
  http::ServerOptions opts;
  opts.address = f.address;
  opts.port = f.port;
  opts.tls_cert_file = f.tls_cert_file;
  opts.tls_key_file = f.tls_key_file;
  opts.threads = 4;
  auto server = webhook::Serve(opts, driver_name);
  if (!server.ok()) {
    std::fprintf(stderr, "accel-dra-plugin: error: webhook: %s\n",
                 server.status().message().c_str());
    return 1;
  }
  spdlog::info("accel-dra-plugin {} webhook for driver {} serving https://{}:{}{}",
               build_info::kVersion, driver_name, f.address, (*server)->port(),
               webhook::kValidatePath);
  // SIGINT/SIGTERM are blocked in every thread (main); wait for one.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("webhook: signal {}, stopping", sig);
  return 0;
}

}  // namespace accel_dra
