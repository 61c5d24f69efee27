// step_instance: one application of a step to its arguments, as the runtime
// will run it. It owns the options and the constants, refers to its
// producers by pointer, and holds its callable type-erased: the class is
// one per output and argument types, shared by every step of that
// signature, so that a pipeline of N steps instantiates one small `run`
// per callable and not N classes. `run` is the function pointer handed to
// the runtime; it reads inputs from slots and writes its output slot.
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
#include <penstock/detail/step_base.hpp>
#include <penstock/detail/type_name.hpp>
#include <penstock/digest.hpp>
#include <penstock/fixed_string.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/options.hpp>
#include <penstock/param.hpp>
#include <penstock/value_traits.hpp>

namespace penstock::detail {

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

// Argument kinds, as they appear in a step instance's type: what the step
// receives and, for a node, the type of its producer's whole output and the
// part taken from it. Never the producer's name, so that steps of one
// signature share one instance type.
template <class ProducerValue, class Projection, class T>
struct node_arg {
  using value_type = T;
  using storage = std::shared_ptr<const step_base>;
  static constexpr input_kind kind = input_kind::node;
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
std::string_view projection_label() {
  if constexpr (is_node_arg_v<A>) {
    return []<class PV, class Proj, class T>(node_arg<PV, Proj, T>*) { return Proj::label; }(static_cast<A*>(nullptr));
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

// A step's callable, type-erased. A stateless one (a captureless lambda)
// is not stored: its `run` makes one where it calls it. Any other (a
// function pointer, a lambda with captures, a function object) is held in
// `stored`. `type` tells callables of different types apart, and `same`
// (null for a stateless one) compares two of one type.
struct erased_callable {
  std::shared_ptr<const void> stored;
  const void* type = nullptr;
  bool (*same)(const void* a, const void* b) = nullptr;
};

template <class F>
inline constexpr bool stateless_v =
    std::is_empty_v<F>&& std::is_default_constructible_v<F>&& std::is_trivially_copyable_v<F>;

template <class F>
inline constexpr char callable_type_tag = 0;

template <class F>
erased_callable erase_callable(const F& fn) {
  if constexpr (stateless_v<F>) {
    return {.stored = nullptr, .type = &callable_type_tag<F>, .same = nullptr};
  } else {
    return {.stored = std::make_shared<const F>(fn),
            .type = &callable_type_tag<F>,
            .same = [](const void* a, const void* b) {
              return same_callable(*static_cast<const F*>(a), *static_cast<const F*>(b));
            }};
  }
}

// The callable `run` calls: made there if stateless, else the stored one.
template <class F>
struct callable_ref {
  explicit callable_ref(const erased_callable& c) {
    if constexpr (!stateless_v<F>) fn = static_cast<const F*>(c.stored.get());
  }
  [[nodiscard]] const F& get() const noexcept {
    if constexpr (stateless_v<F>) {
      return made;
    } else {
      return *fn;
    }
  }
  struct none {};
  [[no_unique_address]] std::conditional_t<stateless_v<F>, F, none> made{};
  const F* fn = nullptr;
};

[[nodiscard]] inline bool same_erased_callable(const erased_callable& a, const erased_callable& b) {
  if (a.type != b.type) return false;
  return a.same == nullptr || a.same(a.stored.get(), b.stored.get());
}

// One application of a step whose callable returns R, placed `Where`, to
// arguments of kinds Args. `run<F, HasContext>` is the runtime's entry for
// callable type F.
template <class R, placement Where, class... Args>
class step_instance final : public step_base {
 public:
  using output_type = R;
  using run_function = void (*)(const void*, void* const*, const bool*, void*, context&);

  step_instance(std::string_view name, step_options opts, erased_callable fn, run_function runner,
                typename Args::storage... args)
      : step_base(name, opts), fn_(std::move(fn)), run_(runner), args_(std::move(args)...) {}

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
    if (o == nullptr || o->options.version != options.version || !same_erased_callable(fn_, o->fn_)) return false;
    bool same = true;
    for_each_arg(
        [&]<std::size_t I, class A>() { same = same && same_argument<A>(std::get<I>(args_), std::get<I>(o->args_)); });
    return same;
  }

  void describe(node_description& d, std::vector<input_description>& inputs) const override {
    d.name = name();
    d.kind = node_kind::step;
    d.output_type = display_name<R>();
    d.options = options;
    d.step = this;
    d.run = run_;
    d.slot = slot_functions_for<R>();
    hasher id = identity_prefix<R>(name(), node_kind::step, options);
    bool cacheable = value_traits<R>::cacheable && !nested_path_values_v<R>;
    for_each_arg([&]<std::size_t I, class A>() {
      id.update_value(A::kind);
      if constexpr (A::kind == input_kind::node) {
        id.update(std::get<I>(args_)->name()).update(projection_label<A>());
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

  template <class F, bool HasContext>
  static void run(const void* self, void* const* inputs, const bool* may_move, void* output, context& ctx) {
    const auto& me = *static_cast<const step_instance*>(self);
    const callable_ref<F> fn(me.fn_);
    auto& out = *static_cast<std::optional<R>*>(output);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      if constexpr (Where == placement::gpu) {
        gpu_context* gpu = ctx.gpu();
        if (gpu == nullptr) {
          throw std::logic_error(std::string("GPU step '").append(me.name()).append("' was run without a GPU context"));
        }
        // A step with a fallback may need its inputs twice: none is moved from.
        constexpr bool keep_inputs = has_fallback_v<F>;
        try {
          std::tuple passers{me.template passer<F, I, Args>(inputs[I], !keep_inputs && may_move[I], gpu)...};
          out.emplace(std::invoke(fn.get(), *gpu, std::get<I>(passers).get()...));
        } catch (const gpu_unavailable_error&) {
          if constexpr (keep_inputs) {
            if (gpu->backend() != gpu_backend::host) throw;
            ctx.log(std::string("no CUDA device (").append(gpu->why_no_device()).append("): running its CPU fallback"));
            std::tuple passers{me.template passer<F, I, Args>(inputs[I], false, gpu)...};
            out.emplace(std::invoke(fn.get().fallback, *gpu, std::get<I>(passers).get()...));
          } else {
            throw;
          }
        }
      } else {
        std::tuple passers{me.template passer<F, I, Args>(inputs[I], may_move[I], nullptr)...};
        if constexpr (HasContext) {
          out.emplace(std::invoke(fn.get(), ctx, std::get<I>(passers).get()...));
        } else {
          out.emplace(std::invoke(fn.get(), std::get<I>(passers).get()...));
        }
      }
    }
    (std::index_sequence_for<Args...>{});
  }

 private:
  template <class F, std::size_t I>
  static auto param_type_of() {
    using T = typename std::tuple_element_t<I, std::tuple<Args...>>::value_type;
    if constexpr (known_signature_v<F>) {
      return std::type_identity<data_param_t<F, I>>{};
    } else {
      return std::type_identity<const T&>{};
    }
  }

  template <class F, std::size_t I, class A>
  auto passer(void* slot, bool movable, [[maybe_unused]] gpu_context* gpu) const {
    using T = typename A::value_type;
    using P = typename decltype(param_type_of<F, I>())::type;
    if constexpr (A::kind == input_kind::node) {
      return [gpu]<class PV, class Proj, class V>(node_arg<PV, Proj, V>*, void* s, bool m) {
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

  erased_callable fn_;
  run_function run_;
  std::tuple<typename Args::storage...> args_;
};

// ps::map's instance: one node, one task per element of its input vector.
// Like step_instance, one class per result and input type.
template <class R, class Input>
class map_instance final : public step_base {
 public:
  using element_type = typename Input::value_type::value_type;
  using output_type = std::vector<R>;
  using run_function = void (*)(const void*, void* const*, const bool*, void*, context&);

  map_instance(std::string_view name, step_options opts, erased_callable fn, run_function runner,
               typename Input::storage input)
      : step_base(name, opts), fn_(std::move(fn)), run_(runner), input_(std::move(input)) {}

  void producers(std::vector<const step_base*>& out) const override { out.push_back(input_.get()); }
  void params(std::vector<param_description>&) const override {}
  [[nodiscard]] bool same_application(const step_base& other) const override {
    const auto* o = dynamic_cast<const map_instance*>(&other);
    return o != nullptr && o->options.version == options.version && same_erased_callable(fn_, o->fn_) &&
           o->input_->name() == input_->name();
  }

  void describe(node_description& d, std::vector<input_description>& inputs) const override {
    d.name = name();
    d.kind = node_kind::map;
    d.output_type = display_name<output_type>();
    d.options = options;
    d.step = this;
    d.run = run_;
    d.slot = slot_functions_for<output_type>();
    d.identity = identity_prefix<output_type>(name(), node_kind::map, options)
                     .update_value(input_kind::node)
                     .update(input_->name())
                     .update(projection_label<Input>())
                     .finish();
    d.cacheable = value_traits<output_type>::cacheable && !nested_path_values_v<output_type>;
    inputs.push_back({.kind = input_kind::node,
                      .index = 0,
                      .type = display_name<typename Input::value_type>(),
                      .projection = projection_label<Input>()});
  }

  template <class F, bool HasContext>
  static void run(const void* self, void* const* inputs, const bool* may_move, void* output, context& ctx) {
    const auto& me = *static_cast<const map_instance*>(self);
    auto& out = *static_cast<std::optional<output_type>*>(output);
    [&]<class PV, class Proj, class V>(node_arg<PV, Proj, V>*) {
      auto& in = Proj::apply(**static_cast<std::optional<PV>*>(inputs[0]));
      me.run_elements(in, may_move[0], out, ctx, &element<F, HasContext>);
    }(static_cast<Input*>(nullptr));
  }

 private:
  struct elements {
    const map_instance* self;
    std::vector<element_type>* in;
    bool movable;
    std::vector<std::optional<R>>* out;
  };

  template <class F, bool HasContext>
  static void element(void* data, std::size_t i, context& ctx) {
    auto& e = *static_cast<elements*>(data);
    using param_type = typename decltype([] {
      if constexpr (known_signature_v<F>) {
        return std::type_identity<data_param_t<F, 0>>{};
      } else {
        return std::type_identity<const element_type&>{};
      }
    }())::type;
    const callable_ref<F> fn(e.self->fn_);
    argument_passer<param_type, element_type> arg{&(*e.in)[i], e.movable};
    if constexpr (HasContext) {
      (*e.out)[i].emplace(std::invoke(fn.get(), ctx, arg.get()));
    } else {
      (void)ctx;
      (*e.out)[i].emplace(std::invoke(fn.get(), arg.get()));
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

  void run_elements(std::vector<element_type>& in, bool movable, std::optional<output_type>& out, context& ctx,
                    void (*element_fn)(void*, std::size_t, context&)) const {
    std::vector<std::optional<R>> results(in.size());
    // A retried element must see its input again, so move only without retries.
    elements data{this, &in, movable && options.retries == 0, &results};
    r1::for_each_element(ctx, in.size(), options.retries, element_fn, &data, element_cache());
    auto& values = out.emplace();
    values.reserve(results.size());
    for (auto& r : results) values.push_back(std::move(*r));
  }

  erased_callable fn_;
  run_function run_;
  typename Input::storage input_;
};

}  // namespace penstock::detail
