// The workspace commands (runtime/src/workspace_commands.hpp) on runs
// recorded by real pipelines: what `runs`, `show`, `compare`, `logs` and
// `lineage` print, their --json, filters, run ids by prefix and `latest`,
// and exit codes for what is not there; and `run --trace`'s Chrome trace.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <penstock/main.hpp>
#include <penstock/penstock.hpp>

#include "scratch_directory.hpp"
#include "workspace_commands.hpp"
#include "workspace_store.hpp"

namespace fs = std::filesystem;
namespace ps = penstock;
using namespace penstock::detail::r1;
using json = nlohmann::json;
using penstock_test::scratch_directory;

namespace {

struct answer {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs one command line (as after the program's name) against `dir`'s workspace.
answer command(const fs::path& dir, std::vector<std::string> args) {
  CLI::App app("test");
  app.require_subcommand(1);
  const auto commands = add_workspace_commands(app);
  std::vector<const char*> argv{"test"};
  for (const auto& a : args) argv.push_back(a.c_str());
  answer a;
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    a.code = 2;
    a.err = e.what();
    return a;
  }
  std::ostringstream out;
  std::ostringstream err;
  a.code = run_workspace_command(commands, workspace_file(dir), out, err).value_or(-1);
  a.out = out.str();
  a.err = err.str();
  return a;
}

// The command's --json answer; a test failure naming its error if it had none.
json json_of(const fs::path& dir, std::vector<std::string> args) {
  const answer a = command(dir, args);
  EXPECT_EQ(a.code, 0) << a.err;
  if (a.code != 0) return json();
  return json::parse(a.out);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs a small training pipeline with `rate`, in `experiment`, cache on.
std::string train(const fs::path& dir, const std::string& rate, const std::string& experiment = "Default",
                  bool fail = false) {
  auto lr = ps::param<double>("rate", 0.1);
  auto seed = ps::param<int>("seed", 1);
  auto data = ps::step<"data">([](int s) { return std::vector<double>{1.0 * s, 2.0, 3.0}; })(seed);
  auto fit = ps::step<"fit">([fail](ps::context& ctx, const std::vector<double>& d, double r) {
    if (fail) throw std::runtime_error("diverged");
    double loss = 10;
    for (int epoch = 1; epoch <= 3; ++epoch) {
      loss *= (1 - r);
      ctx.log_metric("loss", loss, epoch);
      ctx.log("epoch " + std::to_string(epoch) + " loss " + std::to_string(loss));
    }
    return loss + d.size();
  })(data, lr);
  ps::run_options options;
  options.threads = 2;
  options.cache.enabled = true;
  options.cache.directory = dir.string();
  options.tracking.experiment = experiment;
  options.params = {{"rate", rate}};
  const auto result = ps::pipeline<"trainer">(fit).run(options);
  EXPECT_EQ(result.ok(), !fail) << result.report().summary();
  return result.report().run_id;
}

}  // namespace

TEST(workspace_commands, runs_lists_newest_first_and_filters) {
  scratch_directory dir;
  const auto a = train(dir.path(), "0.1", "baseline");
  const auto b = train(dir.path(), "0.2", "tuning");
  const auto c = train(dir.path(), "0.3", "tuning", true);

  const auto all = command(dir.path(), {"runs"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_TRUE(contains(all.out, "RUN")) << all.out;
  EXPECT_LT(all.out.find(c), all.out.find(b)) << all.out;
  EXPECT_LT(all.out.find(b), all.out.find(a)) << all.out;

  const auto tuning = command(dir.path(), {"runs", "--experiment", "tuning", "--json"});
  ASSERT_EQ(tuning.code, 0) << tuning.err;
  const auto j = json::parse(tuning.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["id"], c);
  EXPECT_EQ(j[0]["status"], "failed");
  EXPECT_EQ(j[1]["id"], b);
  EXPECT_EQ(j[1]["status"], "succeeded");
  EXPECT_EQ(j[1]["experiment"], "tuning");
  EXPECT_EQ(j[1]["pipeline"], "trainer");

  const auto failed = json_of(dir.path(), {"runs", "--status", "failed", "--json"});
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["id"], c);
  const auto by_param = json_of(dir.path(), {"runs", "--param", "rate=0.2", "--json"});
  ASSERT_EQ(by_param.size(), 1u);
  EXPECT_EQ(by_param[0]["id"], b);
  const auto limited = json_of(dir.path(), {"runs", "-n", "1", "--json"});
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0]["id"], c);
  EXPECT_EQ(command(dir.path(), {"runs", "--status", "nonsense"}).code, 2);
  EXPECT_EQ(command(dir.path(), {"runs", "--param", "rate"}).code, 2);
}

TEST(workspace_commands, runs_filters_string_parameters_as_typed_and_bytes_that_are_not_utf8) {
  scratch_directory dir;
  const auto tag_run = [&](const std::string& tag) {
    auto t = ps::param<std::string>("tag", "none");
    auto out = ps::step<"echo">([](const std::string& s) { return s.size(); })(t);
    ps::run_options options;
    options.threads = 1;
    options.cache.enabled = true;
    options.cache.directory = dir.path().string();
    options.params = {{"tag", tag}};
    const auto result = ps::pipeline<"tags">(out).run(options);
    EXPECT_TRUE(result.ok()) << result.report().summary();
    return result.report().run_id;
  };
  const auto cafe = tag_run("cafe");
  const auto latin1 = tag_run("caf\xe9");  // Latin-1, not UTF-8
  tag_run("cafeteria");

  // As typed on a command line: no quotes, and the same bytes.
  const auto plain = json_of(dir.path(), {"runs", "--param", "tag=cafe", "--json"});
  ASSERT_EQ(plain.size(), 1u) << plain.dump();
  EXPECT_EQ(plain[0]["id"], cafe);
  const auto quoted = json_of(dir.path(), {"runs", "--param", "tag=\"cafe\"", "--json"});
  ASSERT_EQ(quoted.size(), 1u) << quoted.dump();
  EXPECT_EQ(quoted[0]["id"], cafe);
  const auto bytes = json_of(dir.path(), {"runs", "--param", "tag=caf\xe9", "--json"});
  ASSERT_EQ(bytes.size(), 1u) << bytes.dump();
  EXPECT_EQ(bytes[0]["id"], latin1);
  EXPECT_EQ(json_of(dir.path(), {"runs", "--param", "tag=caf", "--json"}).size(), 0u);
}

TEST(workspace_commands, a_cached_step_shows_the_metrics_of_the_run_that_computed_it) {
  scratch_directory dir;
  const auto first = train(dir.path(), "0.1");
  const auto other = train(dir.path(), "0.2");  // fit computed again: other metrics
  const auto again = train(dir.path(), "0.1");  // fit cached: first's value

  const auto shown = json_of(dir.path(), {"show", again, "--json"});
  std::vector<json> loss;
  for (const auto& m : shown["metrics"])
    if (m["name"] == "loss") loss.push_back(m);
  ASSERT_EQ(loss.size(), 3u) << shown.dump();
  for (const auto& m : loss) {
    EXPECT_EQ(m["step"], "fit");
    EXPECT_EQ(m["from_run"], first) << m.dump();  // not `other`, whose fit computed another value
  }
  EXPECT_DOUBLE_EQ(loss.back()["value"].get<double>(), 10 * 0.9 * 0.9 * 0.9);
  const auto own = json_of(dir.path(), {"show", first, "--json"});
  for (const auto& m : own["metrics"]) EXPECT_FALSE(m.contains("from_run")) << m.dump();

  const auto text = command(dir.path(), {"show", again});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "fit (cached, from run " + first + ")")) << text.out;
  // The same final loss as the run that computed it: not a difference.
  const auto same = json_of(dir.path(), {"compare", first, again, "--json"});
  EXPECT_FALSE(same["metrics"].contains("loss")) << same.dump();
  const auto all = json_of(dir.path(), {"compare", first, again, "--all", "--json"});
  ASSERT_TRUE(all["metrics"].contains("loss")) << all.dump();
  EXPECT_EQ(all["metrics"]["loss"][0], all["metrics"]["loss"][1]);
  const auto differs = json_of(dir.path(), {"compare", other, again, "--json"});
  EXPECT_TRUE(differs["metrics"].contains("loss")) << differs.dump();
}

