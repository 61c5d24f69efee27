// slot_functions_for<T>(): how the runtime constructs, clears, prints, hashes
// and (de)serializes a value slot (a std::optional<T> in runtime storage) without
// knowing T. Hashing and serialization go through value_traits<T>, and are
// null for types that cannot be serialized.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <new>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <tuple>

#include <penstock/detail/format_value.hpp>
#include <penstock/detail/gpu_arguments.hpp>
#include <penstock/file.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/value_traits.hpp>

namespace penstock::detail {

template <class T>
slot_functions slot_functions_for() {
  slot_functions f{
      .size = sizeof(std::optional<T>),
      .align = alignof(std::optional<T>),
      .construct = [](void* storage) noexcept { ::new (storage) std::optional<T>(); },
      .destroy = [](void* slot) noexcept { std::destroy_at(static_cast<std::optional<T>*>(slot)); },
      .clear = [](void* slot) noexcept { static_cast<std::optional<T>*>(slot)->reset(); },
      .has_value = [](const void* slot) noexcept { return static_cast<const std::optional<T>*>(slot)->has_value(); },
      .format = [](const void* slot) -> std::string {
        const auto& value = *static_cast<const std::optional<T>*>(slot);
        return value ? format_value(*value) : std::string();
      },
  };
  if constexpr (is_device_vector_v<T>) {
    f.upload = [](const void* from, void* to, gpu_memory_resource& memory, CUstream_st* stream) {
      const T& value = **static_cast<const std::optional<T>*>(from);
      if (!value.on_host()) return false;
      static_cast<std::optional<T>*>(to)->emplace(T::from_host(value.data(), value.size(), memory, stream));
      return true;
    };
  }
  if constexpr (is_path_value_v<T>) {
    f.path_value = [](void* slot, std::size_t) noexcept -> path_value* {
      auto& value = *static_cast<std::optional<T>*>(slot);
      return value ? &*value : nullptr;
    };
    f.path_value_count = 1;
  } else if constexpr (path_tuple_v<T>) {
    f.path_value = [](void* slot, std::size_t i) noexcept -> path_value* {
      auto& value = *static_cast<std::optional<T>*>(slot);
      if (!value) return nullptr;
      return std::apply([i](auto&... v) { return std::array<path_value*, std::tuple_size_v<T>>{&v...}[i]; }, *value);
    };
    f.path_value_count = std::tuple_size_v<T>;
  }
  if constexpr (value_traits<T>::cacheable) {
    f.hash = [](const void* slot) { return value_traits<T>::hash(**static_cast<const std::optional<T>*>(slot)); };
    f.save = [](const void* slot, std::ostream& out) {
      return value_traits<T>::save(out, **static_cast<const std::optional<T>*>(slot));
    };
    f.load = [](void* slot, std::istream& in) {
      static_cast<std::optional<T>*>(slot)->emplace(value_traits<T>::load(in));
    };
    if constexpr (requires { value_traits<T>::contiguous; }) {
      if constexpr (value_traits<T>::contiguous) {
        f.prepare_contiguous = [](void* slot, std::uint64_t stored_size, std::uint64_t* count,
                                  std::span<std::byte>* elements) {
          auto& value = *static_cast<std::optional<T>*>(slot);
          auto prepared = value_traits<T>::prepare_contiguous(value.emplace(), stored_size);
          if (!prepared) {
            value.reset();
            return false;
          }
          *count = prepared->first;
          *elements = prepared->second;
          return true;
        };
      }
    }
  }
  return f;
}

}  // namespace penstock::detail
