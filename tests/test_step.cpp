// ps::step: what a step can be (free function, lambda, function object,
// generic lambda), how its arguments reach it (nodes, constants, a leading
// ps::context&, projections of a struct or tuple), its options, and when a
// value is moved into a step rather than copied.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace ps = penstock;

namespace {

int seven() { return 7; }
int add(int x, int y) { return x + y; }
double scale(double x, double factor) { return x * factor; }

struct tripler {
  int operator()(int x) const { return 3 * x; }
};

template <class P>
const ps::node_description& node_named(const P& pipeline, std::string_view name) {
  for (const auto& n : pipeline.description().nodes)
    if (n.name == name) return n;
  throw std::out_of_range("no step named " + std::string(name));
}

// Counts its copies and moves, so a test can tell which one a step received.
struct counted {
  inline static std::atomic<int> copies{0};
  inline static std::atomic<int> moves{0};
  static void reset() {
    copies = 0;
    moves = 0;
  }

  std::vector<int> payload;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(payload);
  }

  counted() = default;
  explicit counted(std::vector<int> p) : payload(std::move(p)) {}
  counted(const counted& other) : payload(other.payload) { ++copies; }
  counted(counted&& other) noexcept : payload(std::move(other.payload)) { ++moves; }
  counted& operator=(const counted& other) {
    payload = other.payload;
    ++copies;
    return *this;
  }
  counted& operator=(counted&& other) noexcept {
    payload = std::move(other.payload);
    ++moves;
    return *this;
  }
  ~counted() = default;
};

counted make_counted() { return counted({1, 2, 3, 4}); }
int sum_by_value(counted c) { return std::accumulate(c.payload.begin(), c.payload.end(), 0); }
int sum_by_reference(const counted& c) { return std::accumulate(c.payload.begin(), c.payload.end(), 0); }

struct stats {
  int count = 0;
  double mean = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(count, mean);
  }
};
stats summarize(const std::vector<int>& v) {
  const double total = std::accumulate(v.begin(), v.end(), 0.0);
  return {static_cast<int>(v.size()), total / static_cast<double>(v.size())};
}

}  // namespace

TEST(step, free_function) {
  auto a = ps::step<"a">(seven)();
  auto b = ps::step<"b">(add)(a, a);
  const auto result = ps::pipeline<"p">(b).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 14);
}

TEST(step, lambda) {
  auto a = ps::step<"a">([] { return 5; })();
  auto b = ps::step<"b">([](int x) { return x * x; })(a);
  const auto result = ps::pipeline<"p">(b).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 25);
}

TEST(step, lambda_with_captures_uses_its_state) {
  const int offset = 100;
  auto a = ps::step<"a">(seven)();
  auto b = ps::step<"b">([offset](int x) { return x + offset; })(a);
  const auto result = ps::pipeline<"p">(b).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 107);
}

TEST(step, function_object) {
  auto a = ps::step<"a">(seven)();
  auto b = ps::step<"b">(tripler{})(a);
  const auto result = ps::pipeline<"p">(b).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 21);
}

TEST(step, generic_lambda_takes_its_argument_types_from_the_nodes) {
  auto i = ps::step<"i">(seven)();
  auto s = ps::step<"s">([] { return std::string("ab"); })();
  auto twice = [](const auto& x) { return x + x; };
  auto i2 = ps::step<"i2">(twice)(i);
  auto s2 = ps::step<"s2">(twice)(s);
  const auto p = ps::pipeline<"p">(i2, s2);
  EXPECT_EQ(node_named(p, "i2").output_type, "int");
  EXPECT_EQ(node_named(p, "s2").output_type, "std::string");
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(i2), 14);
  EXPECT_EQ(result.value(s2), "abab");
}

TEST(step, constants_are_converted_to_the_parameter_type) {
  auto a = ps::step<"a">([] { return 7.0; })();
  auto b = ps::step<"b">(scale)(a, 2);  // the int constant becomes a double
  auto label = ps::step<"label">([](const std::string& prefix, double x) { return prefix + std::to_string(x); })(
      "x=", b);  // a string literal becomes std::string
  const auto p = ps::pipeline<"p">(label, b);

  const auto& scaled = node_named(p, "b");
  ASSERT_EQ(scaled.inputs.size(), 2u);
  EXPECT_EQ(scaled.inputs[1].kind, ps::input_kind::constant);
  EXPECT_EQ(scaled.inputs[1].type, "double");
  const auto& labelled = node_named(p, "label");
  ASSERT_EQ(labelled.inputs.size(), 2u);
  EXPECT_EQ(labelled.inputs[0].kind, ps::input_kind::constant);
  EXPECT_EQ(labelled.inputs[0].type, "std::string");
  EXPECT_TRUE(labelled.cacheable);

  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(b), 14.0);
  EXPECT_EQ(result.value(label), "x=" + std::to_string(14.0));
}

