// digest: a 128-bit XXH3 hash, the unit of identity in penstock. Node
// identities and content digests of values are digests; the cache (a later
// layer) keys on them.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL  // header-only use: static functions, no link-time symbols
#endif
#include <xxhash.h>

namespace penstock {

struct digest {
  std::uint64_t high = 0;
  std::uint64_t low = 0;

  friend constexpr auto operator<=>(const digest&, const digest&) = default;

  // 32 lowercase hex digits, high word first.
  [[nodiscard]] std::string hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(32, '0');
    for (int i = 0; i < 16; ++i) {
      out[15 - i] = digits[(high >> (4 * i)) & 0xf];
      out[31 - i] = digits[(low >> (4 * i)) & 0xf];
    }
    return out;
  }
};

// Incremental XXH3-128. Feed it bytes, then take the digest.
class hasher {
 public:
  hasher() noexcept { XXH3_128bits_reset(&state_); }

  hasher& update(const void* data, std::size_t size) noexcept {
    XXH3_128bits_update(&state_, data, size);
    return *this;
  }
  // Strings are length-prefixed so that ("ab","c") and ("a","bc") differ.
  hasher& update(std::string_view text) noexcept {
    const std::uint64_t size = text.size();
    update(&size, sizeof size);
    return update(text.data(), text.size());
  }
  hasher& update(const digest& d) noexcept { return update(&d, sizeof d); }
  template <class T>
  requires std::is_arithmetic_v<T> || std::is_enum_v<T> hasher& update_value(T value) noexcept {
    return update(&value, sizeof value);
  }

  [[nodiscard]] digest finish() const noexcept {
    const XXH128_hash_t h = XXH3_128bits_digest(&state_);
    return {h.high64, h.low64};
  }

 private:
  XXH3_state_t state_;
};

}  // namespace penstock
