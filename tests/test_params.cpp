// ps::param: values from run_options::params parsed by the parameter's type,
// defaults, and the param_error a malformed, missing or unknown parameter
// raises before any step runs, naming the parameter and what to do.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <atomic>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace ps = penstock;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using param_list = std::vector<std::pair<std::string, std::string>>;

// Runs a pipeline that passes one parameter of type T straight through.
template <class T>
T parsed(const std::string& text, bool allow_non_finite = false) {
  auto p = ps::param<T>("value");
  if constexpr (std::is_floating_point_v<T>)
    if (allow_non_finite) p.allow_non_finite();
  auto out = ps::step<"out">([](const T& v) { return v; })(p);
  const auto result = ps::pipeline<"parse">(out).run({.params = {{"value", text}}});
  if (!result.ok()) throw std::runtime_error(result.report().summary());
  return result.value(out);
}

// The param_error message for one malformed value, or "" if none was thrown.
template <class T>
std::string parse_error(const std::string& text, bool allow_non_finite = false) {
  try {
    (void)parsed<T>(text, allow_non_finite);
  } catch (const ps::param_error& e) {
    return e.what();
  }
  return "";
}

template <class P>
concept can_allow_non_finite = requires(P p) {
  p.allow_non_finite();
};

const char* const non_finite_spellings[] = {"nan",  "NaN", "-nan",     "nan(1)",   "inf",
                                            "-inf", "INF", "infinity", "-Infinity"};

}  // namespace

TEST(params, every_supported_type_is_parsed) {
  EXPECT_EQ(parsed<int>("42"), 42);
  EXPECT_EQ(parsed<int>("-7"), -7);
  EXPECT_FLOAT_EQ(parsed<float>("0.25"), 0.25f);
  EXPECT_DOUBLE_EQ(parsed<double>("-1.5e3"), -1500.0);
  EXPECT_EQ(parsed<std::string>("hello world"), "hello world");
  EXPECT_EQ(parsed<std::string>(""), "");
  EXPECT_EQ(parsed<std::string>("a=b"), "a=b");
  EXPECT_EQ(parsed<std::uint64_t>("18446744073709551615"), 18446744073709551615ULL);
  EXPECT_EQ(parsed<std::int64_t>("-9000000000"), -9000000000LL);
}

TEST(params, bool_accepts_the_usual_spellings) {
  for (const char* yes : {"true", "1", "yes", "on"}) EXPECT_TRUE(parsed<bool>(yes)) << yes;
  for (const char* no : {"false", "0", "no", "off"}) EXPECT_FALSE(parsed<bool>(no)) << no;
}

TEST(params, a_malformed_value_names_the_parameter_and_its_type) {
  struct bad_case {
    std::string message;
    std::string type;
  };
  const std::vector<bad_case> cases = {
      {parse_error<int>("abc"), "int"},
      {parse_error<int>("12x"), "int"},
      {parse_error<int>(""), "int"},
      {parse_error<int>("99999999999"), "int"},
      {parse_error<float>("1.5.2"), "float"},
      {parse_error<double>("one"), "double"},
      {parse_error<bool>("maybe"), "bool"},
      {parse_error<std::uint64_t>("-1"), "long unsigned int"},
      {parse_error<std::uint64_t>("18446744073709551616"), "long unsigned int"},
  };
  for (const auto& c : cases) {
    ASSERT_FALSE(c.message.empty()) << "no param_error for a " << c.type;
    EXPECT_TRUE(contains(c.message, "parameter 'value'")) << c.message;
    EXPECT_TRUE(contains(c.message, "(" + c.type + ")")) << c.message;
  }
  EXPECT_TRUE(contains(parse_error<int>("abc"), "\"abc\"")) << parse_error<int>("abc");
  EXPECT_TRUE(contains(parse_error<int>("99999999999"), "out of range")) << parse_error<int>("99999999999");
}

