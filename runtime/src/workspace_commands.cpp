// `runs`, `show`, `compare`, `logs` and `lineage`: see workspace_commands.hpp.
// Tables for people, nlohmann-json for --json.
#include "workspace_commands.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "http_client.hpp"
#include "metric_plot.hpp"
#include "mlflow_export.hpp"
#include "run_page.hpp"
#include "text_file.hpp"
#include "workspace_store.hpp"

namespace penstock::detail::r1 {

namespace {

using json = nlohmann::json;

// What the workspace holds was made printable when it was written, but a
// damaged or foreign file may hold any bytes: they become U+FFFD, never an exception.
std::string dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace); }

// ---- formatting ------------------------------------------------------------

std::string local_time(sys_time t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&seconds, &tm);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", tm);
}

// ISO 8601 in UTC, to the millisecond: 2026-12-02T06:29:23.461Z.
std::string utc_time(sys_time t) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - seconds).count();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", seconds, static_cast<int>(ms));
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

std::string duration_text(std::chrono::nanoseconds d) {
  const double s = seconds(d);
  if (s < 10) return fmt::format("{:.3f} s", s);
  if (s < 600) return fmt::format("{:.1f} s", s);
  return fmt::format("{:.1f} min", s / 60);
}

std::string number_text(double v) { return fmt::format("{:.6g}", v); }

// Columns separated by two spaces, each as wide as its widest cell.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows, std::string_view indent = "") {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  }
}

std::optional<std::chrono::nanoseconds> run_duration(const run_row& r) {
  if (!r.ended) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(*r.ended - r.started);
}

json run_json(const run_row& r) {
  json j{{"id", r.id},
         {"experiment", r.experiment},
         {"pipeline", r.pipeline},
         {"structure", r.structure},
         {"status", r.status},
         {"started", utc_time(r.started)},
         {"ended", r.ended ? json(utc_time(*r.ended)) : json(nullptr)},
         {"duration_s", r.ended ? json(seconds(*run_duration(r))) : json(nullptr)},
         {"host", r.host},
         {"user", r.user},
         {"pid", r.pid},
         {"directory", r.directory},
         {"git_commit", r.git_commit.empty() ? json(nullptr) : json(r.git_commit)},
         {"git_dirty", r.git_dirty ? json(*r.git_dirty) : json(nullptr)},
         {"penstock_version", r.version},
         {"exit_code", r.exit_code ? json(*r.exit_code) : json(nullptr)},
         {"steps", r.steps},
         {"computed", r.computed},
         {"cached", r.cached},
         {"failed", r.failed}};
  return j;
}

json step_json(const step_run_row& s) {
  return json{{"step", s.name},
              {"status", s.status},
              {"attempts", s.attempts},
              {"started_s", seconds(s.started)},
              {"duration_s", seconds(s.duration)},
              {"worker", s.worker},
              {"cache_key", s.key ? json(s.key->hex()) : json(nullptr)},
              {"output", s.output ? json(s.output->hex()) : json(nullptr)},
              {"error", s.error.empty() ? json(nullptr) : json(s.error)},
              {"elements", s.elements},
              {"elements_cached", s.elements_cached}};
}

// The last value of each metric (by step number, then as logged), keyed
// by name; with min, max and count.
struct metric_summary {
  std::string step;
  std::string from_run;  // the run that computed the step, when it hit the cache here
  double last = 0, min = 0, max = 0;
  std::int64_t last_step = 0;
  std::size_t count = 0;
};

std::map<std::string, metric_summary> summarize(const std::vector<metric_row>& metrics) {
  std::map<std::string, metric_summary> out;
  for (const auto& m : metrics) {  // ordered by name, step number, then as logged
    auto [it, fresh] = out.try_emplace(m.name);
    auto& s = it->second;
    // min and max of the values that are numbers (a diverged loss logs NaN).
    if (fresh) s.min = s.max = std::numeric_limits<double>::quiet_NaN();
    if (!std::isnan(m.value)) {
      s.min = std::isnan(s.min) ? m.value : std::min(s.min, m.value);
      s.max = std::isnan(s.max) ? m.value : std::max(s.max, m.value);
    }
    s.step = m.step;
    s.from_run = m.from_run;
    s.last = m.value;
    s.last_step = m.step_number;
    ++s.count;
  }
  return out;
}

