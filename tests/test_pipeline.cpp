// ps::pipeline: the compile-time structure of a pipeline (node count, step
// order, edges), how repeated applications of a step become one node or an
// error, the values of a run's outputs, and parameters declared twice.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <string_view>

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
using diamond_t = decltype(diamond_with_tail());

template <class P>
constexpr bool edges_are_topological() {
  for (const auto& e : P::edges)
    if (e.from >= e.to || e.to >= P::node_count) return false;
  return true;
}

template <class P>
constexpr bool has_edge(std::string_view from, std::string_view to) {
  for (const auto& e : P::edges)
    if (P::step_names[e.from] == from && P::step_names[e.to] == to) return true;
  return false;
}

}  // namespace

TEST(pipeline, structure_is_known_at_compile_time) {
  static_assert(diamond_t::node_count == 5);
  static_assert(diamond_t::name.view() == "diamond");
  // Inputs are merged left to right, then the step itself: a topological order.
  static_assert(diamond_t::step_names[0] == "a");
  static_assert(diamond_t::step_names[1] == "b");
  static_assert(diamond_t::step_names[2] == "c");
  static_assert(diamond_t::step_names[3] == "d");
  static_assert(diamond_t::step_names[4] == "e");
  static_assert(diamond_t::edge_count == 5);
  static_assert(edges_are_topological<diamond_t>());
  static_assert(has_edge<diamond_t>("a", "b"));
  static_assert(has_edge<diamond_t>("a", "c"));
  static_assert(has_edge<diamond_t>("b", "d"));
  static_assert(has_edge<diamond_t>("c", "d"));
  static_assert(has_edge<diamond_t>("b", "e"));
  static_assert(!has_edge<diamond_t>("a", "d"));
  SUCCEED();
}

TEST(pipeline, description_matches_the_compile_time_structure) {
  const auto p = diamond_with_tail();
  const auto& g = p.description();
  EXPECT_EQ(g.name, "diamond");
  ASSERT_EQ(g.nodes.size(), diamond_t::node_count);
  std::size_t edges = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_EQ(g.nodes[i].name, diamond_t::step_names[i]);
    for (const auto& in : g.nodes[i].inputs) {
      ASSERT_EQ(in.kind, ps::input_kind::node);
      EXPECT_LT(in.index, i) << "producers come before their consumers";
      ++edges;
    }
  }
  EXPECT_EQ(edges, diamond_t::edge_count);
  ASSERT_EQ(g.outputs.size(), 2u);
  EXPECT_EQ(g.nodes[g.outputs[0]].name, "d");
  EXPECT_EQ(g.nodes[g.outputs[1]].name, "e");
}

TEST(pipeline, a_chain_is_ordered_from_source_to_sink) {
  auto s0 = ps::step<"s0">(one)();
  auto s1 = ps::step<"s1">(inc)(s0);
  auto s2 = ps::step<"s2">(inc)(s1);
  auto s3 = ps::step<"s3">(inc)(s2);
  using chain_t = decltype(ps::pipeline<"chain">(s3));
  static_assert(chain_t::node_count == 4);
  static_assert(chain_t::step_names[0] == "s0" && chain_t::step_names[3] == "s3");
  static_assert(chain_t::edge_count == 3);
  static_assert(chain_t::edges[0].from == 0 && chain_t::edges[0].to == 1);
  static_assert(chain_t::edges[2].from == 2 && chain_t::edges[2].to == 3);
  const auto result = ps::pipeline<"chain">(s3).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(s3), 4);
}

TEST(pipeline, the_same_step_on_the_same_inputs_twice_is_one_node) {
  auto a = ps::step<"a">(one)();
  const auto bump = ps::step<"bump">(counted_inc);
  auto first = bump(a);
  auto second = bump(a);  // another handle to the same application
  auto sum = ps::step<"sum">(add)(first, second);
  const auto p = ps::pipeline<"p">(sum);
  static_assert(decltype(p)::node_count == 3);
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
