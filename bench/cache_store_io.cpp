// Step cache, store and load of a 256 MiB std::vector<float> (issue 3,
// workload 3), against plain system calls on the same bytes in the same
// directory, and penstock's hasher against raw XXH3-128.
//   BM_cache_store_256MiB/put_contiguous   cache_store::put(key, bytes): the contiguous fast path
//   BM_cache_store_256MiB/put_slot_save    cache_store::put(key, write) through the vector's slot
//                                          save (slot_functions_for<T>::save = value_traits<T>::save,
//                                          cereal), the streaming path the executor stores outputs with
//   BM_cache_store_256MiB/write_fsync      open, write(), fsync(), close of a new file
//   BM_cache_load_256MiB/get               cache_store::get(key, bytes): read and verify into a reused buffer
//   BM_cache_load_256MiB/load_slot_load    cache_store::load(key, read) through the slot's load (cereal from a
//                                          verified copy), as the executor loads a value that is not contiguous
//   BM_cache_load_256MiB/load_contiguous   r1::load_contiguous (cache_store::get_parts) into a new vector, as the
//                                          executor loads a std::vector of arithmetic elements
//   BM_cache_load_256MiB/read              open, read(), close of a file in the page cache, into a reused buffer
//   BM_cache_load_256MiB/read_new_vector   the same into a new std::vector<float> each time (what a load makes)
//   BM_hash_256MiB/penstock_hasher         penstock::hasher (incremental XXH3-128)
//   BM_hash_256MiB/xxh3_128                XXH3_128bits, one call
// Each put stores bytes never stored before (the first float changes every
// iteration), so every put writes a blob; the blob (and the raw file) is
// removed between iterations, outside the timed region. Loads read from the
// page cache: the blob and the file were just written.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <penstock/detail/slot.hpp>
#include <penstock/digest.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cache_bench_support.hpp"
#include "cache_session.hpp"
#include "cache_store.hpp"

namespace ps = penstock;
namespace r1 = penstock::detail::r1;