// ---- the commands ----------------------------------------------------------

class bad_argument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

run_row find(workspace_store& store, const std::string& id) {
  std::optional<run_row> run;
  try {
    run = store.find_run(id);
  } catch (const std::invalid_argument& e) {
    throw bad_argument(e.what());
  }
  if (!run) {
    throw std::runtime_error(id == "latest" ? fmt::format("no run is recorded in {}", store.file().string())
                                            : fmt::format("no run '{}' in {}", id, store.file().string()));
  }
  return std::move(*run);
}

void runs_command(workspace_store& store, const workspace_arguments& a, std::ostream& out) {
  run_filter filter{
      .experiment = a.experiment, .status = a.status, .pipeline = a.pipeline, .params = {}, .limit = a.limit};
  for (const auto& p : a.params) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      throw bad_argument(fmt::format("--param: expected name=value, got '{}'", p));
    // As recorded: bytes that are not UTF-8 as printable() shows them.
    filter.params.emplace_back(printable(p.substr(0, eq)), printable(p.substr(eq + 1)));
  }
  const auto found = store.runs(filter);
  if (a.json) {
    json j = json::array();
    for (const auto& r : found) j.push_back(run_json(r));
    out << dump(j) << '\n';
    return;
  }
  if (found.empty()) {
    out << "no runs recorded" << (a.experiment.empty() ? "" : " in experiment '" + a.experiment + "'")
        << (a.status.empty() && a.pipeline.empty() && a.params.empty() ? "" : " that match") << '\n';
    return;
  }
  std::vector<std::vector<std::string>> rows{
      {"RUN", "EXPERIMENT", "PIPELINE", "STATUS", "STARTED", "DURATION", "STEPS", "RAN", "CACHED", "FAILED"}};
  for (const auto& r : found) {
    const auto d = run_duration(r);
    rows.push_back({r.id, r.experiment, r.pipeline, r.status, local_time(r.started), d ? duration_text(*d) : "-",
                    std::to_string(r.steps), std::to_string(r.computed), std::to_string(r.cached),
                    std::to_string(r.failed)});
  }
  print_table(out, rows);
}

// Draws metric a.plot of `runs` into a.out: one line per run.
void plot_command(workspace_store& store, const std::vector<run_row>& runs, const workspace_arguments& a,
                  std::ostream& out) {
  std::vector<plot_series> series;
  std::set<std::string> names;
  std::size_t points = 0;
  for (const auto& run : runs) {
    plot_series s{.label = run.id, .points = {}};
    for (const auto& m : store.metrics(run.id)) {
      names.insert(m.name);
      if (m.name == a.plot) s.points.emplace_back(static_cast<double>(m.step_number), m.value);
    }
    points += s.points.size();
    series.push_back(std::move(s));
  }
  if (points == 0) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw std::runtime_error(fmt::format("no metric '{}' in {}; {}", a.plot,
                                         runs.size() == 1 ? "run " + runs.front().id : "these runs",
                                         known.empty() ? "no metrics were logged" : "the metrics are " + known));
  }
  write_text_file(a.out, metric_svg(a.plot, series), "plot");
  out << fmt::format("wrote {} ({} points of '{}' in {} run{})\n", a.out, points, a.plot, runs.size(),
                     runs.size() == 1 ? "" : "s");
}

