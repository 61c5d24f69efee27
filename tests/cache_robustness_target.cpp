// Pipelines for the step-cache robustness tests that need several processes
// or a real file system (cache_robustness.sh):
//
//   cache_robustness_target slow CACHE LOG GATE
//       one step, "slow", that appends "slow <pid>" to LOG, then waits until
//       the file GATE exists; leases with a 1 s TTL renewed every 200 ms.
//       Prints "slow = 42".
//   cache_robustness_target elements CACHE LOG FIRST COUNT
//       ps::map over FIRST .. FIRST+COUNT-1; each element computed appends
//       "e <x> <pid>" to LOG after a little real work. Prints the sum.
//   cache_robustness_target cli ARGS...
//       ps::main over: megabytes ── big (a vector of that many MB) ── total;
//       for a full disk under the real command line.
//   cache_robustness_target files ARGS...
//       ps::main over: megabytes ── written (a command writing that many MB
//       of "abcdefgh\n" lines to an output file) ── lines (a C++ step
//       counting them); for step files on a full cache disk.
//
// Lines go to LOG with O_APPEND and one write() each, so processes never
// interleave them.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <penstock/penstock.hpp>

namespace ps = penstock;

namespace {

void append(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  const auto written = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) throw std::runtime_error("cannot append to " + path);
}

ps::run_options options_for(const std::string& cache) {
  ps::run_options options;
  options.threads = 2;
  options.cache.enabled = true;
  options.cache.directory = cache;
  options.cache.lease_ttl = std::chrono::seconds{1};
  options.cache.lease_renewal = std::chrono::milliseconds{200};
  return options;
}

int report(const ps::run_report& report) {
  for (const auto& s : report.steps)
    if (!s.cache_note.empty()) std::fprintf(stderr, "warning: step '%s': %s\n", s.name.c_str(), s.cache_note.c_str());
  std::fprintf(stderr, "%s\n", report.summary().c_str());
  return report.ok() ? 0 : 1;
}

int slow(const std::string& cache, const std::string& log, const std::string& gate) {
  auto slow = ps::step<"slow">([log, gate](ps::context& ctx) {
    append(log, "slow " + std::to_string(::getpid()) + "\n");
    // Polls the gate file: the test decides how long this step lasts.
    while (!std::filesystem::exists(gate)) {
      ctx.throw_if_stop_requested();
      ::usleep(10'000);
    }
    return 42;
  })();
  const auto p = ps::pipeline<"leases">(slow);
  const auto result = p.run(options_for(cache));
  if (result.ok()) std::printf("slow = %d\n", result.value(slow));
  return report(result.report());
}

int elements(const std::string& cache, const std::string& log, long first, long count) {
  // Parameters, not captures: a capture is no part of a step's key.
  auto from = ps::param<long>("first");
  auto size = ps::param<long>("count");
  auto ids = ps::step<"ids">([](long first_id, long n) {
    std::vector<long> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), first_id);
    return v;
  })(from, size);
  auto squares = ps::map<"square">([log](long x) {
    // A little real work, so that processes overlap while they compute.
    volatile std::uint64_t acc = 0;
    for (std::uint64_t k = 0; k < 2'000'000; ++k) acc = acc + (k ^ static_cast<std::uint64_t>(x));
    append(log, "e " + std::to_string(x) + " " + std::to_string(::getpid()) + "\n");
    return x * x;
  })(ids);
  auto total =
      ps::step<"total">([](const std::vector<long>& v) { return std::accumulate(v.begin(), v.end(), 0L); })(squares);
  const auto p = ps::pipeline<"elements">(total);
  auto options = options_for(cache);
  options.params = {{"first", std::to_string(first)}, {"count", std::to_string(count)}};
  const auto result = p.run(options);
  if (result.ok()) std::printf("total = %ld\n", result.value(total));
  return report(result.report());
}

int cli(int argc, char** argv) {
  auto megabytes = ps::param<int>("megabytes", 40);
  auto big = ps::step<"big">([](int mb) {
    std::vector<std::uint8_t> v(static_cast<std::size_t>(mb) << 20);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 2654435761u >> 24);
    return v;
  })(megabytes);
  auto total = ps::step<"total">(
      [](const std::vector<std::uint8_t>& v) { return std::accumulate(v.begin(), v.end(), std::uint64_t{0}); })(big);
  return ps::main(ps::pipeline<"disk">(total), argc, argv);
}

int files(int argc, char** argv) {
  auto megabytes = ps::param<int>("megabytes", 8);
  auto written = ps::command<"written">("/bin/sh", "-c", "yes abcdefgh | head -c $(($1 << 20)) > \"$2\"", "sh",
                                        megabytes, ps::output_file("lines.txt"));
  auto lines = ps::step<"lines">([](const ps::file& f) {
    std::FILE* in = std::fopen(f.string().c_str(), "rb");
    if (in == nullptr) throw std::runtime_error("cannot open " + f.string());
    long n = 0;
    for (int c; (c = std::fgetc(in)) != EOF;) n += c == '\n';
    std::fclose(in);
    return n;
  })(written);
  return ps::main(ps::pipeline<"disk_files">(lines), argc, argv);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "slow" && argc == 5) return slow(argv[2], argv[3], argv[4]);
    if (mode == "elements" && argc == 6) return elements(argv[2], argv[3], std::stol(argv[4]), std::stol(argv[5]));
    if (mode == "cli") return cli(argc - 1, argv + 1);
    if (mode == "files") return files(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  }
  std::fprintf(stderr, "usage: see the comment at the top of cache_robustness_target.cpp\n");
  return 2;
}
