// How values cross between CPU and GPU steps. The runtime, not the user,
// inserts the copies: a GPU step's ps::device_vector<T> parameter accepts a
// node of std::vector<T> (uploaded on the step's stream, through pinned
// staging memory on CUDA), and a CPU step's std::vector<T> parameter accepts
// a node of ps::device_vector<T> (copied back once the GPU work is done).
// A device_vector still in host memory (read from the cache) is uploaded for
// a GPU step on CUDA.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <penstock/device_vector.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/options.hpp>

namespace penstock::detail {

template <class T>
inline constexpr bool is_device_vector_v = false;
template <class T>
inline constexpr bool is_device_vector_v<device_vector<T>> = true;

template <class T>
inline constexpr bool is_std_vector_v = false;
template <class T>
inline constexpr bool is_std_vector_v<std::vector<T>> = true;

// Whether a node of type `Given` may feed a parameter of type `Expected`
// through a copy the runtime inserts, in a step placed `Where`.
template <placement Where, class Expected, class Given>
constexpr bool crosses_device_edge() {
  if constexpr (Where == placement::gpu && is_device_vector_v<Expected> && is_std_vector_v<Given>) {
    return std::is_same_v<typename Expected::value_type, typename Given::value_type>;
  } else if constexpr (Where == placement::cpu && is_std_vector_v<Expected> && is_device_vector_v<Given>) {
    return std::is_same_v<typename Expected::value_type, typename Given::value_type>;
  } else {
    return false;
  }
}

// Hands a GPU step a value it needs on the device. `Param`: the parameter
// type (device_vector<E>, by const&, && or value); `T`: what the producer
// made (std::vector<E> or device_vector<E>).
template <class Param, class T>
struct device_passer {
  using D = std::remove_cvref_t<Param>;
  static_assert(is_device_vector_v<D>);

  T* source;
  bool movable;
  gpu_context* gpu;
  std::optional<D> owned{};

  decltype(auto) get() {
    D* value = pick();
    if constexpr (std::is_lvalue_reference_v<Param>) {
      return static_cast<Param>(*value);
    } else {
      return static_cast<D&&>(*value);
    }
  }

 private:
  D* pick() {
    if constexpr (is_std_vector_v<T>) {
      return &owned.emplace(D::from_host(source->data(), source->size(), *gpu));  // a CPU -> GPU edge
    } else {
      if (gpu->backend() == gpu_backend::cuda && source->on_host()) {
        return &owned.emplace(D::from_host(source->data(), source->size(), *gpu));  // a cache hit, uploaded
      }
      if constexpr (std::is_lvalue_reference_v<Param> && std::is_const_v<std::remove_reference_t<Param>>) {
        return source;
      } else {
        if (movable) return source;
        // Another consumer still reads it: this one gets its own copy.
        D copy(source->size(), *gpu);
        gpu->memory().copy_within(copy.data(), source->data(), source->size_bytes(), gpu->stream_or_null());
        return &owned.emplace(std::move(copy));
      }
    }
  }
};

// Hands a CPU step the host copy of a GPU step's output.
template <class Param, class T>
struct host_passer {
  using V = std::remove_cvref_t<Param>;
  T* source;
  std::optional<V> owned{};
  decltype(auto) get() {
    owned.emplace(source->to_host());
    if constexpr (std::is_reference_v<Param>) {
      return static_cast<Param>(*owned);
    } else {
      return V(std::move(*owned));
    }
  }
};

}  // namespace penstock::detail
