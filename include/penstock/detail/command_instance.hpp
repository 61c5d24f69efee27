// command_instance: one application of ps::command, as the pipeline collects
// it. Unlike step_instance it is one class for every command: its arguments
// are held type-erased (a producer, or a parameter's description), and only
// the small functions that turn an input's value into argument text and the
// produced paths into the output value are made per type (command.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/detail/command_spec.hpp>
#include <penstock/detail/step_base.hpp>
#include <penstock/digest.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/options.hpp>

namespace penstock::detail {

// An input of a command: another step's output, or a parameter.
struct command_input {
  input_kind kind = input_kind::node;
  std::shared_ptr<const step_base> producer{};  // for a node
  std::shared_ptr<const void> param_state{};    // keeps a parameter's shared state alive
  param_description param{};                    // for a parameter
  std::string_view type{};                      // the value type the command receives
  std::string_view projection{};
};

// What a command's output type contributes to it: made once per type.
struct command_output_type {
  std::string_view name;  // display_name<R>()
  digest fingerprint;     // value_traits<R>::type_fingerprint()
  slot_functions slot;
};

class command_instance final : public step_base {
 public:
  command_instance(std::string_view name, step_options opts, command_spec spec, std::vector<command_input> inputs,
                   const command_output_type& output)
      : step_base(name, opts), spec_(std::move(spec)), inputs_(std::move(inputs)), output_(output) {
    identity_ = compute_identity();
  }

  [[nodiscard]] const command_spec& spec() const noexcept { return spec_; }

  // A copy with other options or declarations (the builder methods of
  // ps::command's node).
  template <class Change>
  [[nodiscard]] std::shared_ptr<const command_instance> changed(Change&& change) const {
    command_spec spec = spec_;
    step_options opts = options;
    change(spec, opts);
    return std::make_shared<const command_instance>(name(), opts, std::move(spec), inputs_, output_);
  }

  void producers(std::vector<const step_base*>& out) const override {
    for (const auto& in : inputs_)
      if (in.kind == input_kind::node) out.push_back(in.producer.get());
  }
  void params(std::vector<param_description>& out) const override {
    for (const auto& in : inputs_)
      if (in.kind == input_kind::param) out.push_back(in.param);
  }
  [[nodiscard]] bool same_application(const step_base& other) const override {
    const auto* o = dynamic_cast<const command_instance*>(&other);
    return o != nullptr && o->identity_ == identity_;
  }
  void describe(node_description& d, std::vector<input_description>& inputs) const override {
    d.name = name();
    d.kind = node_kind::command;
    d.output_type = output_.name;
    d.options = options;
    d.step = this;
    d.run = nullptr;
    d.slot = output_.slot;
    d.identity = identity_;
    d.cacheable = output_.slot.save != nullptr;
    d.command = &spec_;
    for (const auto& in : inputs_)
      inputs.push_back({.kind = in.kind, .index = 0, .type = in.type, .projection = in.projection});
  }

 private:
  // The step's name, version and output type, and everything it declares
  // but the contents of its sources and the values of inherited variables
  // (the runtime keys those when it runs): argv, outputs, source paths,
  // environment, and each input's producer or parameter.
  [[nodiscard]] digest compute_identity() const {
    hasher h;
    h.update(name()).update_value(node_kind::command).update_value(options.version).update(output_.fingerprint);
    h.update_value(static_cast<std::uint64_t>(spec_.argv.size()));
    for (const auto& part : spec_.argv) h.update_value(part.kind).update(part.text).update_value(part.index);
    h.update_value(static_cast<std::uint64_t>(spec_.outputs.size()));
    for (const auto& out : spec_.outputs) h.update(out.name).update_value(out.kind);
    h.update_value(static_cast<std::uint64_t>(spec_.sources.size()));
    for (const auto& src : spec_.sources) h.update(std::string_view(src.path.native())).update(src.glob);
    h.update_value(static_cast<std::uint64_t>(spec_.env.size()));
    for (const auto& env : spec_.env)
      h.update(env.name).update_value(static_cast<std::uint8_t>(env.inherit)).update(env.inherit ? "" : env.value);
    h.update_value(static_cast<std::uint64_t>(inputs_.size()));
    for (const auto& in : inputs_) {
      h.update_value(in.kind);
      if (in.kind == input_kind::node) {
        h.update(in.producer->name()).update(in.projection);
      } else {
        h.update(in.param.name).update(in.type);
      }
    }
    return h.finish();
  }

  command_spec spec_;
  std::vector<command_input> inputs_;
  command_output_type output_;
  digest identity_;
};

}  // namespace penstock::detail
