// step_options: what a step declares about how it runs (.version, .retries,
// .timeout). Plain data; it crosses the seam to the runtime unchanged.
#pragma once

#include <chrono>
#include <cstdint>

namespace penstock {

struct step_options {
  // Bumped by hand when a step's behaviour changes in a way its inputs do not
  // show; part of the step's identity (and of its cache key, later).
  std::uint32_t version = 0;
  // How many times a failing step is run again before the run fails.
  std::uint32_t retries = 0;
  // Zero means no limit. Enforced cooperatively: the step sees
  // context::stop_requested(), and a step that overruns fails.
  std::chrono::nanoseconds timeout{0};
};

}  // namespace penstock
