// step_instance: one application of a step to its arguments, as the runtime
// will run it. It owns the callable, the options and the constants; node
// arguments refer to their producers by name (for the graph) and by pointer
// (for lowering). Its static `run` is the function pointer handed to the
// runtime; it reads inputs from slots and writes its output slot.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <penstock/context.hpp>
#include <penstock/detail/callable_traits.hpp>
#include <penstock/detail/gpu_arguments.hpp>
#include <penstock/detail/runtime_api.hpp>
#include <penstock/detail/slot.hpp>
#include <penstock/detail/type_name.hpp>
#include <penstock/digest.hpp>
#include <penstock/fixed_string.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/options.hpp>
#include <penstock/param.hpp>
#include <penstock/value_traits.hpp>

namespace penstock::detail {

// What every step instance can do without its type being known.
struct step_base {
  step_base() = default;
  step_base(const step_base&) = default;
  step_base& operator=(const step_base&) = default;
  virtual ~step_base() = default;

  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  // Producers of node arguments, for walking the graph at lowering.
  virtual void producers(std::vector<const step_base*>& out) const = 0;
  // Parameters it reads, for collecting the pipeline's parameters.
  virtual void params(std::vector<param_description>& out) const = 0;
  // True if `other` is the same step applied to equal constants and
  // parameters (so two handles to it are one node).
  [[nodiscard]] virtual bool same_application(const step_base& other) const = 0;

