// blob_streams: the hashing reader, the realigning buffer and the staging
// streambuf of a streamed put(); see blob_streams.hpp.
#include "blob_streams.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>

#include <fmt/format.h>

#include "cache_store.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

// The streaming put's first buffer; it grows as the value does.
constexpr std::size_t first_buffer = 4096;

}  // namespace

// ---- trailing_hasher ---------------------------------------------------------

trailing_hasher::trailing_hasher(const std::byte* data, bool second_thread, hasher so_far)
    : data_(data), hash_(std::move(so_far)) {
  if (!second_thread) return;
  try {
    worker_ = std::thread([this] { run(); });
  } catch (const std::system_error&) {
    // No thread to be had (EAGAIN): the bytes are hashed on the reader's
    // thread instead, as for a small value. Slower, not wrong.
  }
}

void trailing_hasher::available(std::size_t filled) {
  if (!worker_.joinable()) {
    hash_.update(data_ + hashed_, filled - hashed_);
    hashed_ = filled;
    return;
  }
  progress_.store(filled, std::memory_order_release);
  progress_.notify_one();
}

void trailing_hasher::stop() {
  if (!worker_.joinable()) return;
  progress_.fetch_or(done_bit, std::memory_order_release);
  progress_.notify_one();
  worker_.join();
}

void trailing_hasher::run() {
  for (;;) {
    const std::size_t seen = progress_.load(std::memory_order_acquire);
    if (const std::size_t ready = seen & ~done_bit; ready > hashed_) {
      hash_.update(data_ + hashed_, ready - hashed_);
      hashed_ = ready;
      continue;
    }
    if ((seen & done_bit) != 0) return;
    progress_.wait(seen, std::memory_order_acquire);
  }
}

// ---- realigning_buffer -------------------------------------------------------

std::byte* realigning_buffer::at(std::size_t file_offset) {
  if (!base_) base_.reset(static_cast<std::byte*>(std::aligned_alloc(page, io_chunk + page)));
  if (!base_) throw cache_error(fmt::format("cannot allocate a read buffer of {} bytes", io_chunk + page));
  return base_.get() + file_offset % page;
}

void realigning_buffer::release::operator()(std::byte* p) const noexcept { std::free(p); }

// ---- staging_streambuf -------------------------------------------------------

staging_streambuf::~staging_streambuf() {
  fd_ = unique_fd();
  if (!temp_.empty()) ::unlink(temp_.c_str());  // a value not stored: nobody else knows the file
}

fs::path staging_streambuf::complete() {
  sync_file(fd_.get(), temp_);
  fd_.close(temp_);
  return std::exchange(temp_, fs::path());
}

staging_streambuf::int_type staging_streambuf::overflow(int_type ch) {
  if (traits_type::eq_int_type(ch, traits_type::eof())) return sync() == 0 ? traits_type::not_eof(ch) : ch;
  const char c = traits_type::to_char_type(ch);
  return xsputn(&c, 1) == 1 ? ch : traits_type::eof();
}

std::streamsize staging_streambuf::xsputn(const char* data, std::streamsize n) {
  if (n <= 0 || error_ != 0) return 0;
  const auto size = static_cast<std::size_t>(n);
  const auto room = static_cast<std::size_t>(epptr() - pptr());
  if (size <= room) {
    std::memcpy(pptr(), data, size);
    pbump(static_cast<int>(size));
    return n;
  }
  if (!spilled()) {
    const auto used = static_cast<std::size_t>(pptr() - pbase());
    if (used + size <= cache_inline_max) {
      if (!grow(used + size)) return 0;
      std::memcpy(pptr(), data, size);
      pbump(static_cast<int>(size));
      return n;
    }
    if (!spill()) return 0;
  }
  const auto file_room = static_cast<std::size_t>(epptr() - pptr());
  if (size <= file_room) {
    std::memcpy(pptr(), data, size);
    pbump(static_cast<int>(size));
  } else if (size < io_chunk) {  // top the buffer up, write it, keep the rest
    std::memcpy(pptr(), data, file_room);
    pbump(static_cast<int>(file_room));
    if (!drain()) return 0;
    std::memcpy(pptr(), data + file_room, size - file_room);
    pbump(static_cast<int>(size - file_room));
  } else if (!drain() || !emit(data, size)) {
    return 0;
  }
  return n;
}

// Makes the memory buffer hold at least `needed` bytes (<= cache_inline_max).
bool staging_streambuf::grow(std::size_t needed) {
  std::size_t capacity = std::max(first_buffer, static_cast<std::size_t>(epptr() - pbase()));
  while (capacity < needed) capacity *= 2;
  capacity = std::min(capacity, cache_inline_max);
  std::unique_ptr<char[]> bigger(new (std::nothrow) char[capacity]);
  if (!bigger) {
    error_ = ENOMEM;
    return false;
  }
  const auto used = static_cast<std::size_t>(pptr() - pbase());
  if (used > 0) std::memcpy(bigger.get(), pbase(), used);
  buffer_ = std::move(bigger);
  setp(buffer_.get(), buffer_.get() + capacity);
  pbump(static_cast<int>(used));
  return true;
}

// The value outgrew memory: opens the temporary file, writes what was
// collected so far, and goes on with a file buffer.
bool staging_streambuf::spill() {
  std::unique_ptr<char[]> file_buffer(new (std::nothrow) char[io_chunk]);
  if (!file_buffer) {
    error_ = ENOMEM;
    return false;
  }
  fs::path temp = temporary_path_();
  fd_ = unique_fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd_) {
    error_ = errno;
    return false;
  }
  temp_ = std::move(temp);
  const bool written = emit(pbase(), static_cast<std::size_t>(pptr() - pbase()));
  buffer_ = std::move(file_buffer);
  setp(buffer_.get(), buffer_.get() + io_chunk);
  return written;
}

bool staging_streambuf::drain() {
  const auto pending = static_cast<std::size_t>(pptr() - pbase());
  setp(pbase(), epptr());
  return emit(pbase(), pending);
}

bool staging_streambuf::emit(const char* data, std::size_t size) {
  if (error_ != 0) return false;
  while (size > 0) {
    const std::size_t piece = std::min(size, io_chunk);
    hash_.update(data, piece);
    std::size_t done = 0;
    while (done < piece) {
      const ssize_t w = ::write(fd_.get(), data + done, piece - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      done += static_cast<std::size_t>(w);
    }
    size_ += piece;
    data += piece;
    size -= piece;
  }
  return true;
}

}  // namespace penstock::detail::r1