TEST(workspace_commands, show_prints_the_steps_parameters_and_metric_summary) {
  scratch_directory dir;
  const auto id = train(dir.path(), "0.5");
  const auto shown = command(dir.path(), {"show", id});
  ASSERT_EQ(shown.code, 0) << shown.err;
  for (const std::string& part : std::vector<std::string>{id, "trainer", "succeeded", "rate", "0.5", "seed", "data",
                                                          "fit", "ran", "loss", "1.25", "POINTS"}) {
    EXPECT_TRUE(contains(shown.out, part)) << "no '" << part << "' in\n" << shown.out;
  }
  const auto j = json_of(dir.path(), {"show", "latest", "--json"});
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["params"]["rate"], "0.5");
  ASSERT_EQ(j["step_runs"].size(), 2u);
  EXPECT_EQ(j["step_runs"][1]["step"], "fit");
  EXPECT_EQ(j["step_runs"][1]["status"], "ran");
  ASSERT_EQ(j["metrics"].size(), 3u);
  EXPECT_DOUBLE_EQ(j["metrics"][2]["value"].get<double>(), 1.25);
  EXPECT_EQ(j["metrics"][2]["step_number"], 3);

  // Again: every step cached.
  const auto again = train(dir.path(), "0.5");
  const auto j2 = json_of(dir.path(), {"show", again.substr(0, again.size() - 1), "--json"});
  EXPECT_EQ(j2["cached"], 2);
  EXPECT_EQ(j2["step_runs"][1]["status"], "cached");
}

