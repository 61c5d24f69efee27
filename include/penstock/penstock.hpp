// The umbrella header: everything a pipeline author needs.
//   #include <penstock/penstock.hpp>
//   namespace ps = penstock;
#pragma once

#include <penstock/command.hpp>
#include <penstock/context.hpp>
#include <penstock/device_vector.hpp>
#include <penstock/error.hpp>
#include <penstock/file.hpp>
#include <penstock/fixed_string.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/main.hpp>
#include <penstock/map.hpp>
#include <penstock/node.hpp>
#include <penstock/options.hpp>
#include <penstock/param.hpp>
#include <penstock/pipeline.hpp>
#include <penstock/run_report.hpp>
#include <penstock/step.hpp>
#include <penstock/version.hpp>