TEST(step, a_constant_is_hashed_after_conversion) {
  auto a = ps::step<"a">([] { return 7.0; })();
  const auto identity = [&](auto factor) {
    return node_named(ps::pipeline<"p">(ps::step<"b">(scale)(a, factor)), "b").identity;
  };
  // 2 and 2.0 reach the step as the same double, so they are the same node.
  EXPECT_EQ(identity(2), identity(2.0));
  EXPECT_NE(identity(2.0), identity(2.5));
}

TEST(step, a_constant_is_reused_by_every_run) {
  auto b = ps::step<"b">([](std::string s) { return s + "!"; })(std::string("hi"));
  const auto p = ps::pipeline<"p">(b);
  for (int run = 0; run < 3; ++run) {
    const auto result = p.run();
    ASSERT_TRUE(result.ok()) << result.report().summary();
    EXPECT_EQ(result.value(b), "hi!") << "run " << run;
  }
}

TEST(step, context_as_first_parameter_names_the_step) {
  auto who = ps::step<"who">([](ps::context& ctx) { return std::string(ctx.step_name()); })();
  auto which = ps::step<"which">([](ps::context& ctx, const std::string& before) {
    return before + "," + std::string(ctx.step_name()) + (ctx.element() == ps::context::npos ? "" : "?");
  })(who);
  auto generic = ps::step<"generic">(
      [](ps::context& ctx, const auto& before) { return before + "," + std::string(ctx.step_name()); })(which);
  const auto p = ps::pipeline<"p">(generic);
  // The context is not an input of the node.
  EXPECT_TRUE(node_named(p, "who").inputs.empty());
  EXPECT_EQ(node_named(p, "which").inputs.size(), 1u);
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(generic), "who,which,generic");
}

TEST(step, options_reach_the_description) {
  const auto plain = ps::step<"plain">(add);
  const auto tuned = plain.version(3).retries(2).timeout(std::chrono::milliseconds(250));
  // Each setter returns a copy: the definition it was called on is unchanged.
  EXPECT_EQ(plain.options().version, 0u);
  EXPECT_EQ(plain.options().retries, 0u);
  EXPECT_EQ(plain.options().timeout.count(), 0);

  auto a = ps::step<"a">(seven)();
  auto x = plain(a, 1);
  auto y = ps::step<"tuned">(add).version(3).retries(2).timeout(std::chrono::milliseconds(250))(x, 2);
  const auto p = ps::pipeline<"p">(y);

  const auto& px = node_named(p, "plain");
  EXPECT_EQ(px.options.version, 0u);
  EXPECT_EQ(px.options.retries, 0u);
  EXPECT_EQ(px.options.timeout.count(), 0);
  const auto& py = node_named(p, "tuned");
  EXPECT_EQ(py.options.version, 3u);
  EXPECT_EQ(py.options.retries, 2u);
  EXPECT_EQ(py.options.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(tuned.options().timeout, std::chrono::milliseconds(250));

  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(y), 10);
}

TEST(step, struct_members_split_into_nodes) {
  auto data = ps::step<"data">([] { return std::vector<int>{2, 4, 6, 8}; })();
  auto s = ps::step<"summarize">(summarize)(data);
  auto count = ps::get<&stats::count>(s);
  auto mean = ps::get<&stats::mean>(s);
  auto total = ps::step<"total">([](int n, double m) { return n * m; })(count, mean);
  const auto p = ps::pipeline<"p">(total, mean);

  static_assert(std::is_same_v<decltype(count)::value_type, int>);
  static_assert(std::is_same_v<decltype(mean)::value_type, double>);
  EXPECT_EQ(p.description().nodes.size(), 3u);  // a projection is not a node
  const auto& t = node_named(p, "total");
  ASSERT_EQ(t.inputs.size(), 2u);
  EXPECT_EQ(t.inputs[0].projection, "count");
  EXPECT_EQ(t.inputs[1].projection, "mean");
  EXPECT_EQ(t.inputs[0].index, t.inputs[1].index);
  EXPECT_EQ(p.description().nodes[t.inputs[0].index].name, "summarize");

  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(total), 20.0);
  EXPECT_EQ(result.value(mean), 5.0);
  EXPECT_EQ(result.value(s).count, 4);
}