void show_command(workspace_store& store, const workspace_arguments& a, std::ostream& out) {
  const run_row run = find(store, a.run);
  if (!a.plot.empty()) return plot_command(store, {run}, a, out);
  if (!a.html.empty()) {
    const run_page_data page{.run = run,
                             .params = store.params(run.id),
                             .steps = store.step_runs(run.id),
                             .inputs = store.step_inputs(run.id),
                             .metrics = store.metrics(run.id)};
    write_text_file(a.html, run_page(page), "page");
    out << fmt::format("wrote {} (run {}, {} steps)\n", a.html, run.id, page.steps.size());
    return;
  }
  const auto params = store.params(run.id);
  const auto steps = store.step_runs(run.id);
  const auto metrics = store.metrics(run.id);
  if (a.json) {
    json j = run_json(run);
    j["params"] = json::object();
    for (const auto& [name, value] : params) j["params"][name] = value;
    j["step_runs"] = json::array();
    for (const auto& s : steps) j["step_runs"].push_back(step_json(s));
    j["metrics"] = json::array();
    for (const auto& m : metrics) {
      j["metrics"].push_back({{"step", m.step},
                              {"name", m.name},
                              {"value", m.value},
                              {"step_number", m.step_number},
                              {"time", utc_time(m.time)}});
      if (!m.from_run.empty()) j["metrics"].back()["from_run"] = m.from_run;
    }
    out << dump(j) << '\n';
    return;
  }
  const auto d = run_duration(run);
  std::vector<std::vector<std::string>> head{
      {"run", run.id},
      {"experiment", run.experiment},
      {"pipeline", fmt::format("{} (structure {})", run.pipeline, run.structure.substr(0, 12))},
      {"status", run.status + (run.exit_code ? fmt::format(", exit code {}", *run.exit_code) : "")},
      {"started", local_time(run.started) + (d ? " (" + duration_text(*d) + ")" : "")},
      {"host", fmt::format("{} (pid {}), user {}", run.host, run.pid, run.user)},
      {"directory", run.directory},
      {"git", run.git_commit.empty()
                  ? "-"
                  : run.git_commit + (run.git_dirty && *run.git_dirty ? " (uncommitted changes)" : "")},
      {"penstock", run.version}};
  print_table(out, head);
  if (!params.empty()) {
    out << "\nparameters\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& [name, value] : params) rows.push_back({name, "=", value});
    print_table(out, rows, "  ");
  }
  out << "\nsteps: " << run.steps << " (" << run.computed << " ran, " << run.cached << " cached, " << run.failed
      << " failed)\n";
  // The error column only when a step has one (its first line).
  const bool errors = std::any_of(steps.begin(), steps.end(), [](const step_run_row& s) { return !s.error.empty(); });
  std::vector<std::vector<std::string>> rows{{"STEP", "STATUS", "ATTEMPTS", "STARTED", "DURATION", "WORKER"}};
  if (errors) rows[0].push_back("ERROR");
  for (const auto& s : steps) {
    const bool timed = s.worker >= 0;  // it computed
    rows.push_back({s.name, s.status, std::to_string(s.attempts), timed ? duration_text(s.started) : "-",
                    timed ? duration_text(s.duration) : "-", timed ? std::to_string(s.worker) : "-"});
    if (errors) rows.back().push_back(s.error.substr(0, s.error.find('\n')));
  }
  print_table(out, rows, "  ");
  if (!metrics.empty()) {
    out << "\nmetrics\n";
    std::vector<std::vector<std::string>> m{{"NAME", "STEP", "LAST", "AT STEP", "MIN", "MAX", "POINTS"}};
    for (const auto& [name, s] : summarize(metrics)) {
      m.push_back({name, s.from_run.empty() ? s.step : fmt::format("{} (cached, from run {})", s.step, s.from_run),
                   number_text(s.last), std::to_string(s.last_step), number_text(s.min), number_text(s.max),
                   std::to_string(s.count)});
    }
    print_table(out, m, "  ");
  }
}

