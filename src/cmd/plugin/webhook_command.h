#pragma once
// `accel-dra-plugin webhook`: serves the validating admission webhook (src/webhook) over HTTPS
// until SIGTERM/SIGINT.

#include <CLI/CLI.hpp>
#include <string>

namespace accel_dra {

struct WebhookFlags {
  std::string address = "0.0.0.0";
  int port = 8443;
  std::string tls_cert_file;
  std::string tls_key_file;
};

CLI::App* AddWebhookCommand(CLI::App& app, WebhookFlags& f);
// `driver_name`: the driver whose configs are checked. Returns the exit code.
int RunWebhook(const WebhookFlags& f, const std::string& driver_name);

}  // namespace accel_dra