TEST(workspace_commands, compare_shows_what_differs_between_runs) {
  scratch_directory dir;
  const auto a = train(dir.path(), "0.1");
  const auto b = train(dir.path(), "0.5");
  const auto compared = command(dir.path(), {"compare", a, b});
  ASSERT_EQ(compared.code, 0) << compared.err;
  EXPECT_TRUE(contains(compared.out, "rate")) << compared.out;
  EXPECT_FALSE(contains(compared.out, "seed")) << "seed is 1 in both runs:\n" << compared.out;
  EXPECT_TRUE(contains(compared.out, "equal in every run not shown")) << compared.out;
  const auto j = json_of(dir.path(), {"compare", a, b, "--json"});
  EXPECT_EQ(j["params"]["rate"], (json{"0.1", "0.5"}));
  EXPECT_FALSE(j["params"].contains("seed"));
  EXPECT_DOUBLE_EQ(j["metrics"]["loss"][0].get<double>(), 10 * 0.9 * 0.9 * 0.9);
  EXPECT_DOUBLE_EQ(j["metrics"]["loss"][1].get<double>(), 1.25);
  const auto everything = json_of(dir.path(), {"compare", a, b, "--all", "--json"});
  EXPECT_EQ(everything["params"]["seed"], (json{"1", "1"}));
  EXPECT_EQ(command(dir.path(), {"compare", a}).code, 2);
  EXPECT_EQ(command(dir.path(), {"compare", a, a}).code, 2);
}

