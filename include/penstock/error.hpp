// Compile-time diagnostics. Each error is a type that is declared and never
// defined: when penstock reports one, the compiler prints its name and its
// arguments (the step, the position, the types), so the message reads like a
// sentence. The comment beside each says how to fix the code.
#pragma once

#include <cstddef>

#include <penstock/fixed_string.hpp>

namespace penstock::error {

// Argument `Position` (0-based, not counting a leading ps::context&) of step
// `Step` has type `Given`, but the step's callable takes `Expected`.
// Fix: pass a node or constant of type `Expected`, or change the callable.
template <fixed_string Step, std::size_t Position, class Expected, class Given>
struct step_argument_mismatch;

// Step `Step` was applied to `Given` arguments but its callable takes
// `Expected` (not counting a leading ps::context&).
template <fixed_string Step, std::size_t Expected, std::size_t Given>
struct step_argument_count_mismatch;

// The callable of step `Step` cannot be called with arguments of these types
// (reported for generic callables, whose parameter types are unknown).
template <fixed_string Step, class... Given>
struct step_not_invocable_with;

// Step `Step` returns void, so it has no value to pass on or cache.
// Fix: return the result (a model, a table, a metric) instead of storing it.
template <fixed_string Step, class Callable>
struct step_returns_void;

// ps::map<"Step"> was applied to a node of type `Given`, which is not a
// std::vector. Fix: map over a node<std::vector<T>>.
template <fixed_string Step, class Given>
struct map_input_not_a_vector;

// The output type `Output` of step `Step` cannot be serialized with cereal,
// so the step cache cannot store it.
// Fix: give `Output` a serialize (or save/load) function, or declare the
// step .cache(ps::never) so it always runs.
template <fixed_string Step, class Output>
struct step_output_not_serializable;

// Step `Step` is declared .on(ps::gpu), but its callable `Callable` does not
// take ps::gpu_context& first. A GPU step's work goes on the stream its
// context gives it. Fix: make the first parameter `ps::gpu_context&`.
template <fixed_string Step, class Callable>
struct gpu_step_without_gpu_context;

// Step `Step`'s callable `Callable` takes ps::gpu_context&, but the step is
// not declared to run on the GPU. Fix: write ps::step<"Step">(fn).on(ps::gpu).
template <fixed_string Step, class Callable>
struct gpu_context_in_cpu_step;

// The .fallback of GPU step `Step` cannot be called like its GPU callable:
// with ps::gpu_context& and the same inputs (`Expected`, the GPU callable's
// parameters), returning the same type. Fix: give the fallback the GPU
// callable's signature; on the host backend its device_vector inputs are in
// host memory.
template <fixed_string Step, class Expected, class Fallback>
struct gpu_fallback_signature_mismatch;

// Argument `Position` (0-based) of command `Step` has type `Given`, which a
// command line cannot carry. Fix: pass a literal (a string or a number), a
// node or parameter of ps::file, ps::directory, std::string,
// std::filesystem::path, bool or a number, ps::source, ps::output_file or
// ps::output_dir; convert other values in a step first.
template <fixed_string Step, std::size_t Position, class Given>
struct command_argument_not_supported;

// Command `Step` declares no output, so its node would have no value.
// Fix: declare what it writes with ps::output_file("name") or
// ps::output_dir("name") among its arguments.
template <fixed_string Step>
struct command_without_output;

}  // namespace penstock::error

namespace penstock::detail {

// Instantiating report<E>() is how a check fails: `E` is incomplete, so the
// compiler's first error line names E and its arguments. A variable template,
// not a function template: g++ instantiates a function template's body at the
// end of the translation unit, after any error in the user's own code, while
// a variable template's initializer is instantiated at the step application,
// so the penstock error is printed first and points at the mistake.
template <class E>
inline constexpr auto report = [] { return sizeof(E) == 0; };

}  // namespace penstock::detail
