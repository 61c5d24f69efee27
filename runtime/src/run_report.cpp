// run_report::summary: the one-paragraph account of a run that `run` prints
// and pipeline::run's callers log.
#include <chrono>
#include <string>

#include <fmt/format.h>

#include <penstock/run_report.hpp>

namespace penstock {

std::string run_report::summary() const {
  std::string out = fmt::format("pipeline '{}': {} succeeded", pipeline, count(step_status::succeeded));
  if (const auto hits = cache_hits(); hits != 0) out += fmt::format(" ({} from cache)", hits);
  for (auto s : {step_status::failed, step_status::timed_out, step_status::skipped, step_status::cancelled,
                 step_status::not_run}) {
    if (const auto n = count(s); n != 0) out += fmt::format(", {} {}", n, to_string(s));
  }
  for (const auto& s : steps)
    if (s.elements_cached != 0)
      out += fmt::format(" ({}: {} of {} elements from cache)", s.name, s.elements_cached, s.elements);
  out += fmt::format(" in {:.3f} s", std::chrono::duration<double>(wall).count());
  if (gpu) out += fmt::format(" (GPU steps on {})", to_string(*gpu));
  if (interrupted) out += " (interrupted)";
  for (const auto& s : steps) {
    if (s.status == step_status::failed || s.status == step_status::timed_out) {
      out += fmt::format("\n  step '{}' {} after {} attempt{}: {}", s.name, to_string(s.status), s.attempts,
                         s.attempts == 1 ? "" : "s", s.error);
    }
  }
  return out;
}

}  // namespace penstock
