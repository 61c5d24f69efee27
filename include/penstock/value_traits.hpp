// value_traits<T>: the one trait through which penstock serializes and
// hashes a value: cereal's binary archive for the bytes, XXH3-128 of those
// bytes (computed while they are written) for its content digest. Any type
// with a cereal serialize() or save()/load() works; standard containers and
// arithmetic types work out of the box. Specialize it to give a type a faster
// or different representation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <streambuf>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <penstock/detail/type_name.hpp>
#include <penstock/device_vector.hpp>
#include <penstock/digest.hpp>

namespace penstock {

namespace detail {
template <class T>
inline constexpr bool cereal_archivable_v =
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value&&
        cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

// cereal's overloads for standard containers accept any element type and
// fail inside cereal when the element has no serialize(); look inside.
template <class T>
struct elements_archivable : std::true_type {};
template <class T>
inline constexpr bool deep_archivable_v = cereal_archivable_v<T>&& elements_archivable<T>::value;

template <class T, class A>
struct elements_archivable<std::vector<T, A>> : std::bool_constant<deep_archivable_v<T>> {};
template <class T, std::size_t N>
struct elements_archivable<std::array<T, N>> : std::bool_constant<deep_archivable_v<T>> {};
template <class T>
struct elements_archivable<std::optional<T>> : std::bool_constant<deep_archivable_v<T>> {};
template <class A, class B>
struct elements_archivable<std::pair<A, B>> : std::bool_constant<deep_archivable_v<A> && deep_archivable_v<B>> {};
template <class... T>
struct elements_archivable<std::tuple<T...>> : std::bool_constant<(deep_archivable_v<T> && ...)> {};
template <class... T>
struct elements_archivable<std::variant<T...>> : std::bool_constant<(deep_archivable_v<T> && ...)> {};
template <class K, class C, class A>
struct elements_archivable<std::set<K, C, A>> : std::bool_constant<deep_archivable_v<K>> {};
template <class K, class H, class E, class A>
struct elements_archivable<std::unordered_set<K, H, E, A>> : std::bool_constant<deep_archivable_v<K>> {};
template <class K, class V, class C, class A>
struct elements_archivable<std::map<K, V, C, A>> : std::bool_constant<deep_archivable_v<K> && deep_archivable_v<V>> {};
template <class K, class V, class H, class E, class A>
struct elements_archivable<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<deep_archivable_v<K> && deep_archivable_v<V>> {};
}  // namespace detail

namespace detail {
// std::vector of arithmetic elements (not bool): cereal's binary archive
// writes it as a 64-bit element count followed by the elements' bytes.
template <class T>
inline constexpr bool arithmetic_vector_v = false;
template <class E, class A>
inline constexpr bool arithmetic_vector_v<std::vector<E, A>> = std::is_arithmetic_v<E> && !std::is_same_v<E, bool>;
}  // namespace detail

// A type penstock can store and hash: cereal can write and read it (all the
// way down its elements), and it can be default-constructed to load into.
template <class T>
concept serializable = detail::deep_archivable_v<T> && std::is_default_constructible_v<T>;

namespace detail {
// The element count of a contiguous value stored in `stored_size` bytes (an
// 8-byte count, then the elements), or nullopt if no value of at most
// `max_count` elements takes that many bytes.
template <class Element>
std::optional<std::uint64_t> contiguous_count(std::uint64_t stored_size, std::uint64_t max_count) {
  if (stored_size < sizeof(std::uint64_t) || (stored_size - sizeof(std::uint64_t)) % sizeof(Element) != 0) {
    return std::nullopt;
  }
  const std::uint64_t count = (stored_size - sizeof(std::uint64_t)) / sizeof(Element);
  if (count > max_count) return std::nullopt;
  return count;
}

// A streambuf that hashes what is written to it and passes it on to
// `next` (or nowhere): the content digest costs no second pass.
class hashing_streambuf final : public std::streambuf {
 public:
  explicit hashing_streambuf(std::streambuf* next = nullptr) noexcept : next_(next) {}
  [[nodiscard]] digest finish() const noexcept { return hash_.finish(); }

