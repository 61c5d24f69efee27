// The caching seam: value_traits<T> hashes and (de)serializes values, and
// every lowered node carries a stable identity that changes exactly when one
// of its parts does.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace ps = penstock;

namespace {

struct opaque {  // no cereal serialize(): usable, but never cacheable
  int value = 0;
};

struct record {
  std::string name;
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values);
  }
  bool operator==(const record&) const = default;
};

int base() { return 1; }
int add(int x, int y) { return x + y; }
opaque wrap(int x) { return {x}; }
int unwrap(const opaque& o) { return o.value; }

template <class P>
ps::digest identity_of(const P& p, std::string_view step) {
  for (const auto& n : p.description().nodes)
    if (n.name == step) return n.identity;
  ADD_FAILURE() << "no step " << step;
  return {};
}

}  // namespace

TEST(value_traits, serializable_concept_looks_inside_containers) {
  static_assert(ps::serializable<int>);
  static_assert(ps::serializable<std::string>);
  static_assert(ps::serializable<std::vector<float>>);
  static_assert(ps::serializable<std::map<std::string, std::vector<int>>>);
  static_assert(ps::serializable<record>);
  static_assert(!ps::serializable<opaque>);
  static_assert(!ps::serializable<std::vector<opaque>>);
  static_assert(!ps::serializable<std::pair<int, opaque>>);
}

TEST(value_traits, save_returns_the_digest_of_the_bytes_it_wrote_and_load_round_trips) {
  const record r{"weights", {1.5, -2.0, 3.25}};
  std::ostringstream out;
  const ps::digest written = ps::value_traits<record>::save(out, r);
  const std::string bytes = out.str();
  EXPECT_EQ(written, ps::hasher().update(bytes.data(), bytes.size()).finish());
  EXPECT_EQ(written, ps::value_traits<record>::hash(r));

  std::istringstream in(bytes);
  EXPECT_EQ(ps::value_traits<record>::load(in), r);
}

TEST(value_traits, equal_values_have_equal_digests_and_different_values_differ) {
  using traits = ps::value_traits<std::vector<float>>;
  EXPECT_EQ(traits::hash({1, 2, 3}), traits::hash({1, 2, 3}));
  EXPECT_NE(traits::hash({1, 2, 3}), traits::hash({1, 2, 4}));
  EXPECT_NE(traits::hash({1, 2, 3}), traits::hash({1, 2, 3, 0}));
  EXPECT_NE(ps::value_traits<int>::type_fingerprint(), ps::value_traits<float>::type_fingerprint());
}

TEST(value_traits, digest_hex_is_32_lowercase_digits) {
  const ps::digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(d.hex(), "0123456789abcdeffedcba9876543210");
}

TEST(node_identity, is_the_same_for_the_same_application_in_another_pipeline_object) {
  auto make = [] {
    auto a = ps::step<"a">(base)();
    auto b = ps::step<"b">(add)(a, 2);
    return ps::pipeline<"p">(b);
  };
  EXPECT_EQ(identity_of(make(), "b"), identity_of(make(), "b"));
  EXPECT_EQ(identity_of(make(), "a"), identity_of(make(), "a"));
}

TEST(node_identity, changes_with_each_of_its_parts) {
  auto a = ps::step<"a">(base)();
  const auto reference = identity_of(ps::pipeline<"p">(ps::step<"b">(add)(a, 2)), "b");
  // a constant
  EXPECT_NE(reference, identity_of(ps::pipeline<"p">(ps::step<"b">(add)(a, 3)), "b"));
  // the version
  EXPECT_NE(reference, identity_of(ps::pipeline<"p">(ps::step<"b">(add).version(2)(a, 2)), "b"));
  // the name
  EXPECT_NE(reference, identity_of(ps::pipeline<"p">(ps::step<"c">(add)(a, 2)), "c"));
  // the producer of an input
  auto other = ps::step<"other">(base)();
  EXPECT_NE(reference, identity_of(ps::pipeline<"p">(ps::step<"b">(add)(other, 2)), "b"));
  // a parameter in place of a constant, and the parameter's name
  auto x = ps::param<int>("x", 2);
  auto y = ps::param<int>("y", 2);
  const auto with_x = identity_of(ps::pipeline<"p">(ps::step<"b">(add)(a, x)), "b");
  EXPECT_NE(reference, with_x);
  EXPECT_NE(with_x, identity_of(ps::pipeline<"p">(ps::step<"b">(add)(a, y)), "b"));
  // ...but not the parameter's default, which is a value of the run, not of the node
  auto x3 = ps::param<int>("x", 3);
  EXPECT_EQ(with_x, identity_of(ps::pipeline<"p">(ps::step<"b">(add)(a, x3)), "b"));
}

TEST(node_identity, a_step_with_an_unserializable_output_is_not_cacheable_and_has_no_hash_functions) {
  auto a = ps::step<"a">(base)();
  auto w = ps::step<"wrap">(wrap).cache(ps::never)(a);
  auto u = ps::step<"unwrap">(unwrap)(w);
  const auto p = ps::pipeline<"p">(u);
  for (const auto& n : p.description().nodes) {
    const bool expect_cacheable = n.name != "wrap";
    EXPECT_EQ(n.cacheable, expect_cacheable) << n.name;
    EXPECT_EQ(n.slot.hash != nullptr, expect_cacheable) << n.name;
    EXPECT_EQ(n.slot.save != nullptr, expect_cacheable) << n.name;
  }
  const auto result = p.run();
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(u), 1);
}

TEST(node_identity, slot_hash_matches_value_traits_after_a_run) {
  auto a = ps::step<"a">(base)();
  auto b = ps::step<"b">(add)(a, 41);
  const auto p = ps::pipeline<"p">(b);
  const auto result = p.run();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(ps::value_traits<int>::hash(result.value(b)), ps::value_traits<int>::hash(42));
}