namespace {

constexpr std::size_t floats = std::size_t{64} << 20;
constexpr std::size_t bytes = floats * sizeof(float);  // 256 MiB

std::optional<std::vector<float>> make_value() {
  std::optional<std::vector<float>> value(std::in_place, floats);
  for (std::size_t i = 0; i < floats; ++i) (*value)[i] = static_cast<float>(i) * 0.25f;
  return value;
}

const ps::slot_functions& vector_slot() {
  static const ps::slot_functions slot = ps::detail::slot_functions_for<std::vector<float>>();
  return slot;
}

std::span<const std::byte> as_bytes(const std::vector<float>& v) { return std::as_bytes(std::span(v)); }

void report_bytes(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
  // Decimal gigabytes per second ("GB=1.2/s"; bytes_per_second in the JSON is the same rate in bytes).
  state.counters["GB"] =
      benchmark::Counter(static_cast<double>(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// A scratch directory holding a cache (under cache/) and the raw files.
struct io_setup {
  penstock_bench::scratch_directory directory{"store-io"};
  r1::cache_store store{directory.path() / "cache"};
  std::filesystem::path raw = directory.path() / "cache" / "raw.bin";  // beside the blobs' directory
  std::optional<std::vector<float>> value = make_value();
  const r1::put_info info{.type = ps::hasher().update(std::string_view("std::vector<float>")).finish(),
                          .run_id = "bench"};
};

bool write_file(const std::filesystem::path& path, const std::byte* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = true;
  while (ok && size > 0) {
    const ssize_t n = ::write(fd, data, std::min<std::size_t>(size, 0x7ffff000));
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) {
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  ok = ::fsync(fd) == 0 && ok;
  return ::close(fd) == 0 && ok;
}

bool read_file(const std::filesystem::path& path, std::byte* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return done == size;
}

// --- store ------------------------------------------------------------------

template <class Put>
void run_put(benchmark::State& state, Put&& put) {
  io_setup s;
  std::uint64_t n = 0;
  for (auto _ : state) {
    ++n;
    (*s.value)[0] = static_cast<float>(n);  // new bytes: a blob is written every time
    const ps::digest key{n, 1};
    const r1::put_result result = put(s, key);
    state.PauseTiming();
    const bool wrote = result.wrote_blob && result.size >= bytes;
    std::filesystem::remove(s.store.blob_path(result.content));
    s.store.erase(key);
    state.ResumeTiming();
    if (!wrote) {
      state.SkipWithError("put did not write a new blob");
      break;
    }
  }
  report_bytes(state);
}

void put_contiguous(benchmark::State& state) {
  run_put(state, [](io_setup& s, const ps::digest& key) { return s.store.put(key, as_bytes(*s.value), s.info); });
}

void put_slot_save(benchmark::State& state) {
  run_put(state, [](io_setup& s, const ps::digest& key) {
    return s.store.put(
        key, [&](std::ostream& out) { return vector_slot().save(&s.value, out); }, s.info);
  });
}

void write_fsync(benchmark::State& state) {
  io_setup s;
  std::uint64_t n = 0;
  for (auto _ : state) {
    (*s.value)[0] = static_cast<float>(++n);
    const bool ok = write_file(s.raw, reinterpret_cast<const std::byte*>(s.value->data()), bytes);
    state.PauseTiming();
    std::filesystem::remove(s.raw);
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError("write + fsync failed");
      break;
    }
  }
  report_bytes(state);
}

// --- load -------------------------------------------------------------------

void get(benchmark::State& state) {
  io_setup s;
  const ps::digest key{1, 1};
  (void)s.store.put(key, as_bytes(*s.value), s.info);
  std::vector<std::byte> buffer(bytes);  // touched once here, like read()'s: get() reuses it
  for (auto _ : state) {
    const r1::cache_result got = s.store.get(key, buffer);
    if (!got.hit() || buffer.size() != bytes) {
      state.SkipWithError("get missed");
      break;
    }
  }
  report_bytes(state);
}

void load_slot_load(benchmark::State& state) {
  io_setup s;
  const ps::digest key{1, 1};
  (void)s.store.put(
      key, [&](std::ostream& out) { return vector_slot().save(&s.value, out); }, s.info);
  std::optional<std::vector<float>> loaded;
  for (auto _ : state) {
    const r1::cache_result got = s.store.load(key, [&](std::istream& in) { vector_slot().load(&loaded, in); });
    if (!got.hit() || !loaded || loaded->size() != floats) {
      state.SkipWithError("load missed");
      break;
    }
  }
  report_bytes(state);
}

// How the executor loads a std::vector<float> (r1::load_contiguous, the
// function cache_session uses): get_parts straight into the new vector's
// storage, its count apart.
void load_contiguous(benchmark::State& state) {
  io_setup s;
  const ps::digest key{1, 1};
  (void)s.store.put(
      key, [&](std::ostream& out) { return vector_slot().save(&s.value, out); }, s.info);
  for (auto _ : state) {
    std::optional<std::vector<float>> loaded;
    const r1::cache_result got = r1::load_contiguous(s.store, vector_slot(), key, &loaded, "std::vector<float>");
    if (!got.hit() || !loaded || loaded->size() != floats) {
      state.SkipWithError("load missed");
      break;
    }
    benchmark::DoNotOptimize(loaded->data());
  }
  report_bytes(state);
}

void read(benchmark::State& state) {
  io_setup s;
  if (!write_file(s.raw, reinterpret_cast<const std::byte*>(s.value->data()), bytes)) {
    state.SkipWithError("cannot write the file");
    return;
  }
  std::vector<std::byte> buffer(bytes);
  for (auto _ : state) {
    if (!read_file(s.raw, buffer.data(), bytes)) {
      state.SkipWithError("read failed");
      break;
    }
  }
  report_bytes(state);
}

// The peer of load_contiguous and load_slot_load: like them, makes a new
// std::vector<float> of the file's bytes each time (allocation, page faults
// and all), with read().
void read_new_vector(benchmark::State& state) {
  io_setup s;
  if (!write_file(s.raw, reinterpret_cast<const std::byte*>(s.value->data()), bytes)) {
    state.SkipWithError("cannot write the file");
    return;
  }
  for (auto _ : state) {
    std::vector<float> loaded(floats);
    if (!read_file(s.raw, reinterpret_cast<std::byte*>(loaded.data()), bytes)) {
      state.SkipWithError("read failed");
      break;
    }
    benchmark::DoNotOptimize(loaded.data());
  }
  report_bytes(state);
}

// --- hashing ----------------------------------------------------------------

void penstock_hasher(benchmark::State& state) {
  const auto value = make_value();
  for (auto _ : state) {
    const ps::digest d = ps::hasher().update(value->data(), bytes).finish();
    benchmark::DoNotOptimize(d);
  }
  report_bytes(state);
}

void xxh3_128(benchmark::State& state) {
  const auto value = make_value();
  for (auto _ : state) {
    const XXH128_hash_t h = XXH3_128bits(value->data(), bytes);
    benchmark::DoNotOptimize(h);
  }
  report_bytes(state);
}

}  // namespace

// One iteration takes 50 to 600 ms: a warm-up (page cache, allocator, blob
// directories) and at least 2 s of iterations per repetition.
BENCHMARK(put_contiguous)
    ->Name("BM_cache_store_256MiB/put_contiguous")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(put_slot_save)
    ->Name("BM_cache_store_256MiB/put_slot_save")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(write_fsync)
    ->Name("BM_cache_store_256MiB/write_fsync")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(get)
    ->Name("BM_cache_load_256MiB/get")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(load_slot_load)
    ->Name("BM_cache_load_256MiB/load_slot_load")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(load_contiguous)
    ->Name("BM_cache_load_256MiB/load_contiguous")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(read)
    ->Name("BM_cache_load_256MiB/read")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(read_new_vector)
    ->Name("BM_cache_load_256MiB/read_new_vector")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(penstock_hasher)
    ->Name("BM_hash_256MiB/penstock_hasher")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
BENCHMARK(xxh3_128)
    ->Name("BM_hash_256MiB/xxh3_128")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinWarmUpTime(0.5)
    ->MinTime(2.0);
