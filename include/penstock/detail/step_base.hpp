// step_base: what every step application is to the pipeline that collects
// it, whatever its callable and argument types: the interface the compiled
// runtime lowers a pipeline's steps through (runtime/src/lowering.cpp).
#pragma once

#include <string_view>
#include <vector>

#include <penstock/graph_description.hpp>
#include <penstock/options.hpp>

namespace penstock::detail {

struct step_base {
  step_base(std::string_view name, step_options opts) : options(opts), name_(name) {}
  step_base(const step_base&) = default;
  step_base& operator=(const step_base&) = default;
  virtual ~step_base() = default;

  // The step's name (its ps::step<"name">): static storage.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }
  // Producers of node arguments, in argument order.
  virtual void producers(std::vector<const step_base*>& out) const = 0;
  // Parameters it reads, in argument order.
  virtual void params(std::vector<param_description>& out) const = 0;
  // True if `other` is the same step applied to equal constants and
  // parameters (so two handles to it are one node).
  [[nodiscard]] virtual bool same_application(const step_base& other) const = 0;
  // Fills the node's description and appends one input per argument, in
  // argument order; input indices are left 0 (the pipeline sets them).
  virtual void describe(node_description& node, std::vector<input_description>& inputs) const = 0;

  // Declared, with where it was written (options.source_file / source_line).
  step_options options;

 private:
  std::string_view name_;
};

}  // namespace penstock::detail
