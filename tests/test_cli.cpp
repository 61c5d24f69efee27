// ps::main: the command line every pipeline binary shares. `run` prints each
// output as "name = value" and exits 0, 1 when a step failed, 2 for a bad
// command line or parameter; `graph` prints DOT or Mermaid; `describe` lists
// the parameters and steps with their types; --version.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace ps = penstock;

namespace {

struct opaque {  // no operator<<: printed as its type
  int value = 0;
};

struct cli_result {
  int code = -1;
  std::string out;
  std::string err;
};

template <class P>
cli_result run_cli(const P& pipeline, const std::vector<std::string>& args) {
  std::vector<const char*> argv{"pipeline"};
  for (const auto& a : args) argv.push_back(a.c_str());
  cli_result r;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  r.code = ps::main(pipeline, static_cast<int>(argv.size()), argv.data());
  r.out = testing::internal::GetCapturedStdout();
  r.err = testing::internal::GetCapturedStderr();
  return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

std::vector<int> numbers(int n) {
  std::vector<int> v;
  for (int i = 1; i <= n; ++i) v.push_back(i);
  return v;
}
int total(const std::vector<int>& v) {
  int sum = 0;
  for (int x : v) sum += x;
  return sum;
}

// n → numbers → {total, doubled (map)}; label from a string parameter.
auto demo_pipeline() {
  auto n = ps::param<int>("n", 3);
  auto name = ps::param<std::string>("name");
  auto data = ps::step<"numbers">(numbers)(n);
  auto sum = ps::step<"total">(total)(data);
  auto doubled = ps::map<"doubled">([](int x) { return 2 * x; }).retries(2)(data);
  auto label = ps::step<"label">([](const std::string& s, int t) { return s + ":" + std::to_string(t); })(name, sum);
  auto box = ps::step<"box">([](int t) { return opaque{t}; }).cache(ps::never)(sum);
  return ps::pipeline<"demo">(label, doubled, box);
}

auto failing_pipeline() {
  auto ok = ps::step<"fine">([] { return 1; })();
  auto bad = ps::step<"broken">([](int) -> int { throw std::runtime_error("disk on fire"); })(ok);
  auto other = ps::step<"other">([] { return 2; })();
  return ps::pipeline<"failing">(bad, other);
}

}  // namespace

TEST(cli, run_prints_each_output_and_exits_0) {
  const auto r = run_cli(demo_pipeline(), {"run", "--param", "n=4", "--param", "name=sum", "--quiet"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "label = \"sum:10\"\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "doubled = [4 elements]\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "box = <")) << r.out;
  EXPECT_TRUE(contains(r.out, "opaque>")) << r.out;
  // Steps that are not outputs are not printed.
  EXPECT_FALSE(contains(r.out, "total =")) << r.out;
  EXPECT_FALSE(contains(r.out, "numbers =")) << r.out;
  // --quiet: no summary.
  EXPECT_FALSE(contains(r.err, "succeeded")) << r.err;
}

TEST(cli, run_without_quiet_reports_progress_and_the_summary_on_stderr) {
  const auto r = run_cli(demo_pipeline(), {"run", "-p", "name=x", "--threads", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "label = \"x:6\"")) << r.out;
  EXPECT_TRUE(contains(r.err, "pipeline 'demo': 5 succeeded")) << r.err;
  EXPECT_FALSE(contains(r.out, "succeeded")) << "the summary goes to stderr, not stdout";
}

TEST(cli, a_failing_step_exits_1_and_names_the_step) {
  const auto r = run_cli(failing_pipeline(), {"run", "--quiet"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "step 'broken' failed")) << r.err;
  EXPECT_TRUE(contains(r.err, "disk on fire")) << r.err;
  // The output that succeeded is still printed.
  EXPECT_TRUE(contains(r.out, "other = 2")) << r.out;
  EXPECT_FALSE(contains(r.out, "broken =")) << r.out;
}

TEST(cli, a_malformed_parameter_exits_2_naming_it) {
  const auto r = run_cli(demo_pipeline(), {"run", "--param", "n=three", "--param", "name=x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "parameter 'n' (int)")) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(cli, a_malformed_parameter_of_bytes_that_are_not_utf8_is_named_in_utf8) {
  const auto r = run_cli(demo_pipeline(), {"run", "--param",
                                           "n=thr\xff"
                                           "ee",
                                           "--param", "name=x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "parameter 'n' (int): cannot use \"thr\\xffee\"")) << r.err;
  EXPECT_FALSE(contains(r.err, "\xff")) << r.err;
  const auto unknown = run_cli(demo_pipeline(), {"run", "--param", "name=x", "--param", "m\xfe=1"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(contains(unknown.err, "unknown parameter 'm\\xfe'")) << unknown.err;
}

TEST(cli, a_missing_parameter_exits_2_and_says_how_to_pass_it) {
  const auto r = run_cli(demo_pipeline(), {"run"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--param name=VALUE")) << r.err;
}

TEST(cli, an_unknown_parameter_exits_2) {
  const auto r = run_cli(demo_pipeline(), {"run", "--param", "name=x", "--param", "m=1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "unknown parameter 'm'")) << r.err;
}

TEST(cli, a_bad_command_line_exits_2) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                    // no subcommand
      {"frobnicate"},                        // unknown subcommand
      {"run", "--param", "no-equals-sign"},  // not name=value
      {"run", "--threads", "0"},             // out of range
      {"graph", "--format", "svg"},          // unknown format
  };
  for (const auto& args : bad) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    const auto r = run_cli(demo_pipeline(), args);
    EXPECT_EQ(r.code, 2) << "`" << line << "`: " << r.err;
    EXPECT_FALSE(r.err.empty()) << "`" << line << "` printed no error";
  }
}

TEST(cli, a_parameter_given_twice_exits_2_naming_it) {
  for (const std::string command : {"run", "explain"}) {
    const auto r = run_cli(demo_pipeline(), {command, "--param", "n=1", "--param", "name=x", "--param", "n=2"});
    EXPECT_EQ(r.code, 2) << command << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "parameter 'n' is given twice (n=1 and n=2)")) << command << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << command << ": " << r.out;
  }
}

TEST(cli, a_non_finite_value_of_a_floating_point_parameter_exits_2_naming_it) {
  auto rate = ps::param<double>("rate");
  auto out = ps::step<"out">([](double r) { return r * 2; })(rate);
  const auto p = ps::pipeline<"rates">(out);
  for (const std::string value : {"nan", "inf", "-inf", "Infinity"}) {
    const auto r = run_cli(p, {"run", "--quiet", "--no-cache", "--param", "rate=" + value});
    EXPECT_EQ(r.code, 2) << value << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "parameter 'rate' (double)")) << r.err;
    EXPECT_TRUE(contains(r.err, "not a finite number")) << r.err;
    EXPECT_TRUE(contains(r.err, ".allow_non_finite()")) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  const auto finite = run_cli(p, {"run", "--quiet", "--no-cache", "--param", "rate=1.5"});
  EXPECT_EQ(finite.code, 0) << finite.err;
  EXPECT_TRUE(contains(finite.out, "out = 3\n")) << finite.out;
}

TEST(cli, an_unknown_command_is_named_with_the_commands) {
  const auto r = run_cli(demo_pipeline(), {"frobnicate"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "'frobnicate' is not a command")) << r.err;
  EXPECT_TRUE(contains(r.err, "the commands are run, explain, graph, describe, cache")) << r.err;
  EXPECT_FALSE(contains(r.err, "A subcommand is required")) << r.err;
  // With no command at all, CLI11's own message stands.
  EXPECT_TRUE(contains(run_cli(demo_pipeline(), {}).err, "A subcommand is required"));
}

// oneTBB runs no more threads than its max_allowed_parallelism (the cores,
// here); asking for more is clamped, said once by penstock, not by oneTBB.
TEST(cli, threads_above_what_onetbb_allows_are_clamped_and_said_once) {
  const auto r = run_cli(demo_pipeline(), {"run", "--quiet", "--no-cache", "-p", "name=x", "--threads", "4096"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "label = \"x:6\"")) << r.out;
  EXPECT_EQ(count(r.err, "penstock: --threads 4096 is more than the "), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, " threads oneTBB allows here; using ")) << r.err;
  EXPECT_FALSE(contains(r.err, "TBB Warning")) << r.err;
  // Within the limit: nothing said.
  const auto one = run_cli(demo_pipeline(), {"run", "--quiet", "--no-cache", "-p", "name=x", "--threads", "1"});
  EXPECT_EQ(one.code, 0) << one.err;
  EXPECT_TRUE(one.err.empty()) << one.err;
}

TEST(cli, graph_dot_names_every_step_and_parameter) {
  const auto p = demo_pipeline();
  const auto r = run_cli(p, {"graph", "--format", "dot"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(starts_with(r.out, "digraph")) << r.out;
  for (const auto& node : p.description().nodes) EXPECT_TRUE(contains(r.out, std::string(node.name))) << node.name;
  EXPECT_TRUE(contains(r.out, "\"n\\nint\"")) << r.out;
  EXPECT_TRUE(contains(r.out, "map doubled")) << r.out;
  EXPECT_TRUE(contains(r.out, "->")) << r.out;
  EXPECT_EQ(r.out.back(), '\n');
  // dot is the default format
  EXPECT_EQ(run_cli(p, {"graph"}).out, r.out);
}

TEST(cli, graph_mermaid_names_every_step) {
  const auto p = demo_pipeline();
  const auto r = run_cli(p, {"graph", "--format", "mermaid"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(starts_with(r.out, "flowchart")) << r.out;
  for (const auto& node : p.description().nodes) EXPECT_TRUE(contains(r.out, std::string(node.name))) << node.name;
  EXPECT_TRUE(contains(r.out, "-->")) << r.out;
  EXPECT_FALSE(contains(r.out, "<int>")) << "angle brackets must be escaped for Mermaid";
}

TEST(cli, describe_lists_parameters_and_steps_with_types) {
  const auto r = run_cli(demo_pipeline(), {"describe"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "pipeline 'demo': 5 steps, 2 parameters")) << r.out;
  EXPECT_TRUE(contains(r.out, "parameters:")) << r.out;
  EXPECT_TRUE(contains(r.out, "default 3")) << r.out;
  EXPECT_TRUE(contains(r.out, "required")) << r.out;
  EXPECT_TRUE(contains(r.out, "std::string")) << r.out;
  EXPECT_TRUE(contains(r.out, "numbers(int from param n) -> std::vector<int>")) << r.out;
  EXPECT_TRUE(contains(r.out, "total(std::vector<int> from numbers) -> int")) << r.out;
  EXPECT_TRUE(contains(r.out, "map doubled(std::vector<int> from numbers) -> std::vector<int> retries=2")) << r.out;
  EXPECT_TRUE(contains(r.out, "label(std::string from param name, int from total) -> std::string")) << r.out;
  EXPECT_TRUE(contains(r.out, "not cacheable")) << "box returns a type that cannot be serialized\n" << r.out;
}

TEST(cli, version_prints_the_penstock_version) {
  const auto r = run_cli(demo_pipeline(), {"--version"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, std::string("penstock ") + PENSTOCK_VERSION_STRING)) << r.out;
}

TEST(cli, help_lists_the_subcommands) {
  const auto r = run_cli(demo_pipeline(), {"--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "run")) << r.out;
  EXPECT_TRUE(contains(r.out, "graph")) << r.out;
  EXPECT_TRUE(contains(r.out, "describe")) << r.out;
  EXPECT_TRUE(contains(r.out, "demo")) << r.out;
}
