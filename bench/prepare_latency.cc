// accel-dra-prepare-bench: calls NodePrepareResources / NodeUnprepareResources on a plugin's DRA
// socket the way kubelet does (one claim per call), with N calls in flight, and prints latency
// percentiles. Claims come from a file of "namespace/name/uid" lines; each worker cycles through
// its own claims (prepare, then unprepare, so every prepare really GETs the claim).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "accel_dra/kubelet/kubelet_client.h"

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  std::string claims_file;
  int concurrency = 64;
  int rounds = 20;
  std::string api = "v1";
  CLI::App app{"accel-dra-prepare-bench"};
  app.add_option("--socket", socket, "DRA socket")->required();
  app.add_option("--claims", claims_file, "file with namespace/name/uid lines")->required();
  app.add_option("--concurrency", concurrency, "calls in flight")->capture_default_str();
  app.add_option("--rounds", rounds, "prepare+unprepare cycles per claim")->capture_default_str();
  app.add_option("--api", api, "v1 or v1beta1")->check(CLI::IsMember({"v1", "v1beta1"}));
  CLI11_PARSE(app, argc, argv);

  std::vector<accel_dra::model::ClaimRef> claims;
  std::ifstream in(claims_file);
  for (std::string line; std::getline(in, line);) {
    auto a = line.find('/');
    auto b = line.find('/', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    claims.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  if (claims.empty() || concurrency < 1) {
    std::fprintf(stderr, "no claims in %s\n", claims_file.c_str());
    return 2;
  }
  auto version = api == "v1" ? accel_dra::kubelet::DraApiVersion::kV1
                             : accel_dra::kubelet::DraApiVersion::kV1beta1;

  std::mutex mu;
  std::vector<double> prepare_ms;
  std::vector<double> unprepare_ms;
  std::atomic<int> errors{0};
  std::string first_error;
  // One shared client (kubelet keeps one connection per plugin).
  accel_dra::kubelet::DraClient client(socket, version);
  auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&, w] {
      std::vector<double> p;
      std::vector<double> u;
      for (int r = 0; r < rounds; ++r) {
        for (size_t i = static_cast<size_t>(w); i < claims.size();
             i += static_cast<size_t>(concurrency)) {
          auto a = Clock::now();
          auto res = client.NodePrepareResources({claims[i]}, std::chrono::seconds(45));
          auto b = Clock::now();
          bool ok = res.ok() && res->count(claims[i].uid) && res->at(claims[i].uid).ok();
          if (!ok) {
            std::lock_guard<std::mutex> lock(mu);
            if (errors++ == 0) {
              first_error = res.ok() ? (res->count(claims[i].uid) ? res->at(claims[i].uid).error
                                                                  : "missing entry")
                                     : res.status().ToString();
            }
          }
          p.push_back(std::chrono::duration<double, std::milli>(b - a).count());
          auto c = Clock::now();
          (void)client.NodeUnprepareResources({claims[i]}, std::chrono::seconds(45));
          u.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c).count());
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      prepare_ms.insert(prepare_ms.end(), p.begin(), p.end());
      unprepare_ms.insert(unprepare_ms.end(), u.begin(), u.end());
    });
  }
  for (auto& t : workers) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("prepare   calls=%zu in_flight=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
              prepare_ms.size(), concurrency, Percentile(prepare_ms, 50),
              Percentile(prepare_ms, 90), Percentile(prepare_ms, 99), Percentile(prepare_ms, 100));
  std::printf("unprepare calls=%zu p50=%.2fms p99=%.2fms\n", unprepare_ms.size(),
              Percentile(unprepare_ms, 50), Percentile(unprepare_ms, 99));
  std::printf("throughput %.0f prepare+unprepare cycles/s, errors=%d%s%s\n",
              static_cast<double>(prepare_ms.size()) / secs, errors.load(),
              first_error.empty() ? "" : " first: ", first_error.c_str());
  return errors.load() == 0 ? 0 : 1;
}
