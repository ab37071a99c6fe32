// Fuzz target: kubeconfig loading (src/kube/config.cc LoadKubeconfig).
//
// Input: the kubeconfig file's bytes (written to a private file under /dev/shm, since
// LoadKubeconfig reads a path). Promises checked: yaml-cpp exceptions never escape, and every
// error names the file; an accepted config has a server.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "accel_dra/kube/client.h"
#include "fuzz_support.h"

namespace fs = std::filesystem;
using accel_dra::fuzz::Check;

namespace {

// A private file for the inputs, made once.
const fs::path& InputFile() {
  static const fs::path file = [] {
    fs::path dir = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    dir /= "accel-dra-kubeconfig-fuzz-" + std::to_string(::getpid());
    fs::create_directories(dir);
    return dir / "config";
  }();
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path& g_file = InputFile();
  {
    std::ofstream out(g_file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto config = accel_dra::kube::LoadKubeconfig(g_file.string());
  if (!config.ok()) {
    Check(config.status().message().find(g_file.string()) != std::string::npos,
          "an error that does not name the kubeconfig: " + config.status().message());
    return 0;
  }
  Check(!config->server.empty(), "a kubeconfig without a server was accepted");
  return 0;
}
