// chrome_trace: see chrome_trace.hpp. Times are microseconds from the run's
// start (the format's unit), with the nanoseconds kept as fractions.
#include "chrome_trace.hpp"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cache_session.hpp"
#include "text_file.hpp"

namespace penstock::detail::r1 {

namespace {

double microseconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace

std::string chrome_trace(const graph_description& graph, const run_report& report) {
  using json = nlohmann::json;
  const int pid = 1;
  json events = json::array();
  events.push_back({{"ph", "M"},
                    {"pid", pid},
                    {"name", "process_name"},
                    {"args", {{"name", printable("pipeline " + report.pipeline)}}}});
  std::set<int> workers;
  for (std::size_t i = 0; i < report.steps.size() && i < graph.nodes.size(); ++i) {
    const step_report& s = report.steps[i];
    if (s.worker < 0) continue;  // skipped or not run: no time, no place
    workers.insert(s.worker);
    json args{{"status", s.cache_hit ? "cached" : to_string(s.status)}, {"attempts", s.attempts}};
    if (s.key) args["cache_key"] = s.key->hex();
    if (s.output) args["output"] = s.output->hex();
    if (!s.error.empty()) args["error"] = printable(s.error);
    if (s.elements != 0) {
      args["elements"] = s.elements;
      args["elements_cached"] = s.elements_cached;
    }
    json e{{"name", printable(s.name)},
           {"pid", pid},
           {"tid", s.worker},
           {"ts", microseconds(s.started)},
           {"cat", s.cache_hit                                      ? "cached"
                   : graph.nodes[i].options.where == placement::gpu ? "gpu step"
                                                                    : "step"},
           {"args", std::move(args)}};
    if (s.cache_hit) {
      e["ph"] = "i";
      e["s"] = "t";  // an instant on its thread's track
    } else {
      e["ph"] = "X";
      e["dur"] = microseconds(s.duration);
    }
    events.push_back(std::move(e));
  }
  for (const int w : workers) {
    events.push_back({{"ph", "M"},
                      {"pid", pid},
                      {"tid", w},
                      {"name", "thread_name"},
                      {"args", {{"name", fmt::format("worker {}", w)}}}});
  }
  json trace{{"traceEvents", std::move(events)},
             {"displayTimeUnit", "ms"},
             {"otherData",
              {{"pipeline", printable(report.pipeline)},
               {"run", report.run_id},
               {"wall_ms", static_cast<double>(report.wall.count()) / 1e6}}}};
  return trace.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_chrome_trace(const graph_description& graph, const run_report& report, const std::filesystem::path& file) {
  write_text_file(file, chrome_trace(graph, report), "trace");
}

}  // namespace penstock::detail::r1
