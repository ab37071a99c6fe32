// In-pod inspection: standard library only (see include/accel_dra/probe/inspect.h).

#include "accel_dra/probe/inspect.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <system_error>

extern char** environ;

namespace accel_dra::probe {
namespace fs = std::filesystem;
namespace {

// Own small helpers (StartsWith, Trim, Join), not common/strings.h: this file links into the
// static accel-dra-inspect, which must depend on the standard library only (no accel_dra_common).

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r')) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

// Values are single-line: newlines and carriage returns become spaces.
std::string OneLine(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\r', ' ');
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

bool LooksLikeVersion(std::string_view tok) {
  if (tok.empty() || tok[0] < '0' || tok[0] > '9') return false;
  bool dot = false;
  for (char c : tok) {
    if (c == '.') dot = true;
  }
  return dot || tok.size() <= 4;
}

bool RealCharDevice(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

}  // namespace

bool IsRuntimeDefaultDevice(std::string_view path) {
  static constexpr std::string_view kFiles[] = {"/dev/null",    "/dev/zero",    "/dev/full",
                                                "/dev/random",  "/dev/urandom", "/dev/tty",
                                                "/dev/console", "/dev/ptmx"};
  static constexpr std::string_view kDirs[] = {"/dev/pts/", "/dev/shm/", "/dev/mqueue/",
                                               "/dev/fd/"};
  for (auto f : kFiles) {
    if (path == f) return true;
  }
  for (auto d : kDirs) {
    if (StartsWith(path, d)) return true;
  }
  return false;
}

bool IsVendorDevice(std::string_view path) {
  return StartsWith(path, "/dev/nvidia") || StartsWith(path, "/dev/dri/card") ||
         StartsWith(path, "/dev/dri/renderD") || path == "/dev/kfd" ||
         StartsWith(path, "/dev/accel/accel") || StartsWith(path, "/dev/accel-sim");
}

std::string ParseDriverVersion(std::string_view content) {
  std::string first_line(content.substr(0, content.find('\n')));
  // /proc/driver/nvidia/version: the token after "Kernel Module".
  auto km = first_line.find("Kernel Module");
  std::istringstream in(km == std::string::npos ? first_line
                                                : first_line.substr(km + strlen("Kernel Module")));
  std::string tok;
  while (in >> tok) {
    if (LooksLikeVersion(tok)) return tok;
  }
  return Trim(first_line);
}

InspectResult Inspect(const InspectOptions& options) {
  InspectResult r;
  r.hostname = OneLine(options.hostname);
  auto is_char = options.is_char_device ? options.is_char_device : RealCharDevice;
  const fs::path dev = options.root / "dev";
  std::error_code ec;
  if (fs::is_directory(dev, ec)) {
    fs::recursive_directory_iterator it(dev, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const fs::path& p = it->path();
      // Lexical: symlinks (/dev/stdin, /dev/fd) must not be resolved.
      std::string rel = "/dev/" + p.lexically_relative(dev).generic_string();
      if (IsRuntimeDefaultDevice(rel + "/")) {  // a skipped directory: do not descend
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_symlink(ec)) continue;
      if (IsRuntimeDefaultDevice(rel) || !is_char(p)) continue;
      r.device_nodes.push_back(rel);
    }
  }
  std::sort(r.device_nodes.begin(), r.device_nodes.end());
  for (const auto& d : r.device_nodes) {
    if (IsVendorDevice(d)) r.accelerator_devices.push_back(d);
  }
  for (const std::string& kv : options.environ) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || !StartsWith(kv, "ACCEL_")) continue;
    r.accel_env[kv.substr(0, eq)] = OneLine(kv.substr(eq + 1));
  }
  std::vector<std::string> sources = {std::string(kDriverVersionFile),
                                      std::string(kDriverInfoVersionFile),
                                      "/proc/driver/nvidia/version"};
  for (const char* mod : {"nvidia", "amdgpu", "xe", "i915", "habanalabs"}) {
    sources.push_back(std::string("/sys/module/") + mod + "/version");
  }
  for (const auto& src : sources) {
    std::ifstream f(options.root / src.substr(1));
    if (!f) continue;
    std::stringstream ss;
    ss << f.rdbuf();
    std::string v = OneLine(ParseDriverVersion(ss.str()));
    if (v.empty()) continue;
    r.driver_version = v;
    r.driver_version_source = src;
    break;
  }
  if (std::ifstream f(options.root / std::string(kRuntimeVersionFile).substr(1)); f) {
    std::stringstream ss;
    ss << f.rdbuf();
    r.runtime_version = OneLine(Trim(ss.str()));
  }
  r.done = true;
  return r;
}

std::string FormatResult(const InspectResult& r) {
  std::ostringstream o;
  auto line = [&](std::string_view k, const std::string& v) {
    o << "RESULT: " << k << "=" << v << "\n";
  };
  line("INSPECT_VERSION", std::to_string(kInspectVersion));
  line("INSPECT_TOOL", r.tool);
  line("HOSTNAME", r.hostname);
  line("DEVICE_NODE_COUNT", std::to_string(r.device_nodes.size()));
  line("DEVICE_NODES", Join(r.device_nodes));
  line("ACCELERATOR_COUNT", std::to_string(r.accelerator_devices.size()));
  line("ACCELERATOR_DEVICES", Join(r.accelerator_devices));
  line("ACCEL_ENV_COUNT", std::to_string(r.accel_env.size()));
  for (const auto& [k, v] : r.accel_env) line("ENV_" + k, v);
  line("DRIVER_VERSION", r.driver_version);
  line("DRIVER_VERSION_SOURCE", r.driver_version_source);
  line("RUNTIME_VERSION", r.runtime_version);
  line("DONE", "true");
  return o.str();
}

InspectResult ParseResult(std::string_view text) {
  InspectResult r;
  r.tool.clear();
  std::istringstream in{std::string(text)};
  std::string l;
  auto split = [](const std::string& v) {
    std::vector<std::string> out;
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (!item.empty()) out.push_back(item);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  while (std::getline(in, l)) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    auto pos = l.find("RESULT: ");
    if (pos == std::string::npos) continue;
    std::string kv = l.substr(pos + 8);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "INSPECT_TOOL")
      r.tool = v;
    else if (k == "HOSTNAME")
      r.hostname = v;
    else if (k == "DEVICE_NODES")
      r.device_nodes = split(v);
    else if (k == "ACCELERATOR_DEVICES")
      r.accelerator_devices = split(v);
    else if (StartsWith(k, "ENV_"))
      r.accel_env[k.substr(4)] = v;
    else if (k == "DRIVER_VERSION")
      r.driver_version = v;
    else if (k == "DRIVER_VERSION_SOURCE")
      r.driver_version_source = v;
    else if (k == "RUNTIME_VERSION")
      r.runtime_version = v;
    else if (k == "DONE")
      r.done = v == "true";
  }
  return r;
}

int InspectMain(int argc, char** argv) {
  InspectOptions opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "inspect") continue;  // `accel-dra-probe inspect ...`
    if (a == "--root" && i + 1 < argc) {
      opt.root = argv[++i];
    } else if (StartsWith(a, "--root=")) {
      opt.root = a.substr(7);
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: accel-dra-inspect [--root DIR]\n"
                   "Prints what this container can reach (device nodes, ACCEL_* environment,\n"
                   "driver version) as `RESULT: KEY=VALUE` lines; see docs/probe.md.\n";
      return 0;
    } else {
      std::cerr << "accel-dra-inspect: unknown argument " << a << " (see --help)\n";
      return 2;
    }
  }
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) opt.environ.emplace_back(*e);
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) opt.hostname = host;
  std::cout << FormatResult(Inspect(opt)) << std::flush;
  return 0;
}

}  // namespace accel_dra::probe