  step_options options;
};

// Projections: which part of the producer's value an argument takes.
struct whole_value {
  static constexpr std::string_view label = "";
  template <class V>
  static constexpr V& apply(V& v) noexcept {
    return v;
  }
};
template <std::size_t I>
struct element_projection {
  static constexpr auto text = [] {
    std::array<char, 32> out{'g', 'e', 't', '<'};
    std::size_t n = 4;
    char digits[24]{};
    std::size_t d = 0;
    std::size_t v = I;
    do {
      digits[d++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (d != 0) out[n++] = digits[--d];
    out[n] = '>';
    return out;
  }();
  static constexpr std::string_view label{text.data()};
  template <class V>
  static constexpr auto& apply(V& v) noexcept {
    using std::get;
    return get<I>(v);
  }
};
template <auto Member>
struct member_projection {
  // "Split::train" → "train", read off the compiler's name for this type.
  static constexpr std::string_view label = [] {
    constexpr std::string_view full = type_name<member_projection>();
    constexpr std::string_view inner = full.substr(full.find('<') + 1, full.rfind('>') - full.find('<') - 1);
    return inner.substr(inner.rfind(':') == std::string_view::npos ? 0 : inner.rfind(':') + 1);
  }();
  template <class V>
  static constexpr auto& apply(V& v) noexcept {
    return v.*Member;
  }
};

// Argument kinds, as they appear in a step instance's type.
template <fixed_string Producer, class ProducerValue, class Projection, class T>
struct node_arg {
  using value_type = T;
  using storage = std::shared_ptr<const step_base>;
  static constexpr input_kind kind = input_kind::node;
  static constexpr auto producer_name = Producer;
};
template <class T>
struct param_arg {
  using value_type = T;
  using storage = param_node<T>;
  static constexpr input_kind kind = input_kind::param;
};
template <class T>
struct const_arg {
  using value_type = T;
  using storage = T;
  static constexpr input_kind kind = input_kind::constant;
};

template <class A>
inline constexpr bool is_node_arg_v = A::kind == input_kind::node;

// Hands one argument to the callable as the parameter type `Param` asks for:
// a const reference where it takes one, a moved value where this is the
// value's last consumer, and a copy otherwise. Never copies for const T&.
template <class Param, class T>
struct argument_passer {
  struct no_copy {};
  // Only a non-const reference parameter may need a copy of its own. Other
  // passers hold no std::optional<T>, which g++ -O2 -fsanitize=address would
  // otherwise flag with -Wmaybe-uninitialized.
  static constexpr bool reads_only =
      std::is_lvalue_reference_v<Param> && std::is_const_v<std::remove_reference_t<Param>>;
  static constexpr bool may_own = std::is_reference_v<Param> && !reads_only;

  T* source;
  bool movable;
  [[no_unique_address]] std::conditional_t<may_own, std::optional<T>, no_copy> owned{};

  decltype(auto) get() {
    if constexpr (std::is_lvalue_reference_v<Param> && std::is_const_v<std::remove_reference_t<Param>>) {
      return static_cast<const T&>(*source);
    } else if constexpr (std::is_reference_v<Param>) {
      T* target = movable ? source : &owned.emplace(std::as_const(*source));
      return static_cast<Param>(*target);
    } else if (movable) {
      return T(std::move(*source));
    } else {
      return T(std::as_const(*source));
    }
  }
};

template <class A>
constexpr std::string_view producer_name_of() {
  if constexpr (is_node_arg_v<A>) {
    return A::producer_name.view();
  } else {
    return {};
  }
}

template <class A>
std::string_view projection_label() {
  if constexpr (is_node_arg_v<A>) {
    return []<fixed_string P, class PV, class Proj, class T>(node_arg<P, PV, Proj, T>*) {
      return Proj::label;
    }(static_cast<A*>(nullptr));
  } else {
    return {};
  }
}

// The part of a node's identity that does not depend on its inputs.
template <class R>
hasher identity_prefix(std::string_view name, node_kind kind, const step_options& options) {
  hasher h;
  h.update(name).update_value(kind).update_value(options.version).update(value_traits<R>::type_fingerprint());
  return h;
}

template <class T>
bool equal_constants(const T& a, const T& b) {
  if constexpr (std::equality_comparable<T>) {
    return a == b;
  } else {
    return false;  // cannot tell, so treat as different applications
  }
}

// Two callables of one type: function pointers compare by address, stateless
// lambdas are always the same, and anything else is assumed different.
template <class F>
bool same_callable(const F& a, const F& b) {
  if constexpr (std::equality_comparable<F>) {
    return a == b;
  } else {
    return std::is_empty_v<F>;
  }
}

template <class A>
bool same_argument(const typename A::storage& a, const typename A::storage& b) {
  if constexpr (A::kind == input_kind::node) {
    return a->name() == b->name();
  } else if constexpr (A::kind == input_kind::param) {
    return a.name() == b.name();
  } else {
    return equal_constants(a, b);
  }
}

// F: the callable. R: what the callable returns (decayed). Where: CPU or
// GPU. Args: argument kinds.
template <fixed_string Name, class F, bool HasContext, class R, placement Where, class... Args>
class step_instance final : public step_base {
 public:
  static constexpr auto step_name = Name;
  static constexpr bool has_context = HasContext;
  static constexpr placement where = Where;
  static constexpr std::size_t node_input_count = ((is_node_arg_v<Args> ? 1 : 0) + ... + 0);
  static constexpr std::array<std::string_view, node_input_count> producer_names = [] {
    std::array<std::string_view, node_input_count> names{};
    std::size_t k = 0;
    ((is_node_arg_v<Args> ? void(names[k++] = producer_name_of<Args>()) : void()), ...);
    return names;
  }();
  using output_type = R;
  using callable_type = F;

  step_instance(F fn, step_options opts, typename Args::storage... args)
      : fn_(std::move(fn)), args_(std::move(args)...) {
    options = opts;
  }

  [[nodiscard]] std::string_view name() const noexcept override { return Name.view(); }

  void producers(std::vector<const step_base*>& out) const override {
    for_each_arg([&]<std::size_t I, class A>() {
      if constexpr (A::kind == input_kind::node) out.push_back(std::get<I>(args_).get());
    });
  }

  void params(std::vector<param_description>& out) const override {
    for_each_arg([&]<std::size_t I, class A>() {
      if constexpr (A::kind == input_kind::param) out.push_back(std::get<I>(args_).describe());
    });
  }

  [[nodiscard]] bool same_application(const step_base& other) const override {
    const auto* o = dynamic_cast<const step_instance*>(&other);
    if (o == nullptr || o->options.version != options.version || !same_callable(fn_, o->fn_)) return false;
    bool same = true;
    for_each_arg(
        [&]<std::size_t I, class A>() { same = same && same_argument<A>(std::get<I>(args_), std::get<I>(o->args_)); });
    return same;
  }

  // Fills the description of this node except input indices, which depend on
  // the pipeline it is lowered into.
  void describe(node_description& d, std::vector<input_description>& inputs) const {
    d.name = Name.view();
    d.kind = node_kind::step;
    d.output_type = display_name<R>();
    d.options = options;
    d.step = this;
    d.run = &run;
    d.slot = slot_functions_for<R>();
    hasher id = identity_prefix<R>(Name.view(), node_kind::step, options);
    bool cacheable = value_traits<R>::cacheable && !nested_path_values_v<R>;
    for_each_arg([&]<std::size_t I, class A>() {
      id.update_value(A::kind);
      if constexpr (A::kind == input_kind::node) {
        id.update(A::producer_name.view()).update(projection_label<A>());
      } else if constexpr (A::kind == input_kind::param) {
        id.update(std::get<I>(args_).name()).update(display_name<typename A::value_type>());
      } else if constexpr (value_traits<typename A::value_type>::cacheable) {
        id.update(value_traits<typename A::value_type>::hash(std::get<I>(args_)));
      } else {
        cacheable = false;  // a constant penstock cannot hash
      }
    });
    d.identity = id.finish();
    d.cacheable = cacheable;
    (inputs.push_back({.kind = Args::kind,
                       .index = 0,
                       .type = display_name<typename Args::value_type>(),
                       .projection = projection_label<Args>()}),
     ...);
  }

  template <std::size_t I>
  [[nodiscard]] const auto& argument() const noexcept {
    return std::get<I>(args_);
  }

  static void run(const void* self, void* const* inputs, const bool* may_move, void* output, context& ctx) {
    const auto& me = *static_cast<const step_instance*>(self);
    auto& out = *static_cast<std::optional<R>*>(output);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      if constexpr (Where == placement::gpu) {
        gpu_context* gpu = ctx.gpu();
        if (gpu == nullptr) {
          throw std::logic_error(
              std::string("GPU step '").append(Name.view()).append("' was run without a GPU context"));
        }
        // A step with a fallback may need its inputs twice: none is moved from.
        constexpr bool keep_inputs = has_fallback_v<F>;
        try {
          std::tuple passers{me.template passer<I, Args>(inputs[I], !keep_inputs && may_move[I], gpu)...};
          out.emplace(std::invoke(me.fn_, *gpu, std::get<I>(passers).get()...));
        } catch (const gpu_unavailable_error&) {
          if constexpr (keep_inputs) {
            if (gpu->backend() != gpu_backend::host) throw;
            ctx.log(std::string("no CUDA device (").append(gpu->why_no_device()).append("): running its CPU fallback"));
            std::tuple passers{me.template passer<I, Args>(inputs[I], false, gpu)...};
            out.emplace(std::invoke(me.fn_.fallback, *gpu, std::get<I>(passers).get()...));
          } else {
            throw;
          }
        }
      } else {
        std::tuple passers{me.template passer<I, Args>(inputs[I], may_move[I], nullptr)...};
        if constexpr (has_context) {
          out.emplace(std::invoke(me.fn_, ctx, std::get<I>(passers).get()...));
        } else {
          out.emplace(std::invoke(me.fn_, std::get<I>(passers).get()...));
        }
      }
    }
    (std::index_sequence_for<Args...>{});
  }

 private:
  template <std::size_t I>
  static auto param_type_of() {
    using T = typename std::tuple_element_t<I, std::tuple<Args...>>::value_type;
    if constexpr (known_signature_v<F>) {
      return std::type_identity<data_param_t<F, I>>{};
    } else {
      return std::type_identity<const T&>{};
    }
  }
  template <std::size_t I>
  using param_type = typename decltype(param_type_of<I>())::type;

  template <std::size_t I, class A>
  auto passer(void* slot, bool movable, [[maybe_unused]] gpu_context* gpu) const {
    using T = typename A::value_type;
    using P = param_type<I>;
    if constexpr (A::kind == input_kind::node) {
      return [gpu]<fixed_string Pr, class PV, class Proj, class V>(node_arg<Pr, PV, Proj, V>*, void* s, bool m) {
        (void)gpu;
        auto& whole = **static_cast<std::optional<PV>*>(s);
        if constexpr (Where == placement::gpu && is_device_vector_v<std::remove_cvref_t<P>>) {
          return device_passer<P, T>{&Proj::apply(whole), m, gpu};  // uploaded where it is on the host
        } else if constexpr (Where == placement::cpu && is_device_vector_v<T> &&
                             !is_device_vector_v<std::remove_cvref_t<P>>) {
          return host_passer<P, T>{&Proj::apply(whole)};  // a GPU -> CPU edge
        } else {
          return argument_passer<P, T>{&Proj::apply(whole), m};
        }
      }(static_cast<A*>(nullptr), slot, movable);
    } else if constexpr (A::kind == input_kind::param) {
      auto& value = **static_cast<std::optional<T>*>(slot);
      return argument_passer<P, T>{&value, false};
    } else {
      // Constants are never moved from: a retry or a later run needs them.
      return argument_passer<P, T>{const_cast<T*>(&std::get<I>(args_)), false};
    }
  }

  template <class Fn>
  void for_each_arg(Fn&& fn) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (fn.template operator()<I, std::tuple_element_t<I, std::tuple<Args...>>>(), ...);
    }
    (std::index_sequence_for<Args...>{});
  }

