// accel-dra-smi: the vendor tool's part for devices without one (simulated devices), from inside
// a container. It prints the driver and runtime versions the plugin published for the claim's
// device, read from the driver-info files the claim's CDI spec mounts
// (/run/accel-dra/driver/driver-version and runtime-version; docs/driver-stack.md).
//
//   accel-dra-smi                       a summary: "Driver Version: <d>   Runtime Version: <r>"
//   accel-dra-smi --query-gpu=driver_version[,...] [--format=csv,...]   one value per field
//   accel-dra-smi --result              RESULT: DRIVER_VERSION=<d> / RESULT: RUNTIME_VERSION=<r>
//
// Called as "nvidia-smi" (a link or a mount under that name) it answers the summary in
// nvidia-smi's words ("Driver Version: <d>  CUDA Version: <r>"), as a conformance script that
// parses nvidia-smi expects. Exit status 9 (as nvidia-smi's "cannot communicate with the
// driver") when the files are missing: the container holds no accel-dra device. Standard library
// only; the directory can be moved with ACCEL_DRA_DRIVER_INFO_DIR (tests).

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::optional<std::string> ReadValue(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string v = ss.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
  return v;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

struct Versions {
  std::string driver;
  std::string runtime;
};

int Query(const Versions& v, const std::string& fields) {
  int rc = 0;
  for (const auto& f : Split(fields, ',')) {
    if (f == "driver_version") {
      std::cout << v.driver << "\n";
    } else if (f == "runtime_version" || f == "cuda_version") {
      std::cout << v.runtime << "\n";
    } else {
      std::cerr << "accel-dra-smi: field \"" << f
                << "\" is not known (driver_version, runtime_version)\n";
      rc = 2;
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const char* dir_env = std::getenv("ACCEL_DRA_DRIVER_INFO_DIR");
  std::string dir = dir_env != nullptr ? dir_env : "/run/accel-dra/driver";
  std::string_view self = argv[0];
  self = self.substr(self.rfind('/') == std::string_view::npos ? 0 : self.rfind('/') + 1);
  bool as_nvidia_smi = self == "nvidia-smi";
  auto driver = ReadValue(dir + "/driver-version");
  auto runtime = ReadValue(dir + "/runtime-version");
  if (!driver && !runtime) {
    std::cerr << self << ": no driver-info files in " << dir
              << " (this container holds no accel-dra device)\n";
    return 9;
  }
  Versions v{driver.value_or(""), runtime.value_or("")};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--query-gpu=", 0) == 0) return Query(v, arg.substr(12));
    if (arg == "--result") {
      std::cout << "RESULT: DRIVER_VERSION=" << v.driver << "\n"
                << "RESULT: RUNTIME_VERSION=" << v.runtime << "\n";
      return 0;
    }
    if (arg.rfind("--format=", 0) == 0) continue;
    std::cerr << self << ": unknown argument \"" << arg
              << "\" (--query-gpu=driver_version,runtime_version, --result)\n";
    return 2;
  }
  std::cout << "accel-dra-smi (driver versions as published by accel-dra)\n"
            << "Driver Version: " << v.driver << "   "
            << (as_nvidia_smi ? "CUDA Version: " : "Runtime Version: ") << v.runtime << "\n";
  return 0;
}
