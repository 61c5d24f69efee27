// ps::pipeline: the structure it collects (step order, edges), how repeated
// applications of a step become one node or an error naming both
// definitions, the values of a run's outputs, and parameters declared twice.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ps = penstock;

namespace {

int one() { return 1; }
int inc(int x) { return x + 1; }
int dbl(int x) { return 2 * x; }
int add(int x, int y) { return x + y; }
double scale(int x, double factor) { return x * factor; }

std::atomic<int> inc_calls{0};
int counted_inc(int x) {
  ++inc_calls;
  return x + 1;
}

// a → {b, c} → d, plus e hanging off b.
auto diamond_with_tail() {
  auto a = ps::step<"a">(one)();
  auto b = ps::step<"b">(inc)(a);
  auto c = ps::step<"c">(dbl)(a);
  auto d = ps::step<"d">(add)(b, c);
  auto e = ps::step<"e">(inc)(b);
  return ps::pipeline<"diamond">(d, e);
}

struct edge {
  std::string_view from, to;
  bool operator==(const edge&) const = default;
};

std::vector<edge> edges_of(const ps::graph_description& g) {
  std::vector<edge> out;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs)
      if (in.kind == ps::input_kind::node) out.push_back({g.nodes[in.index].name, n.name});
  return out;
}

std::vector<std::string_view> names_of(const ps::graph_description& g) {
  std::vector<std::string_view> out;
  for (const auto& n : g.nodes) out.push_back(n.name);
  return out;
}

// What ps::pipeline throws for `build`, or "" if it does not.
template <class F>
std::string error_of(F build) {
  try {
    build();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string at_line(int line) { return std::string(__FILE__) + ":" + std::to_string(line); }

}  // namespace

TEST(pipeline, steps_are_collected_once_each_in_topological_order) {
  const auto p = diamond_with_tail();
  const auto& g = p.description();
  EXPECT_EQ(g.name, "diamond");
  EXPECT_EQ(decltype(p)::name.view(), "diamond");
  // Depth first from the outputs in order, each step after its inputs in argument order.
  EXPECT_EQ(names_of(g), (std::vector<std::string_view>{"a", "b", "c", "d", "e"}));
  for (std::size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs) {
      ASSERT_EQ(in.kind, ps::input_kind::node);
      EXPECT_LT(in.index, i) << "producers come before their consumers";
    }
  EXPECT_EQ(edges_of(g), (std::vector<edge>{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}, {"b", "e"}}));
  ASSERT_EQ(g.outputs.size(), 2u);
  EXPECT_EQ(g.nodes[g.outputs[0]].name, "d");
  EXPECT_EQ(g.nodes[g.outputs[1]].name, "e");
}

TEST(pipeline, a_chain_is_ordered_from_source_to_sink) {
  auto s0 = ps::step<"s0">(one)();
  auto s1 = ps::step<"s1">(inc)(s0);
  auto s2 = ps::step<"s2">(inc)(s1);
  auto s3 = ps::step<"s3">(inc)(s2);
  const auto p = ps::pipeline<"chain">(s3);
  EXPECT_EQ(names_of(p.description()), (std::vector<std::string_view>{"s0", "s1", "s2", "s3"}));
  EXPECT_EQ(edges_of(p.description()), (std::vector<edge>{{"s0", "s1"}, {"s1", "s2"}, {"s2", "s3"}}));
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(s3), 4);
}

// A node's type names its producer, not its upstream graph: the same size
// at the end of a long chain as at its start.
TEST(pipeline, a_node_type_does_not_grow_with_the_graph_upstream) {
  auto s0 = ps::step<"s">(one)();
  auto s1 = ps::step<"s1">(inc)(s0);
  auto s2 = ps::step<"s2">(inc)(s1);
  static_assert(std::is_same_v<decltype(s2), ps::node<int, ps::detail::produced_by<"s2", int>>>);
  static_assert(sizeof(s2) == sizeof(s0));
  SUCCEED();
}