void compare_command(workspace_store& store, const workspace_arguments& a, std::ostream& out) {
  if (a.runs.size() < 2) throw bad_argument("compare: give at least two runs");
  std::vector<run_row> runs;
  std::set<std::string> seen;
  for (const auto& id : a.runs) {
    runs.push_back(find(store, id));
    if (!seen.insert(runs.back().id).second)
      throw bad_argument(fmt::format("compare: run {} is given twice", runs.back().id));
  }
  if (!a.plot.empty()) return plot_command(store, runs, a, out);
  // name -> value per run (nullopt where the run has none).
  std::map<std::string, std::vector<std::optional<std::string>>> params;
  std::map<std::string, std::vector<std::optional<double>>> metrics;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    for (const auto& [name, value] : store.params(runs[i].id)) {
      auto& row = params[name];
      row.resize(runs.size());
      row[i] = value;
    }
    for (const auto& [name, s] : summarize(store.metrics(runs[i].id))) {
      auto& row = metrics[name];
      row.resize(runs.size());
      row[i] = s.last;
    }
  }
  for (auto& [name, row] : params) row.resize(runs.size());
  for (auto& [name, row] : metrics) row.resize(runs.size());
  const auto differs = [](const auto& row) {
    return std::adjacent_find(row.begin(), row.end(), std::not_equal_to<>()) != row.end();
  };
  if (a.json) {
    json j{{"runs", json::array()}, {"params", json::object()}, {"metrics", json::object()}};
    for (const auto& r : runs) j["runs"].push_back(run_json(r));
    for (const auto& [name, row] : params) {
      if (!a.all && !differs(row)) continue;
      json values = json::array();
      for (const auto& v : row) values.push_back(v ? json(*v) : json(nullptr));
      j["params"][name] = values;
    }
    for (const auto& [name, row] : metrics) {
      if (!a.all && !differs(row)) continue;
      json values = json::array();
      for (const auto& v : row) values.push_back(v ? json(*v) : json(nullptr));
      j["metrics"][name] = values;
    }
    out << dump(j) << '\n';
    return;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head{"", ""};
  for (const auto& r : runs) head.push_back(r.id);
  rows.push_back(head);
  std::vector<std::string> status{"", "status"};
  for (const auto& r : runs) status.push_back(r.status);
  rows.push_back(status);
  std::size_t same = 0;
  for (const auto& [name, row] : params) {
    if (!a.all && !differs(row)) {
      ++same;
      continue;
    }
    std::vector<std::string> line{"param", name};
    for (const auto& v : row) line.push_back(v ? *v : "-");
    rows.push_back(line);
  }
  for (const auto& [name, row] : metrics) {
    if (!a.all && !differs(row)) {
      ++same;
      continue;
    }
    std::vector<std::string> line{"metric", name};
    for (const auto& v : row) line.push_back(v ? number_text(*v) : "-");
    rows.push_back(line);
  }
  print_table(out, rows);
  if (same != 0) out << "(" << same << " equal in every run not shown; --all shows them)\n";
}

void export_mlflow_command(workspace_store& store, const workspace_arguments& a, std::ostream& out) {
  const run_row run = find(store, a.run);
  try {
    (void)parse_http_uri(a.target);
  } catch (const std::invalid_argument& e) {
    throw bad_argument(fmt::format("MLflow tracking URI {}", e.what()));
  }
  const mlflow_sent sent = send_to_mlflow(store, run, a.target, {.replace = a.all});
  if (a.json) {
    out << dump({{"run", run.id},
                 {"mlflow_run", sent.run_id},
                 {"experiment_id", sent.experiment_id},
                 {"url", sent.url},
                 {"already", sent.already},
                 {"step_runs", sent.step_runs},
                 {"metrics", sent.metrics},
                 {"params", sent.params},
                 {"requests", sent.requests},
                 {"notes", sent.notes}})
        << '\n';
    return;
  }
  for (const auto& note : sent.notes) out << "note: " << note << '\n';
  if (sent.already) {
    out << fmt::format("run {} is already in MLflow as {} (--replace sends it again)\n", run.id, sent.url);
  } else {
    out << fmt::format("run {} sent to MLflow as {}: {} parameters, {} metric points, {} step runs ({} requests)\n",
                       run.id, sent.url, sent.params, sent.metrics, sent.step_runs, sent.requests);
  }
}

void logs_command(workspace_store& store, const workspace_arguments& a, std::ostream& out) {
  const run_row run = find(store, a.run);
  if (!a.target.empty()) {
    const auto steps = store.step_runs(run.id);
    if (std::none_of(steps.begin(), steps.end(), [&](const step_run_row& s) { return s.name == a.target; }) &&
        !steps.empty()) {
      throw std::runtime_error(fmt::format("run {} has no step '{}'", run.id, a.target));
    }
  }
  const auto lines = store.logs(run.id, a.target);
  if (a.json) {
    json j = json::array();
    for (const auto& l : lines) {
      j.push_back({{"step", l.step},
                   {"element", l.element ? json(*l.element) : json(nullptr)},
                   {"time", utc_time(l.time)},
                   {"line", l.line}});
    }
    out << dump(j) << '\n';
    return;
  }
  for (const auto& l : lines) {
    const auto ms = std::chrono::floor<std::chrono::milliseconds>(l.time);
    const std::time_t t = std::chrono::system_clock::to_time_t(ms);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    out << fmt::format("{:%H:%M:%S}.{:03d} [{}{}] {}\n", tm, static_cast<int>((ms.time_since_epoch().count()) % 1000),
                       l.step, l.element ? fmt::format(" #{}", *l.element) : "", l.line);
  }
}