  F fn_;
  std::tuple<typename Args::storage...> args_;
};

// ps::map's instance: one node, one task per element of its input vector.
template <fixed_string Name, class F, bool HasContext, class R, class Input>
class map_instance final : public step_base {
 public:
  static constexpr auto step_name = Name;
  static constexpr bool has_context = HasContext;
  static constexpr std::size_t node_input_count = 1;
  static constexpr std::array<std::string_view, 1> producer_names{producer_name_of<Input>()};
  using element_type = typename Input::value_type::value_type;
  using output_type = std::vector<R>;
  using callable_type = F;

  map_instance(F fn, step_options opts, typename Input::storage input) : fn_(std::move(fn)), input_(std::move(input)) {
    options = opts;
  }

  [[nodiscard]] std::string_view name() const noexcept override { return Name.view(); }
  void producers(std::vector<const step_base*>& out) const override { out.push_back(input_.get()); }
  void params(std::vector<param_description>&) const override {}
  [[nodiscard]] bool same_application(const step_base& other) const override {
    const auto* o = dynamic_cast<const map_instance*>(&other);
    return o != nullptr && o->options.version == options.version && same_callable(fn_, o->fn_) &&
           o->input_->name() == input_->name();
  }

  void describe(node_description& d, std::vector<input_description>& inputs) const {
    d.name = Name.view();
    d.kind = node_kind::map;
    d.output_type = display_name<output_type>();
    d.options = options;
    d.step = this;
    d.run = &run;
    d.slot = slot_functions_for<output_type>();
    d.identity = identity_prefix<output_type>(Name.view(), node_kind::map, options)
                     .update_value(input_kind::node)
                     .update(Input::producer_name.view())
                     .update(projection_label<Input>())
                     .finish();
    d.cacheable = value_traits<output_type>::cacheable && !nested_path_values_v<output_type>;
    inputs.push_back({.kind = input_kind::node,
                      .index = 0,
                      .type = display_name<typename Input::value_type>(),
                      .projection = projection_label<Input>()});
  }