// Two different steps with one name: found when the pipeline is built,
// before anything runs, naming both definitions (the compile-time check it
// replaces cost time quadratic in the steps).
TEST(pipeline, two_steps_with_one_name_merged_by_a_step_throw_naming_both_definitions) {
  auto rows = ps::param<int>("rows", 10);
  const int fresh_line = __LINE__ + 1;
  auto fresh = ps::step<"load">(inc)(rows);
  const int cached_line = __LINE__ + 1;
  auto cached = ps::step<"load">([](int n) { return n; })(rows);
  auto joined = ps::step<"join">(add)(fresh, cached);
  const std::string what = error_of([&] { (void)ps::pipeline<"merged_by_a_step">(joined); });
  EXPECT_NE(what.find("pipeline 'merged_by_a_step': two different steps are named 'load'"), std::string::npos) << what;
  EXPECT_NE(what.find(at_line(fresh_line)), std::string::npos) << what;
  EXPECT_NE(what.find(at_line(cached_line)), std::string::npos) << what;
}

TEST(pipeline, two_steps_with_one_name_merged_by_the_pipeline_throw_naming_both_definitions) {
  auto rows = ps::param<int>("rows", 10);
  const int fresh_line = __LINE__ + 1;
  auto fresh = ps::step<"load">(inc)(rows);
  const int cached_line = __LINE__ + 1;
  auto cached = ps::step<"load">(dbl)(rows);
  const std::string what = error_of([&] { (void)ps::pipeline<"merged_by_the_pipeline">(fresh, cached); });
  EXPECT_NE(what.find("two different steps are named 'load'"), std::string::npos) << what;
  EXPECT_NE(what.find(at_line(fresh_line)), std::string::npos) << what;
  EXPECT_NE(what.find(at_line(cached_line)), std::string::npos) << what;
}

TEST(pipeline, a_step_named_like_an_ancestor_throws_naming_both_definitions) {
  auto rows = ps::param<int>("rows", 10);
  const int data_line = __LINE__ + 1;
  auto data = ps::step<"load">(inc)(rows);
  auto middle = ps::step<"middle">(dbl)(data);
  const int counted_line = __LINE__ + 1;
  auto counted = ps::step<"load">(inc)(middle);
  const std::string what = error_of([&] { (void)ps::pipeline<"named_like_an_ancestor">(counted); });
  EXPECT_NE(what.find("step 'load' (defined at " + at_line(counted_line) +
                      ") is named like one of its own inputs' ancestors (defined at " + at_line(data_line) + ")"),
            std::string::npos)
      << what;
}

TEST(pipeline, the_same_step_on_the_same_inputs_twice_is_one_node) {
  auto a = ps::step<"a">(one)();
  const auto bump = ps::step<"bump">(counted_inc);
  auto first = bump(a);
  auto second = bump(a);  // another handle to the same application
  auto sum = ps::step<"sum">(add)(first, second);
  const auto p = ps::pipeline<"p">(sum);
  EXPECT_EQ(p.description().nodes.size(), 3u);

  inc_calls = 0;
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(sum), 4);
  EXPECT_EQ(inc_calls.load(), 1) << "the shared node ran once";
}

TEST(pipeline, the_same_stateless_lambda_step_twice_is_one_node) {
  auto a = ps::step<"a">(one)();
  const auto bump = ps::step<"bump">([](int x) { return x + 10; });
  auto sum = ps::step<"sum">(add)(bump(a), bump(a));
  const auto p = ps::pipeline<"p">(sum);
  EXPECT_EQ(p.description().nodes.size(), 3u);
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(sum), 22);
}

TEST(pipeline, one_name_with_different_constants_throws_naming_the_step) {
  auto a = ps::step<"a">(one)();
  const auto scaled = ps::step<"scaled">(scale);
  auto sum = ps::step<"sum">([](double x, double y) { return x + y; })(scaled(a, 2.0), scaled(a, 3.0));
  try {
    (void)ps::pipeline<"clash">(sum);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'scaled'"), std::string::npos) << what;
    EXPECT_NE(what.find("'clash'"), std::string::npos) << what;
  }
}