TEST(step, tuple_elements_split_into_nodes) {
  auto t = ps::step<"t">([] { return std::tuple<int, std::string, double>{3, "ab", 0.5}; })();
  auto repeated = ps::step<"repeat">([](int n, const std::string& s) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  })(ps::get<0>(t), ps::get<1>(t));
  auto half = ps::get<2>(t);
  const auto p = ps::pipeline<"p">(repeated, half);

  const auto& r = node_named(p, "repeat");
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[0].projection, "get<0>");
  EXPECT_EQ(r.inputs[1].projection, "get<1>");
  EXPECT_EQ(r.inputs[1].type, "std::string");

  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(repeated), "ababab");
  EXPECT_EQ(result.value(half), 0.5);
}

TEST(step, projections_compose) {
  struct holder {
    std::pair<int, int> range;
  };
  auto h = ps::step<"h">([] { return holder{{3, 9}}; }).cache(ps::never)();
  auto upper = ps::get<1>(ps::get<&holder::range>(h));
  auto width = ps::step<"width">([](int hi, int lo) { return hi - lo; })(upper, ps::get<0>(ps::get<&holder::range>(h)));
  const auto result = ps::pipeline<"p">(width).run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(width), 6);
}

TEST(step, a_value_is_moved_into_its_last_consumer) {
  auto made = ps::step<"make">(make_counted)();
  auto sum = ps::step<"sum">(sum_by_value)(made);
  const auto p = ps::pipeline<"p">(sum);
  counted::reset();
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(sum), 10);
  EXPECT_EQ(counted::copies.load(), 0);
  EXPECT_GE(counted::moves.load(), 1);
}

TEST(step, a_value_with_two_consumers_is_not_moved_away_from_either) {
  for (std::size_t threads : {1u, 2u, 4u}) {
    auto made = ps::step<"make">(make_counted)();
    auto first = ps::step<"first">(sum_by_value)(made);
    auto second = ps::step<"second">(sum_by_value)(made);
    const auto p = ps::pipeline<"p">(first, second);
    counted::reset();
    const auto result = p.run({.threads = threads});
    ASSERT_TRUE(result.ok()) << result.report().summary();
    EXPECT_EQ(result.value(first), 10) << threads << " threads";
    EXPECT_EQ(result.value(second), 10) << threads << " threads";
    // Whichever starts first must copy; the other may take the value.
    EXPECT_GE(counted::copies.load(), 1) << threads << " threads";
    EXPECT_LE(counted::copies.load(), 2) << threads << " threads";
  }
}

TEST(step, const_reference_consumers_never_copy) {
  auto made = ps::step<"make">(make_counted)();
  auto first = ps::step<"first">(sum_by_reference)(made);
  auto second = ps::step<"second">(sum_by_reference)(made);
  const auto p = ps::pipeline<"p">(first, second);
  counted::reset();
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(first), 10);
  EXPECT_EQ(result.value(second), 10);
  EXPECT_EQ(counted::copies.load(), 0);
}

TEST(step, an_output_is_copied_into_a_consumer_not_moved) {
  auto made = ps::step<"make">(make_counted)();
  auto sum = ps::step<"sum">(sum_by_value)(made);
  const auto p = ps::pipeline<"p">(sum, made);
  counted::reset();
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(sum), 10);
  EXPECT_EQ(result.value(made).payload, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(counted::copies.load(), 1);
}

// A step that takes a non-const reference may change its argument; another
// consumer of the same value never sees that change.
TEST(step, a_mutating_consumer_gets_its_own_copy_unless_it_is_the_last) {
  for (std::size_t threads : {1u, 2u, 4u}) {
    auto made = ps::step<"make">(make_counted)();
    auto mutate = ps::step<"mutate">([](counted& c) {
      c.payload.push_back(100);
      return sum_by_reference(c);
    })(made);
    auto read = ps::step<"read">(sum_by_reference)(made);
    const auto p = ps::pipeline<"p">(mutate, read);
    const auto result = p.run({.threads = threads});
    ASSERT_TRUE(result.ok()) << result.report().summary();
    EXPECT_EQ(result.value(mutate), 110) << threads << " threads";
    EXPECT_EQ(result.value(read), 10) << threads << " threads";
  }
}