 protected:
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    hash_.update(data, static_cast<std::size_t>(n));
    return next_ != nullptr ? next_->sputn(data, n) : n;
  }
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    const char c = traits_type::to_char_type(ch);
    return xsputn(&c, 1) == 1 ? ch : traits_type::eof();
  }

 private:
  hasher hash_;
  std::streambuf* next_;
};
}  // namespace detail

template <class T>
struct value_traits {
  static constexpr bool cacheable = serializable<T>;

  // Identifies the stored representation: the type's name and this trait's
  // format version. Part of a cache key, so a changed layout never reads old
  // bytes.
  static digest type_fingerprint() noexcept {
    return hasher().update(detail::type_name<T>()).update_value(std::uint32_t{1}).finish();
  }

  // Writes the value to `out` and returns the digest of the bytes written.
  static digest save(std::ostream& out, const T& value) requires cacheable {
    detail::hashing_streambuf tee(out.rdbuf());
    std::ostream hashed(&tee);
    {
      cereal::BinaryOutputArchive archive(hashed);
      archive(value);
    }
    return tee.finish();
  }

  static T load(std::istream& in) requires cacheable {
    T value{};
    cereal::BinaryInputArchive archive(in);
    archive(value);
    return value;
  }

  // Stored as an 8-byte element count followed by the elements' bytes: the
  // store can then read a value straight into its own storage (no copy
  // through a stream). True for std::vector of arithmetic elements; a
  // specialization that changes the representation leaves it out.
  static constexpr bool contiguous = detail::arithmetic_vector_v<T>;
  // For a value stored in `stored_size` bytes: makes `value` the right
  // length and returns its element count (what the stored count must say)
  // and its elements' bytes, for the store to read into. nullopt if no value
  // of T takes that many bytes.
  static std::optional<std::pair<std::uint64_t, std::span<std::byte>>> prepare_contiguous(
      T& value, std::uint64_t stored_size) requires contiguous {
    const auto count = detail::contiguous_count<typename T::value_type>(stored_size, value.max_size());
    if (!count) return std::nullopt;
    value.resize(static_cast<std::size_t>(*count));
    return std::pair{*count, std::as_writable_bytes(std::span(value))};
  }

  // The content digest: the hash of the bytes save() would write.
  static digest hash(const T& value) requires cacheable {
    detail::hashing_streambuf sink;
    std::ostream hashed(&sink);
    {
      cereal::BinaryOutputArchive archive(hashed);
      archive(value);
    }
    return sink.finish();
  }
};

// A GPU step's output: stored as the std::vector<T> of its values (the same
// bytes), copied to the host for hashing and saving. The runtime does that
// after the step's GPU work, off the path of the GPU steps that follow it. A
// value read back from the cache is in host memory; a GPU step on CUDA that
// takes it uploads it.
template <class T>
struct value_traits<device_vector<T>> {
  using host_traits = value_traits<std::vector<T>>;
  static constexpr bool cacheable = host_traits::cacheable;

  static digest type_fingerprint() noexcept {
    return hasher().update(detail::type_name<device_vector<T>>()).update_value(std::uint32_t{1}).finish();
  }
  static digest save(std::ostream& out, const device_vector<T>& value) requires cacheable {
    return host_traits::save(out, value.to_host());
  }
  static device_vector<T> load(std::istream& in) requires cacheable {
    const std::vector<T> values = host_traits::load(in);
    return device_vector<T>::from_host(values.data(), values.size(), host_memory_resource(), nullptr);
  }
  static digest hash(const device_vector<T>& value) requires cacheable { return host_traits::hash(value.to_host()); }

  // Read straight into host memory by the store, as std::vector<T> is.
  static constexpr bool contiguous = host_traits::contiguous;
  static std::optional<std::pair<std::uint64_t, std::span<std::byte>>> prepare_contiguous(
      device_vector<T>& value, std::uint64_t stored_size) requires contiguous {
    const auto count = detail::contiguous_count<T>(stored_size, std::numeric_limits<std::size_t>::max() / sizeof(T));
    if (!count) return std::nullopt;
    value = device_vector<T>(static_cast<std::size_t>(*count), host_memory_resource(), nullptr);
    return std::pair{*count, std::as_writable_bytes(std::span(value.data(), value.size()))};
  }
};

}  // namespace penstock