TEST(pipeline, one_name_with_different_function_pointers_throws_naming_the_step) {
  auto a = ps::step<"a">(one)();
  auto x = ps::step<"f">(inc)(a);
  auto y = ps::step<"f">(dbl)(a);  // same type int(*)(int), different function
  auto sum = ps::step<"sum">(add)(x, y);
  try {
    (void)ps::pipeline<"clash">(sum);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'f'"), std::string::npos) << e.what();
  }
}

TEST(pipeline, run_result_holds_every_output) {
  auto a = ps::step<"a">(one)();
  auto b = ps::step<"b">(inc)(a);
  auto c = ps::step<"c">([](int x) { return std::string(static_cast<std::size_t>(x), 'z'); })(b);
  const auto p = ps::pipeline<"p">(b, c);
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 2);
  EXPECT_EQ(result.value(c), "zz");
  EXPECT_EQ(result.report().pipeline, "p");
  ASSERT_EQ(result.report().steps.size(), 3u);
  for (const auto& s : result.report().steps) {
    EXPECT_EQ(s.status, ps::step_status::succeeded) << s.name;
    EXPECT_EQ(s.attempts, 1u) << s.name;
  }
  EXPECT_EQ(result.report().count(ps::step_status::succeeded), 3u);
  ASSERT_NE(result.report().find("c"), nullptr);
  EXPECT_EQ(result.report().find("nope"), nullptr);
}

TEST(pipeline, run_result_outlives_the_pipeline_object) {
  auto a = ps::step<"a">(one)();
  auto b = ps::step<"b">(inc)(a);
  const auto result = ps::pipeline<"p">(b).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 2);
}

TEST(pipeline, a_pipeline_runs_again_with_fresh_values) {
  auto a = ps::step<"a">(one)();
  auto b = ps::step<"b">(inc)(a);
  const auto p = ps::pipeline<"p">(b);
  const auto first = p.run();
  const auto second = p.run();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first.value(b), 2);
  EXPECT_EQ(second.value(b), 2);
  EXPECT_NE(&first.value(b), &second.value(b)) << "each run has its own slots";
}

TEST(pipeline, value_of_a_node_that_is_not_an_output_throws) {
  auto a = ps::step<"a">(one)();
  auto b = ps::step<"b">(inc)(a);
  auto c = ps::step<"c">(inc)(b);
  const auto result = ps::pipeline<"p">(c).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(c), 3);
  // b ran, but its value was released once c had it.
  EXPECT_THROW((void)result.value(b), std::logic_error);
  // not in this pipeline at all
  auto other = ps::step<"other">(one)();
  EXPECT_THROW((void)result.value(other), std::logic_error);
}

TEST(pipeline, a_parameter_declared_with_two_types_throws) {
  auto as_int = ps::param<int>("n", 1);
  auto as_double = ps::param<double>("n", 1.0);
  auto x = ps::step<"x">([](int v) { return v; })(as_int);
  auto y = ps::step<"y">([](double v) { return v; })(as_double);
  auto z = ps::step<"z">([](int v, double w) { return v + w; })(x, y);
  try {
    (void)ps::pipeline<"p">(z);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'n'"), std::string::npos) << what;
    EXPECT_NE(what.find("int"), std::string::npos) << what;
    EXPECT_NE(what.find("double"), std::string::npos) << what;
  }
}

TEST(pipeline, a_parameter_used_by_two_steps_is_one_parameter) {
  auto n = ps::param<int>("n", 4);
  auto x = ps::step<"x">(inc)(n);
  auto y = ps::step<"y">(dbl)(n);
  auto z = ps::step<"z">(add)(x, y);
  const auto p = ps::pipeline<"p">(z);
  ASSERT_EQ(p.description().params.size(), 1u);
  EXPECT_EQ(p.description().params[0].name, "n");
  EXPECT_EQ(p.description().params[0].type, "int");
  const auto result = p.run({.params = {{"n", "10"}}});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(z), 31);
}