bool is_hex(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void lineage_command(workspace_store& store, const workspace_arguments& a, std::ostream& out) {
  const run_row run = find(store, a.run);
  const auto steps = store.step_runs(run.id);
  const auto inputs = store.step_inputs(run.id);
  const auto step = std::find_if(steps.begin(), steps.end(), [&](const step_run_row& s) { return s.name == a.target; });
  std::optional<digest> value;
  std::string subject;
  if (step != steps.end()) {
    value = step->output;
    subject = fmt::format("step '{}' of run {}", step->name, run.id);
  } else if (is_hex(a.target) && a.target.size() >= 6) {
    const auto digests = store.digests_with_prefix(a.target);
    if (digests.size() > 1) throw bad_argument(fmt::format("digest '{}' is ambiguous; give more of it", a.target));
    if (digests.empty())
      throw std::runtime_error(fmt::format("no step run produced a value with digest '{}'", a.target));
    value = digests.front();
    subject = "value " + value->hex();
  } else {
    throw std::runtime_error(fmt::format("run {} has no step '{}' (and it is no digest)", run.id, a.target));
  }
  std::vector<lineage_row> producers;
  std::vector<lineage_row> consumers;
  std::vector<std::pair<std::string, std::optional<digest>>> reads;  // the step's inputs: producer, digest
  if (value) {
    producers = store.producers(*value);
    consumers = store.consumers(*value);
  }
  if (step != steps.end()) {
    // Within the run, by the graph, whether or not digests are known.
    const auto name_of = [&](std::uint32_t node) {
      for (const auto& s : steps)
        if (s.node == node) return s.name;
      return std::to_string(node);
    };
    for (const auto& in : inputs) {
      if (in.node == step->node) reads.emplace_back(name_of(in.producer), in.content);
      if (in.producer != step->node || value) continue;
      for (const auto& s : steps) {
        if (s.node == in.node)
          consumers.push_back(
              {.run = run.id, .step = s.name, .status = s.status, .started = run.started, .content = {}});
      }
    }
    if (!value)
      producers.push_back(
          {.run = run.id, .step = step->name, .status = step->status, .started = run.started, .content = {}});
  }
  const auto rows_json = [](const std::vector<lineage_row>& rows) {
    json j = json::array();
    for (const auto& r : rows)
      j.push_back({{"run", r.run}, {"step", r.step}, {"status", r.status}, {"started", utc_time(r.started)}});
    return j;
  };
  if (a.json) {
    json j{{"subject", subject},
           {"digest", value ? json(value->hex()) : json(nullptr)},
           {"produced_by", rows_json(producers)},
           {"consumed_by", rows_json(consumers)},
           {"inputs", json::array()}};
    for (const auto& [from, d] : reads)
      j["inputs"].push_back({{"step", from}, {"digest", d ? json(d->hex()) : json(nullptr)}});
    out << dump(j) << '\n';
    return;
  }
  out << subject << (value ? ": value " + value->hex() : ": its value's digest is unknown (run without the cache)")
      << '\n';
  if (!reads.empty()) {
    out << "\nreads\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& [from, d] : reads) rows.push_back({from, d ? d->hex() : "-"});
    print_table(out, rows, "  ");
  }
  const auto print_rows = [&out](std::string_view title, const std::vector<lineage_row>& rows) {
    out << '\n' << title << (rows.empty() ? ": none\n" : "\n");
    if (rows.empty()) return;
    std::vector<std::vector<std::string>> table{{"RUN", "STEP", "STATUS", "RUN STARTED"}};
    for (const auto& r : rows) table.push_back({r.run, r.step, r.status, local_time(r.started)});
    print_table(out, table, "  ");
  };
  print_rows("produced by", producers);
  print_rows("read by", consumers);
}

}  // namespace