TEST(workspace_commands, logs_prints_a_runs_lines_or_one_steps) {
  scratch_directory dir;
  const auto id = train(dir.path(), "0.5");
  const auto all = command(dir.path(), {"logs", id});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_TRUE(contains(all.out, "[fit] epoch 1 loss 5.000000")) << all.out;
  EXPECT_TRUE(contains(all.out, "[fit] epoch 3 loss 1.250000")) << all.out;
  const auto j = json_of(dir.path(), {"logs", id, "fit", "--json"});
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["line"], "epoch 1 loss 5.000000");
  EXPECT_EQ(json_of(dir.path(), {"logs", id, "data", "--json"}).size(), 0u);
  const auto missing = command(dir.path(), {"logs", id, "nosuchstep"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(contains(missing.err, "no step 'nosuchstep'")) << missing.err;
}

TEST(workspace_commands, lineage_follows_a_value_across_runs) {
  scratch_directory dir;
  const auto a = train(dir.path(), "0.1");
  const auto b = train(dir.path(), "0.5");  // data is a hit: the same value, read by b's fit
  const auto j = json_of(dir.path(), {"lineage", b, "data", "--json"});
  ASSERT_FALSE(j["digest"].is_null());
  ASSERT_EQ(j["produced_by"].size(), 2u);
  EXPECT_EQ(j["produced_by"][0]["run"], a);
  EXPECT_EQ(j["produced_by"][0]["status"], "ran");
  EXPECT_EQ(j["produced_by"][1]["run"], b);
  EXPECT_EQ(j["produced_by"][1]["status"], "cached");
  ASSERT_EQ(j["consumed_by"].size(), 2u);
  EXPECT_EQ(j["consumed_by"][0]["step"], "fit");
  // By digest prefix, from the other run.
  const std::string digest = j["digest"];
  const auto by_digest = json_of(dir.path(), {"lineage", a, digest.substr(0, 10), "--json"});
  EXPECT_EQ(by_digest["digest"], digest);
  EXPECT_EQ(by_digest["consumed_by"].size(), 2u);
  const auto text = command(dir.path(), {"lineage", b, "fit"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "reads")) << text.out;
  EXPECT_TRUE(contains(text.out, "data")) << text.out;
  EXPECT_EQ(command(dir.path(), {"lineage", b, "nosuchstep"}).code, 1);
}

TEST(workspace_commands, a_missing_workspace_or_run_is_an_error_naming_it) {
  scratch_directory dir;
  const auto none = command(dir.path(), {"runs"});
  EXPECT_EQ(none.code, 1);
  EXPECT_TRUE(contains(none.err, (dir.path() / "runs.db").string())) << none.err;
  (void)train(dir.path(), "0.1");
  const auto missing = command(dir.path(), {"show", "nosuchrun"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(contains(missing.err, "no run 'nosuchrun'")) << missing.err;
  (void)train(dir.path(), "0.2");
  const auto ambiguous = command(dir.path(), {"show", "2"});
  EXPECT_EQ(ambiguous.code, 2);
  EXPECT_TRUE(contains(ambiguous.err, "ambiguous")) << ambiguous.err;
}

namespace {

// Runs `args` through ps::main on the trainer pipeline, with PENSTOCK_HOME at `dir`.
int main_in(const fs::path& dir, std::vector<std::string> args) {
  auto lr = ps::param<double>("rate", 0.1);
  auto data = ps::step<"data">([] { return std::vector<double>{1.0, 2.0}; })();
  auto fit = ps::step<"fit">([](const std::vector<double>& d, double r) { return d.size() * r; })(data, lr);
  ::setenv("PENSTOCK_HOME", dir.c_str(), 1);
  std::vector<const char*> argv{"trainer"};
  for (const auto& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  const int code = ps::main(ps::pipeline<"trainer">(fit), static_cast<int>(argv.size()), argv.data());
  (void)testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();
  ::unsetenv("PENSTOCK_HOME");
  EXPECT_EQ(code, 0) << err;
  return code;
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in);
}

}  // namespace

TEST(workspace_commands, run_trace_writes_a_chrome_trace_with_a_track_per_worker_and_hits_marked) {
  scratch_directory dir;
  const fs::path first = dir.path() / "first.json";
  const fs::path second = dir.path() / "second.json";
  main_in(dir.path(), {"run", "--quiet", "--trace", first.string()});
  main_in(dir.path(), {"run", "--quiet", "--trace", second.string()});
  const json a = read_json(first);
  std::set<std::string> slices;
  std::set<int> tracks;
  std::set<int> named;
  for (const auto& e : a["traceEvents"]) {
    if (e["ph"] == "X") {
      slices.insert(e["name"]);
      tracks.insert(e["tid"].get<int>());
      EXPECT_GE(e["ts"].get<double>(), 0.0);
      EXPECT_GE(e["dur"].get<double>(), 0.0);
      EXPECT_EQ(e["args"]["status"], "succeeded");
    }
    if (e["ph"] == "M" && e["name"] == "thread_name") named.insert(e["tid"].get<int>());
  }
  EXPECT_EQ(slices, (std::set<std::string>{"data", "fit"}));
  EXPECT_EQ(named, tracks) << "every worker's track is named";
  // The rerun's steps are hits: instants marked cached, no slices.
  std::set<std::string> hits;
  const json b = read_json(second);
  for (const auto& e : b["traceEvents"]) {
    EXPECT_NE(e["ph"], "X") << e.dump();
    if (e["ph"] == "i") {
      EXPECT_EQ(e["cat"], "cached");
      hits.insert(e["name"]);
    }
  }
  EXPECT_EQ(hits, (std::set<std::string>{"data", "fit"}));
  // Both runs are recorded, with their exit codes.
  const auto runs = json_of(dir.path(), {"runs", "--json"});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["exit_code"], 0);
  EXPECT_EQ(runs[0]["cached"], 2);
}

TEST(workspace_commands, plots_need_an_output_and_leave_out_values_that_are_not_finite) {
  scratch_directory dir;
  const auto id = train(dir.path(), "0.5");
  EXPECT_EQ(command(dir.path(), {"show", id, "--plot", "loss"}).code, 2) << "--plot without --out";
  EXPECT_EQ(command(dir.path(), {"show", id, "--out", "x.svg"}).code, 2) << "--out without --plot";
  const fs::path svg = dir.path() / "loss.svg";
  const auto drawn = command(dir.path(), {"show", id, "--plot", "loss", "--out", svg.string()});
  ASSERT_EQ(drawn.code, 0) << drawn.err;
  EXPECT_TRUE(contains(drawn.out, "3 points of 'loss' in 1 run")) << drawn.out;
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("<svg ", 0), 0u) << text.substr(0, 80);
  EXPECT_TRUE(contains(text, "data-label=\"" + id + "\"")) << text;

  // A metric with a NaN: drawn without it, and the legend says so.
  auto s = ps::step<"nan">([](ps::context& ctx) {
    ctx.log_metric("m", 1.0, 1);
    ctx.log_metric("m", std::numeric_limits<double>::quiet_NaN(), 2);
    ctx.log_metric("m", 3.0, 3);
    return 1;
  })();
  ps::run_options options;
  options.cache.directory = dir.path().string();
  const auto run = ps::pipeline<"nan">(s).run(options);
  ASSERT_TRUE(run.ok());
  const fs::path nan_svg = dir.path() / "m.svg";
  ASSERT_EQ(command(dir.path(), {"show", run.report().run_id, "--plot", "m", "--out", nan_svg.string()}).code, 0);
  std::ifstream nan_in(nan_svg);
  const std::string nan_text((std::istreambuf_iterator<char>(nan_in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(contains(nan_text, "(1 not finite, not drawn)")) << nan_text;
  EXPECT_FALSE(contains(nan_text, "nan,")) << "a NaN in the line's points";
  // In JSON a NaN is null (JSON has no NaN).
  const auto j = json_of(dir.path(), {"show", run.report().run_id, "--json"});
  ASSERT_EQ(j["metrics"].size(), 3u);
  EXPECT_TRUE(j["metrics"][1]["value"].is_null()) << j["metrics"].dump();
  EXPECT_EQ(j["metrics"][2]["value"], 3.0);
}

TEST(workspace_commands, a_step_name_that_is_not_utf8_is_answered_escaped_in_json_and_found_by_logs) {
  scratch_directory dir;
  auto s = ps::step<"caf\xe9">([](ps::context& ctx) {
    ctx.log("served");
    ctx.log_metric("cups", 2.0);
    return 1;
  })();
  ps::run_options options;
  options.cache.directory = dir.path().string();
  const auto run = ps::pipeline<"bytes\xff">(s).run(options);
  ASSERT_TRUE(run.ok());
  const auto shown = json_of(dir.path(), {"show", "latest", "--json"});
  EXPECT_EQ(shown["pipeline"], "bytes\\xff");
  EXPECT_EQ(shown["step_runs"][0]["step"], "caf\\xe9");
  EXPECT_EQ(shown["metrics"][0]["step"], "caf\\xe9");
  const auto lines = json_of(dir.path(), {"logs", "latest", "caf\\xe9", "--json"});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["line"], "served");
}
