// blob_streams: the byte paths between values and blob files: a hasher that
// trails a reader, a realigning read buffer, and the streambufs of load() and of a streamed put().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <streambuf>
#include <thread>

#include <penstock/digest.hpp>

#include "posix_file.hpp"

namespace penstock::detail::r1 {

// Reads and writes go in pieces of this size so that each piece is hashed
// while it is still in the CPU cache.
inline constexpr std::size_t io_chunk = std::size_t{1} << 20;
// A large value: put() hashes it piece by piece as it writes it, get() on a
// second thread while it reads it.
inline constexpr std::size_t large_value_min = std::size_t{8} << 20;
// get() reads a destination at least this large through a realigning buffer
// when its alignment differs from the file offset's.
inline constexpr std::size_t realign_min = std::size_t{64} << 10;

// Hashes the bytes a reader fills in, in order, as they become available:
// on a second thread for a large value (chunk k is hashed while chunk k + 1
// is read), on the caller's otherwise.
class trailing_hasher {
 public:
  // Continues `so_far` (the digest of what came before `data`).
  trailing_hasher(const std::byte* data, bool second_thread, hasher so_far = {});
  trailing_hasher(const trailing_hasher&) = delete;
  trailing_hasher& operator=(const trailing_hasher&) = delete;
  ~trailing_hasher() { stop(); }

  // The first `filled` bytes are in place (never fewer than before).
  void available(std::size_t filled);
  // The digest of every byte made available.
  [[nodiscard]] digest finish() {
    stop();
    return hash_.finish();
  }
  // The hasher, having hashed every byte made available (to go on with the next part).
  [[nodiscard]] hasher release() {
    stop();
    return hash_;
  }

 private:
  static constexpr std::size_t done_bit = std::size_t{1} << 63;
  void stop();
  void run();

  const std::byte* data_;
  hasher hash_;
  std::size_t hashed_ = 0;
  std::atomic<std::size_t> progress_{0};
  std::thread worker_;  // last: starts once the rest is initialized
};

// A buffer of io_chunk bytes that starts, for each read, at the same
// address modulo the page size as the file offset being read (allocated on
// first use).
class realigning_buffer {
 public:
  // cache_error if it cannot be allocated.
  [[nodiscard]] std::byte* at(std::size_t file_offset);

 private:
  static constexpr std::size_t page = 4096;
  struct release {
    void operator()(std::byte* p) const noexcept;
  };
  std::unique_ptr<std::byte, release> base_;
};

// Reads an in-memory buffer as a stream, for load().
class memory_streambuf final : public std::streambuf {
 public:
  explicit memory_streambuf(std::span<std::byte> bytes) {
    auto* begin = reinterpret_cast<char*>(bytes.data());
    setg(begin, begin, begin + bytes.size());
  }
};

// Collects a streamed value: in memory while it fits in cache_inline_max
// bytes (the buffer starts small and grows), then, once it outgrows that, in
// a temporary file through a buffer of io_chunk bytes, hashing every byte on
// its way out. Large writes (a cereal vector of floats is one sputn) bypass
// the buffer. Errors (errno values; ENOMEM for a buffer that cannot be
// allocated) are kept, not thrown: std::ostream would swallow them, and a
// cereal archive calling sputn would see an exception that is not the store's.
// The temporary file, if any, is removed by the destructor unless complete()d.
class staging_streambuf final : public std::streambuf {
 public:
  explicit staging_streambuf(std::function<std::filesystem::path()> temporary_path)
      : temporary_path_(std::move(temporary_path)) {}
  staging_streambuf(const staging_streambuf&) = delete;
  staging_streambuf& operator=(const staging_streambuf&) = delete;
  ~staging_streambuf() override;

  [[nodiscard]] int error() const noexcept { return error_; }
  [[nodiscard]] bool spilled() const noexcept { return !temp_.empty(); }
  [[nodiscard]] const std::filesystem::path& temporary() const noexcept { return temp_; }
  // The value, while it has not spilled to a file.
  [[nodiscard]] std::span<const std::byte> memory() const noexcept {
    return {reinterpret_cast<const std::byte*>(pbase()), static_cast<std::size_t>(pptr() - pbase())};
  }
  // After a flush of a spilled value: its size and digest.
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] digest finish() const noexcept { return hash_.finish(); }
  // fsyncs and closes the temporary file, and hands it over to the caller.
  std::filesystem::path complete();

 protected:
  int sync() override { return !spilled() || drain() ? 0 : -1; }
  int_type overflow(int_type ch) override;
  std::streamsize xsputn(const char* data, std::streamsize n) override;

 private:
  bool grow(std::size_t needed);
  bool spill();
  bool drain();
  bool emit(const char* data, std::size_t size);

  std::function<std::filesystem::path()> temporary_path_;
  std::unique_ptr<char[]> buffer_;
  std::filesystem::path temp_;
  unique_fd fd_;
  hasher hash_;
  std::uint64_t size_ = 0;
  int error_ = 0;
};

}  // namespace penstock::detail::r1