  static void run(const void* self, void* const* inputs, const bool* may_move, void* output, context& ctx) {
    const auto& me = *static_cast<const map_instance*>(self);
    auto& out = *static_cast<std::optional<output_type>*>(output);
    [&]<fixed_string Pr, class PV, class Proj, class V>(node_arg<Pr, PV, Proj, V>*) {
      auto& in = Proj::apply(**static_cast<std::optional<PV>*>(inputs[0]));
      me.run_elements(in, may_move[0], out, ctx);
    }(static_cast<Input*>(nullptr));
  }

 private:
  static auto param_type_of() {
    if constexpr (known_signature_v<F>) {
      return std::type_identity<data_param_t<F, 0>>{};
    } else {
      return std::type_identity<const element_type&>{};
    }
  }
  using param_type = typename decltype(param_type_of())::type;

  struct elements {
    const map_instance* self;
    std::vector<element_type>* in;
    bool movable;
    std::vector<std::optional<R>>* out;
  };

  static void element(void* data, std::size_t i, context& ctx) {
    auto& e = *static_cast<elements*>(data);
    argument_passer<param_type, element_type> arg{&(*e.in)[i], e.movable};
    if constexpr (has_context) {
      (*e.out)[i].emplace(std::invoke(e.self->fn_, ctx, arg.get()));
    } else {
      (void)ctx;
      (*e.out)[i].emplace(std::invoke(e.self->fn_, arg.get()));
    }
  }

  static r1::element_cache_functions element_cache() {
    if constexpr (value_traits<element_type>::cacheable && value_traits<R>::cacheable && !holds_path_values<R>::value) {
      return {.input_digest =
                  [](const void* d, std::size_t i) {
                    return value_traits<element_type>::hash((*static_cast<const elements*>(d)->in)[i]);
                  },
              .save_result =
                  [](const void* d, std::size_t i, std::ostream& out) {
                    return value_traits<R>::save(out, *(*static_cast<const elements*>(d)->out)[i]);
                  },
              .load_result =
                  [](void* d, std::size_t i, std::istream& in) {
                    (*static_cast<elements*>(d)->out)[i].emplace(value_traits<R>::load(in));
                  }};
    } else {
      return {};
    }
  }

  void run_elements(std::vector<element_type>& in, bool movable, std::optional<output_type>& out, context& ctx) const {
    std::vector<std::optional<R>> results(in.size());
    // A retried element must see its input again, so move only without retries.
    elements data{this, &in, movable && options.retries == 0, &results};
    r1::for_each_element(ctx, in.size(), options.retries, &element, &data, element_cache());
    auto& values = out.emplace();
    values.reserve(results.size());
    for (auto& r : results) values.push_back(std::move(*r));
  }

  F fn_;
  typename Input::storage input_;
};

}  // namespace penstock::detail