// std::from_chars reads these as NaN or infinity; a parameter takes them only
// when declared .allow_non_finite().
TEST(params, a_non_finite_value_names_the_parameter_its_type_and_the_opt_in) {
  for (const char* text : non_finite_spellings) {
    for (const auto& [message, type] :
         {std::pair{parse_error<float>(text), "float"}, std::pair{parse_error<double>(text), "double"},
          std::pair{parse_error<long double>(text), "long double"}}) {
      ASSERT_FALSE(message.empty()) << text << " was accepted by a " << type;
      EXPECT_TRUE(contains(message, "parameter 'value' (" + std::string(type) + ")")) << message;
      EXPECT_TRUE(contains(message, "\"" + std::string(text) + "\"")) << message;
      EXPECT_TRUE(contains(message, "not a finite number")) << message;
      EXPECT_TRUE(contains(message, "declare the parameter .allow_non_finite() to accept it")) << message;
    }
  }
  EXPECT_TRUE(contains(parse_error<double>("NaN"), "not a finite number (nan)")) << parse_error<double>("NaN");
  EXPECT_TRUE(contains(parse_error<double>("Infinity"), "(inf)")) << parse_error<double>("Infinity");
  EXPECT_TRUE(contains(parse_error<double>("-inf"), "(-inf)")) << parse_error<double>("-inf");
}

TEST(params, allow_non_finite_accepts_nan_and_infinity) {
  EXPECT_TRUE(std::isnan(parsed<double>("nan", true)));
  EXPECT_TRUE(std::isnan(parsed<float>("NaN", true)));
  EXPECT_TRUE(std::isnan(parsed<long double>("-nan", true)));
  EXPECT_EQ(parsed<double>("inf", true), std::numeric_limits<double>::infinity());
  EXPECT_EQ(parsed<float>("-Infinity", true), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(parsed<long double>("INF", true), std::numeric_limits<long double>::infinity());
  // Finite values as before; what is not a number at all is still refused.
  EXPECT_DOUBLE_EQ(parsed<double>("2.5", true), 2.5);
  EXPECT_TRUE(contains(parse_error<double>("infin", true), "not a number")) << parse_error<double>("infin", true);
  EXPECT_TRUE(contains(parse_error<double>("1e999", true), "out of range")) << parse_error<double>("1e999", true);
}

TEST(params, allow_non_finite_returns_the_parameter_and_marks_every_handle) {
  auto tolerance = ps::param<double>("tolerance", 1.0).allow_non_finite();
  static_assert(std::same_as<decltype(tolerance), ps::param_node<double>>);
  EXPECT_EQ(tolerance.name(), "tolerance");
  EXPECT_EQ(tolerance.default_value(), 1.0);
  EXPECT_TRUE(tolerance.allows_non_finite());

  auto rate = ps::param<float>("rate");
  const auto handle = rate;
  EXPECT_FALSE(handle.allows_non_finite());
  static_assert(std::same_as<decltype(rate.allow_non_finite()), ps::param_node<float>&>);
  EXPECT_EQ(&rate.allow_non_finite(), &rate);
  EXPECT_TRUE(handle.allows_non_finite()) << "a copy is a handle to the same parameter";

  // Only a floating-point parameter has non-finite values to allow.
  static_assert(can_allow_non_finite<ps::param_node<double>>);
  static_assert(can_allow_non_finite<ps::param_node<long double>>);
  static_assert(!can_allow_non_finite<ps::param_node<int>>);
  static_assert(!can_allow_non_finite<ps::param_node<std::string>>);
}

TEST(params, a_non_finite_default_written_in_code_is_kept) {
  auto limit = ps::param<double>("limit", std::numeric_limits<double>::infinity());
  auto missing = ps::param<double>("missing", std::numeric_limits<double>::quiet_NaN());
  auto out = ps::step<"out">([](double l, double m) { return std::isinf(l) && std::isnan(m); })(limit, missing);
  const auto p = ps::pipeline<"defaults">(out);
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_TRUE(result.value(out));
  // Given on the command line, the same value is refused.
  EXPECT_THROW((void)p.run({.params = {{"limit", "inf"}}}), ps::param_error);
}

TEST(params, param_error_is_an_invalid_argument_thrown_before_any_step_runs) {
  std::atomic<int> ran{0};
  auto n = ps::param<int>("n");
  auto first = ps::step<"first">([&ran] { return ++ran; })();
  auto use = ps::step<"use">([&ran](int a, int b) { return a + b + ++ran; })(first, n);
  const auto p = ps::pipeline<"p">(use);
  EXPECT_THROW((void)p.run({.params = {{"n", "NaN?"}}}), std::invalid_argument);
  EXPECT_THROW((void)p.run({.params = {{"n", "NaN?"}}}), ps::param_error);
  EXPECT_EQ(ran.load(), 0);
}

TEST(params, a_missing_required_parameter_says_how_to_pass_it) {
  auto rate = ps::param<double>("rate");
  auto out = ps::step<"out">([](double r) { return r * 2; })(rate);
  const auto p = ps::pipeline<"p">(out);
  try {
    (void)p.run();
    FAIL() << "expected param_error";
  } catch (const ps::param_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "'rate'")) << what;
    EXPECT_TRUE(contains(what, "double")) << what;
    EXPECT_TRUE(contains(what, "--param rate=VALUE")) << what;
  }
  const auto result = p.run({.params = {{"rate", "0.5"}}});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(out), 1.0);
}