workspace_commands add_workspace_commands(CLI::App& app) {
  workspace_commands c;
  c.args = std::make_shared<workspace_arguments>();
  auto& a = *c.args;
  const auto common = [&a](CLI::App* sub) {
    sub->add_flag("--json", a.json, "answer in JSON");
    sub->add_option("--workspace", a.workspace, "the workspace file (default: runs.db in the cache directory)")
        ->type_name("FILE");
  };
  c.runs = app.add_subcommand("runs", "list the recorded runs, newest first");
  c.runs->add_option("-e,--experiment", a.experiment, "only this experiment's runs")->type_name("NAME");
  c.runs->add_option("-s,--status", a.status, "only runs with this status")
      ->check(CLI::IsMember({"running", "succeeded", "failed", "interrupted", "crashed"}));
  c.runs->add_option("--pipeline", a.pipeline, "only this pipeline's runs")->type_name("NAME");
  c.runs->add_option("-p,--param", a.params, "only runs with this parameter value (repeatable)")
      ->type_name("NAME=VALUE");
  c.runs->add_option("-n,--limit", a.limit, "at most this many (0: all)")->capture_default_str();
  common(c.runs);

  c.show = app.add_subcommand("show", "one run: its parameters, steps and metrics");
  c.show->add_option("run", a.run, "a run id, a unique prefix of one, or latest")->required();
  const auto plot_options = [&a](CLI::App* sub, const char* what) {
    auto* out = sub->add_option("-o,--out", a.out, "where --plot writes its SVG")->type_name("FILE.svg");
    sub->add_option("--plot", a.plot, what)->type_name("METRIC")->needs(out);
    out->needs(sub->get_option("--plot"));
  };
  plot_options(c.show, "draw this metric against its step number (SVG, with --out)");
  c.show->add_option("--html", a.html, "write the run as one self-contained HTML page")->type_name("FILE.html");
  common(c.show);

  c.compare = app.add_subcommand("compare", "runs side by side: the parameters and final metrics that differ");
  c.compare->add_option("runs", a.runs, "two or more runs (ids, prefixes, latest)")->required()->expected(2, -1);
  c.compare->add_flag("-a,--all", a.all, "also what is equal in every run");
  plot_options(c.compare, "draw this metric of each run, one line per run (SVG, with --out)");
  common(c.compare);

  c.logs = app.add_subcommand("logs", "the lines a run's steps logged");
  c.logs->add_option("run", a.run, "a run id, a unique prefix of one, or latest")->required();
  c.logs->add_option("step", a.target, "only this step's lines");
  common(c.logs);

  c.lineage = app.add_subcommand("lineage", "which step runs produced a value and which read it, across runs");
  c.lineage->add_option("run", a.run, "a run id, a unique prefix of one, or latest")->required();
  c.lineage->add_option("target", a.target, "a step of the run, or a value's digest (a prefix of 6 or more hex digits)")
      ->required();
  common(c.lineage);

  c.export_mlflow = app.add_subcommand(
      "export-mlflow", "send a run to an MLflow tracking server: parameters, metrics, tags, step runs nested");
  c.export_mlflow->add_option("run", a.run, "a run id, a unique prefix of one, or latest")->required();
  c.export_mlflow->add_option("uri", a.target, "the tracking server, http://HOST:PORT")->required();
  c.export_mlflow->add_flag("--replace", a.all, "send it again when it is there (the old one is deleted there)");
  common(c.export_mlflow);
  return c;
}

std::optional<int> run_workspace_command(const workspace_commands& c, const std::filesystem::path& default_workspace,
                                         std::ostream& out, std::ostream& err) {
  using command = void (*)(workspace_store&, const workspace_arguments&, std::ostream&);
  const std::pair<CLI::App*, command> commands[] = {
      {c.runs, runs_command}, {c.show, show_command},       {c.compare, compare_command},
      {c.logs, logs_command}, {c.lineage, lineage_command}, {c.export_mlflow, export_mlflow_command}};
  for (const auto& [app, run] : commands) {
    if (app == nullptr || !app->parsed()) continue;
    const std::filesystem::path file =
        c.args->workspace.empty() ? default_workspace : std::filesystem::path(c.args->workspace);
    try {
      const auto store = workspace_store::open_for_reading(file);
      run(*store, *c.args, out);
      return 0;
    } catch (const bad_argument& e) {
      err << "error: " << e.what() << '\n';
      return 2;
    } catch (const std::exception& e) {
      err << "error: " << e.what() << '\n';
      return 1;
    }
  }
  return std::nullopt;
}

}  // namespace penstock::detail::r1
