// ps::file inputs (issue 10): a no-op rerun with a 1 GiB input file against
// the same rerun with a 1 KiB one (the stat cache means the big file is not
// read again: goal <= 1.5x), and hashing a 1 GiB file cold (page cache
// dropped for it with posix_fadvise) against `xxh128sum` on the same file
// (goal >= 0.8x its speed). The files are made once, in $TMPDIR.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <penstock/penstock.hpp>

#include "cache_bench_support.hpp"

namespace ps = penstock;
namespace fs = std::filesystem;

namespace {

const fs::path& input_file(std::uint64_t bytes) {
  static std::map<std::uint64_t, fs::path> made;
  auto& path = made[bytes];
  if (path.empty()) {
    path = fs::temp_directory_path() / ("penstock-bench-input-" + std::to_string(bytes));
    if (!fs::exists(path) || fs::file_size(path) != bytes) {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      std::vector<char> chunk(std::size_t{1} << 20);
      for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 2654435761u >> 13);
      for (std::uint64_t done = 0; done < bytes; done += chunk.size())
        out.write(chunk.data(), static_cast<std::streamsize>(std::min<std::uint64_t>(chunk.size(), bytes - done)));
    }
    // Older than the stat cache's "racy" second, as a data set usually is.
    fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(1));
  }
  return path;
}

void drop_from_page_cache(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// data (a ps::file) ── size ── report: a no-op rerun looks the file up in
// the stat cache, then every step up in the index.
void rerun_with_input(benchmark::State& state, std::uint64_t bytes) {
  const fs::path& data = input_file(bytes);
  penstock_bench::scratch_directory cache("file-input");
  auto file = ps::param<ps::file>("data");
  auto size =
      ps::step<"size">([](const ps::file& f) { return static_cast<std::uint64_t>(fs::file_size(f.path())); })(file);
  auto report = ps::step<"report">([](std::uint64_t n) { return n / 2; })(size);
  const auto p = ps::pipeline<"file_input">(report);
  ps::run_options options;
  options.threads = 2;
  options.cache.enabled = true;
  options.cache.directory = cache.path().string();
  options.params = {{"data", data.string()}};
  options.tracking.enabled = false;
  if (!p.run(options).ok()) state.SkipWithError("the first run failed");
  for (auto _ : state) {
    const auto result = p.run(options);
    if (result.report().cache_hits() != 2) state.SkipWithError("not a no-op rerun");
    benchmark::DoNotOptimize(result.value(report));
  }
}

void BM_rerun_file_input_1KiB(benchmark::State& state) { rerun_with_input(state, 1024); }
void BM_rerun_file_input_1GiB(benchmark::State& state) { rerun_with_input(state, std::uint64_t{1} << 30); }

constexpr std::uint64_t cold_bytes = std::uint64_t{1} << 30;

void BM_hash_cold_1GiB_penstock(benchmark::State& state) {
  const fs::path& data = input_file(cold_bytes);
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    drop_from_page_cache(data);
    // A new mtime: the process's memory of hashed files must not answer.
    fs::last_write_time(data, fs::file_time_type::clock::now() - std::chrono::hours(2) - std::chrono::seconds(++round));
    state.ResumeTiming();
    benchmark::DoNotOptimize(ps::detail::r1::hash_path(ps::path_kind::file, data));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * cold_bytes));
}

void BM_hash_cold_1GiB_xxh128sum(benchmark::State& state) {
  const fs::path& data = input_file(cold_bytes);
  const std::string command = "xxh128sum '" + data.string() + "' > /dev/null";
  if (std::system("command -v xxh128sum > /dev/null") != 0) {
    state.SkipWithError("xxh128sum is not installed (Debian's xxhash package)");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    drop_from_page_cache(data);
    state.ResumeTiming();
    if (std::system(command.c_str()) != 0) state.SkipWithError("xxh128sum failed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * cold_bytes));
}

}  // namespace

BENCHMARK(BM_rerun_file_input_1KiB)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_rerun_file_input_1GiB)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_hash_cold_1GiB_penstock)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_hash_cold_1GiB_xxh128sum)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
