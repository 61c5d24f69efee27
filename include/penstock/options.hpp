// step_options: what a step declares about how it runs (.version, .retries,
// .timeout, .on(ps::gpu)). Plain data; it crosses the seam to the runtime unchanged.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace penstock {

// Whether a step's output goes through the cache. `normal`: looked up and
// stored (the output type must be serializable, checked at compile time);
// `never`: always run (for non-deterministic steps, or outputs that cannot
// be serialized), its output still hashed for its dependents' keys when it
// can be.
enum class cache_policy : std::uint8_t { normal, never };

// The argument of .cache(ps::never).
struct never_t {
  explicit constexpr never_t() = default;
};
inline constexpr never_t never{};

// Where a step runs: on a CPU core (a oneTBB task), or on the run's GPU
// backend (a CUDA stream, or Thrust on oneTBB where there is no device).
enum class placement : std::uint8_t { cpu, gpu };

// The argument of .on(ps::gpu).
struct gpu_t {
  explicit constexpr gpu_t() = default;
};
inline constexpr gpu_t gpu{};

struct step_options {
  // Bumped by hand when a step's behaviour changes in a way its inputs do not
  // show; part of the step's identity (and of its cache key, later).
  std::uint32_t version = 0;
  // How many times a failing step is run again before the run fails.
  std::uint32_t retries = 0;
  // Zero means no limit. Enforced cooperatively: the step sees
  // context::stop_requested(), and a step that overruns fails.
  std::chrono::nanoseconds timeout{0};
  cache_policy cache = cache_policy::normal;
  placement where = placement::cpu;
  // The source file in which ps::step / ps::map was written (from
  // std::source_location): its content digest is the step's code
  // fingerprint, when the binary was built with penstock_code_fingerprints.
  std::string_view source_file{};
  // Its line there: with source_file, how an error names the step's definition.
  std::uint_least32_t source_line = 0;
};

}  // namespace penstock
