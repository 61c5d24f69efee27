// The seam between the header-only DSL and the compiled runtime: a flat,
// type-erased description of a pipeline. The DSL lowers every pipeline to one
// of these; the runtime (planner, executor, CLI) sees nothing else. Plain
// structs and function pointers only: no Hana, no templates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>

#include <penstock/context.hpp>
#include <penstock/digest.hpp>
#include <penstock/options.hpp>

struct CUstream_st;

namespace penstock {

class gpu_memory_resource;
namespace detail {
class path_value;
struct command_spec;
}  // namespace detail

enum class node_kind : std::uint8_t {
  step,     // one task
  map,      // one node, one task per element of its input vector
  command,  // a program run as a process (ps::command): `command` describes it
};

enum class input_kind : std::uint8_t {
  node,      // the output of another node (`index` is the producer's index)
  param,     // a pipeline parameter (`index` into graph_description::params)
  constant,  // a value fixed when the pipeline was written (held by the step)
};

struct input_description {
  input_kind kind = input_kind::constant;
  std::uint32_t index = 0;
  std::string_view type;        // the value type the step receives
  std::string_view projection;  // "" or the member / element taken from the producer
};

// A value slot is an opaque std::optional<T>, constructed in place in
// storage the runtime provides (one block per run for all slots); the
// functions below are the only way the runtime touches one.
struct slot_functions {
  std::size_t size = 0;                                 // sizeof(std::optional<T>)
  std::size_t align = 1;                                // alignof(std::optional<T>)
  void (*construct)(void* storage) noexcept = nullptr;  // an empty optional at `storage`
  void (*destroy)(void* slot) noexcept = nullptr;       // its destructor; the storage stays
  void (*clear)(void* slot) noexcept = nullptr;         // drops the value early
  bool (*has_value)(const void* slot) noexcept = nullptr;
  // A short printable form of the value ("0.9467"), or "" if it has none.
  std::string (*format)(const void* slot) = nullptr;
  // Content digest, serialization and deserialization through
  // value_traits<T>; all three are null when T is not serializable.
  digest (*hash)(const void* slot) = nullptr;
  digest (*save)(const void* slot, std::ostream& out) = nullptr;  // returns the digest of what it wrote
  void (*load)(void* slot, std::istream& in) = nullptr;
  // The direct load of a value stored as an 8-byte element count and then
  // its elements (value_traits<T>::contiguous): makes the slot hold a value
  // of the right length for `stored_size` bytes, points `elements` at its
  // bytes and returns its element count, which the stored count must equal.
  // Returns false, the slot empty, if no value takes that many bytes. Null
  // for other types.
  bool (*prepare_contiguous)(void* slot, std::uint64_t stored_size, std::uint64_t* count,
                             std::span<std::byte>* elements) = nullptr;
  // For ps::device_vector values: if the value in slot `from` is in host
  // memory, makes the (empty) slot `to` hold a copy of it in `memory`,
  // enqueued on `stream`, and returns true; false, `to` left empty, for a
  // value already in device memory. Null for other types.
  bool (*upload)(const void* from, void* to, gpu_memory_resource& memory, CUstream_st* stream) = nullptr;
  // For ps::file and ps::directory values, and tuples and pairs of them: the
  // path_value_count values in the slot (index `i`), which the runtime
  // hashes, stores and restores; null when the slot is empty. Null for other
  // types.
  detail::path_value* (*path_value)(void* slot, std::size_t i) noexcept = nullptr;
  std::size_t path_value_count = 0;
};

struct param_description {
  std::string_view name;
  std::string_view type;
  bool has_default = false;
  const void* param = nullptr;  // the parameter's shared state (name, default)
  slot_functions slot;
  // Stores the default (if any) into a fresh slot.
  void (*set_default)(const void* param, void* slot) = nullptr;
  // Parses `text` into the slot; throws std::invalid_argument saying why.
  void (*parse)(void* slot, std::string_view text) = nullptr;
};

struct node_description {
  std::string_view name;
  node_kind kind = node_kind::step;
  std::string_view output_type;
  std::span<const input_description> inputs;
  step_options options;
  // Stable across processes and builds: the step's name, version, output
  // type fingerprint, and each input's kind and source (producer and
  // projection, parameter name and type, or a constant's content digest).
  digest identity;
  // False when the output type or a constant cannot be serialized, so the
  // step's result can never be cached.
  bool cacheable = false;
  const void* step = nullptr;  // the step's callable and constants
  // Runs the step once. inputs[j] is the slot of input j (null for
  // constants); may_move[j] says the value may be moved from (this is its
  // last consumer). Writes the result into `output`. Throws on failure.
  // Null for a command, which the runtime runs itself from `command`.
  void (*run)(const void* step, void* const* inputs, const bool* may_move, void* output, context& ctx) = nullptr;
  slot_functions slot;
  const detail::command_spec* command = nullptr;  // for node_kind::command
};

struct graph_description {
  std::string_view name;
  std::span<const node_description> nodes;  // in topological order
  std::span<const param_description> params;
  std::span<const std::uint32_t> outputs;  // indices into nodes
};

}  // namespace penstock