TEST(params, an_unknown_parameter_lists_the_known_ones) {
  auto alpha = ps::param<int>("alpha", 1);
  auto beta = ps::param<std::string>("beta", "b");
  auto out = ps::step<"out">([](int a, const std::string& b) { return b + std::to_string(a); })(alpha, beta);
  const auto p = ps::pipeline<"known">(out);
  try {
    (void)p.run({.params = {{"alpah", "2"}}});
    FAIL() << "expected param_error";
  } catch (const ps::param_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "'alpah'")) << what;
    EXPECT_TRUE(contains(what, "'known'")) << what;
    EXPECT_TRUE(contains(what, "alpha")) << what;
    EXPECT_TRUE(contains(what, "beta")) << what;
  }
}

TEST(params, an_unknown_parameter_of_a_pipeline_without_parameters) {
  auto out = ps::step<"out">([] { return 1; })();
  try {
    (void)ps::pipeline<"bare">(out).run({.params = {{"x", "1"}}});
    FAIL() << "expected param_error";
  } catch (const ps::param_error& e) {
    EXPECT_TRUE(contains(e.what(), "no parameters")) << e.what();
  }
}

TEST(params, defaults_apply_unless_overridden) {
  auto n = ps::param<int>("n", 3);
  auto greeting = ps::param<std::string>("greeting", "hi");  // converted to std::string
  auto loud = ps::param<bool>("loud", false);
  auto out = ps::step<"out">([](int count, const std::string& g, bool shout) {
    std::string s;
    for (int i = 0; i < count; ++i) s += g;
    return shout ? s + "!" : s;
  })(n, greeting, loud);
  const auto p = ps::pipeline<"p">(out);

  EXPECT_EQ(n.default_value(), 3);
  EXPECT_FALSE(ps::param<int>("required").default_value().has_value());
  ASSERT_EQ(p.description().params.size(), 3u);
  for (const auto& d : p.description().params) EXPECT_TRUE(d.has_default) << d.name;

  const auto defaults = p.run();
  ASSERT_TRUE(defaults.ok()) << defaults.report().summary();
  EXPECT_EQ(defaults.value(out), "hihihi");

  const auto overridden = p.run({.params = {{"n", "2"}, {"loud", "yes"}}});
  ASSERT_TRUE(overridden.ok()) << overridden.report().summary();
  EXPECT_EQ(overridden.value(out), "hihi!");

  // A run's values do not leak into the next one.
  const auto again = p.run();
  ASSERT_TRUE(again.ok()) << again.report().summary();
  EXPECT_EQ(again.value(out), "hihihi");
}

TEST(params, the_description_lists_each_parameter_with_its_type) {
  auto a = ps::param<std::uint64_t>("seed");
  auto b = ps::param<float>("lr", 0.1f);
  auto out = ps::step<"out">([](std::uint64_t s, float l) { return static_cast<double>(s) * l; })(a, b);
  const auto p = ps::pipeline<"p">(out);
  const auto& params = p.description().params;
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "seed");
  EXPECT_FALSE(params[0].has_default);
  EXPECT_EQ(params[1].name, "lr");
  EXPECT_EQ(params[1].type, "float");
  EXPECT_TRUE(params[1].has_default);
  const auto& inputs = p.description().nodes[0].inputs;
  ASSERT_EQ(inputs.size(), 2u);
  EXPECT_EQ(inputs[0].kind, ps::input_kind::param);
  EXPECT_EQ(inputs[1].kind, ps::input_kind::param);
  EXPECT_EQ(inputs[1].index, 1u);
}
