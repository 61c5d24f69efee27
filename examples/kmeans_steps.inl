// The k-means example's GPU step code, for either backend: included by
// kmeans_steps_host.cpp (g++; Thrust on oneTBB, device_vector in host memory)
// and by kmeans_steps_cuda.cu (nvcc; Thrust on CUDA, on the step's stream).
// Thrust algorithms with ps::thrust_policy(ctx) on raw pointers, functors
// marked PENSTOCK_HOST_DEVICE: the same source for both.
//
// Lloyd's update needs, per cluster, the sum of its points. Floating-point
// sums in parallel depend on the order of the additions, which differs from
// run to run (and between backends), so the sums here are of integers: each
// coordinate in fixed point (2^-20 units), exact in any order. The centroids,
// and so the example's output, are then the same on every run, and the same
// in the CPU fallback as in the Thrust code on oneTBB. (It assumes each
// dimension's sum of |coordinates| stays below 2^43, about 8.8e12.)
//
// On CUDA nothing here makes the host wait for the device: each iteration is
// a transform, a sort, a search, scans and a transform enqueued on the step's
// stream, none returning a value to the host (Thrust allocates its temporary
// storage in stream order too), and the runtime records when they are done.
#include <penstock/device_vector.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/thrust.hpp>

#include <thrust/binary_search.h>
#include <thrust/copy.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/permutation_iterator.h>
#include <thrust/scan.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/transform.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "kmeans_steps.hpp"

namespace ps = penstock;

namespace kmeans_steps {
namespace {

using index_t = long long;  // point and element indices: n × dims may pass 2^31

// The index of the centroid nearest to `point` (the first of equals).
PENSTOCK_HOST_DEVICE inline int nearest(const float* point, const float* centroids, int dims, int k) {
  int best = 0;
  float best_distance = 0;
  for (int c = 0; c < k; ++c) {
    float distance = 0;
    for (int j = 0; j < dims; ++j) {
      const float t = point[j] - centroids[static_cast<index_t>(c) * dims + j];
      distance += t * t;
    }
    if (c == 0 || distance < best_distance) {
      best = c;
      best_distance = distance;
    }
  }
  return best;
}

PENSTOCK_HOST_DEVICE inline long long to_fixed(float v) {
  const double scaled = static_cast<double>(v) * 1048576.0;  // 2^20
  return static_cast<long long>(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
}

// The mean of `count` values whose fixed-point sum is `sum`.
PENSTOCK_HOST_DEVICE inline float from_fixed_mean(long long sum, index_t count) {
  return static_cast<float>(static_cast<double>(sum) / 1048576.0 / static_cast<double>(count));
}

// i -> the nearest centroid of point i.
struct nearest_centroid {
  const float* points;
  const float* centroids;
  int dims;
  int k;
  PENSTOCK_HOST_DEVICE int operator()(index_t i) const { return nearest(points + i * dims, centroids, dims, k); }
};

// e = j * n + i -> coordinate j of point i in fixed point: the coordinates
// dimension by dimension, so each dimension's are contiguous.
struct fixed_transposed {
  const float* points;
  index_t n;
  int dims;
  PENSTOCK_HOST_DEVICE long long operator()(index_t e) const { return to_fixed(points[(e % n) * dims + e / n]); }
};

// i = c * dims + j -> the mean of coordinate j over cluster c's points, from
// the cluster bounds in the sorted order and the per-dimension prefix sums of
// the coordinates in that order. A cluster without points keeps its centroid.
struct centroid_update {
  const long long* prefix;  // dims × n: inclusive scans, one per dimension
  const index_t* bounds;    // k + 1: where each cluster starts in the sorted order
  const float* old;
  index_t n;
  int dims;
  // The sum of dimension j's first m coordinates in sorted order.
  PENSTOCK_HOST_DEVICE long long before(index_t j, index_t m) const { return m == 0 ? 0 : prefix[j * n + m - 1]; }
  PENSTOCK_HOST_DEVICE float operator()(index_t i) const {
    const index_t c = i / dims;
    const index_t j = i % dims;
    const index_t lo = bounds[c];
    const index_t hi = bounds[c + 1];
    if (hi == lo) return old[i];
    return from_fixed_mean(before(j, hi) - before(j, lo), hi - lo);
  }
};

// The number of rows of `values`, which must hold whole rows of `dims`.
std::size_t rows_of(const ps::gpu_context& ctx, const ps::device_vector<float>& values, int dims, const char* what) {
  if (dims <= 0) {
    throw std::invalid_argument("step '" + std::string(ctx.step_name()) + "': dims must be positive, not " +
                                std::to_string(dims));
  }
  if (values.size() % static_cast<std::size_t>(dims) != 0) {
    throw std::invalid_argument("step '" + std::string(ctx.step_name()) + "': " + what + " has " +
                                std::to_string(values.size()) + " values, not a whole number of rows of " +
                                std::to_string(dims));
  }
  return values.size() / static_cast<std::size_t>(dims);
}

struct shape {
  index_t n;
  int k;
};

shape check_lloyd(const ps::gpu_context& ctx, const ps::device_vector<float>& points,
                  const ps::device_vector<float>& initial, int dims, int iterations) {
  const std::size_t n = rows_of(ctx, points, dims, "points");
  const std::size_t k = rows_of(ctx, initial, dims, "the initial centroids");
  if (k == 0 || n == 0)
    throw std::invalid_argument("step '" + std::string(ctx.step_name()) + "': no points or no centroids");
  if (iterations < 0) throw std::invalid_argument("step '" + std::string(ctx.step_name()) + "': iterations < 0");
  return {static_cast<index_t>(n), static_cast<int>(k)};
}

}  // namespace

ps::device_vector<float> lloyd(ps::gpu_context& ctx, const ps::device_vector<float>& points,
                               const ps::device_vector<float>& initial, int dims, int iterations) {
  // First: on a run without the backend this code is compiled for, this
  // throws before any work, and the step's fallback runs instead.
  auto policy = ps::thrust_policy(ctx);
  const auto [n, k] = check_lloyd(ctx, points, initial, dims, iterations);
  const auto kd = static_cast<std::size_t>(k) * static_cast<std::size_t>(dims);
  const auto nd = static_cast<std::size_t>(n) * static_cast<std::size_t>(dims);
  ctx.log("Lloyd's algorithm on " + std::string(ps::to_string(ctx.backend())) + ": " + std::to_string(n) + " points, " +
          std::to_string(dims) + " dimensions, k = " + std::to_string(k) + ", " + std::to_string(iterations) +
          " iterations");

  ps::device_vector<float> centroids(kd, ctx);
  thrust::copy(policy, initial.begin(), initial.end(), centroids.begin());
  const thrust::counting_iterator<index_t> first(0);
  ps::device_vector<long long> fixed(nd, ctx);  // fixed[j * n + i]: coordinate j of point i
  thrust::transform(policy, first, first + static_cast<index_t>(nd), fixed.begin(),
                    fixed_transposed{points.data(), n, dims});
  ps::device_vector<int> labels(static_cast<std::size_t>(n), ctx);
  ps::device_vector<index_t> order(static_cast<std::size_t>(n), ctx);
  ps::device_vector<index_t> bounds(static_cast<std::size_t>(k) + 1, ctx);
  ps::device_vector<long long> prefix(nd, ctx);

  for (int iteration = 0; iteration < iterations; ++iteration) {
    ctx.step().throw_if_stop_requested();
    // Assign each point to its nearest centroid, then group the points by
    // cluster: labels sorted, order[r] the point at sorted position r.
    thrust::transform(policy, first, first + n, labels.begin(),
                      nearest_centroid{points.data(), centroids.data(), dims, k});
    thrust::sequence(policy, order.begin(), order.end());
    thrust::sort_by_key(policy, labels.begin(), labels.end(), order.begin());
    // Cluster c is sorted positions [bounds[c], bounds[c + 1]).
    thrust::lower_bound(policy, labels.begin(), labels.end(), thrust::counting_iterator<int>(0),
                        thrust::counting_iterator<int>(k + 1), bounds.begin());
    // Prefix sums of each dimension's coordinates in that order.
    for (int j = 0; j < dims; ++j) {
      const auto sorted = thrust::make_permutation_iterator(fixed.data() + j * n, order.data());
      thrust::inclusive_scan(policy, sorted, sorted + n, prefix.data() + j * n);
    }
    // Each centroid reads and writes only its own element: in place is safe.
    thrust::transform(policy, first, first + static_cast<index_t>(kd), centroids.begin(),
                      centroid_update{prefix.data(), bounds.data(), centroids.data(), n, dims});
  }
  return centroids;
}

ps::device_vector<float> lloyd_cpu(ps::gpu_context& ctx, const ps::device_vector<float>& points,
                                   const ps::device_vector<float>& initial, int dims, int iterations) {
  const auto [n, k] = check_lloyd(ctx, points, initial, dims, iterations);
  const auto kd = static_cast<std::size_t>(k) * static_cast<std::size_t>(dims);
  ctx.log("Lloyd's algorithm in plain loops on the host: " + std::to_string(n) + " points, k = " + std::to_string(k));
  ps::device_vector<float> centroids(kd, ctx);
  const std::vector<float> start = initial.to_host();
  float* const c = centroids.data();  // host memory: the fallback runs on the host backend
  for (std::size_t i = 0; i < kd; ++i) c[i] = start[i];
  std::vector<long long> sums(kd);
  std::vector<index_t> counts(static_cast<std::size_t>(k));
  for (int iteration = 0; iteration < iterations; ++iteration) {
    ctx.step().throw_if_stop_requested();
    std::fill(sums.begin(), sums.end(), 0);
    std::fill(counts.begin(), counts.end(), 0);
    for (index_t i = 0; i < n; ++i) {
      const float* p = points.data() + i * dims;
      const auto label = static_cast<std::size_t>(nearest(p, c, dims, k));
      ++counts[label];
      for (int j = 0; j < dims; ++j)
        sums[label * static_cast<std::size_t>(dims) + static_cast<std::size_t>(j)] += to_fixed(p[j]);
    }
    for (std::size_t i = 0; i < kd; ++i) {
      const index_t count = counts[i / static_cast<std::size_t>(dims)];
      if (count != 0) c[i] = from_fixed_mean(sums[i], count);
    }
  }
  return centroids;
}

ps::device_vector<int> assign(ps::gpu_context& ctx, const ps::device_vector<float>& points,
                              const ps::device_vector<float>& centroids, int dims) {
  auto policy = ps::thrust_policy(ctx);
  const auto n = static_cast<index_t>(rows_of(ctx, points, dims, "points"));
  const int k = static_cast<int>(rows_of(ctx, centroids, dims, "centroids"));
  ps::device_vector<int> labels(static_cast<std::size_t>(n), ctx);
  const thrust::counting_iterator<index_t> first(0);
  thrust::transform(policy, first, first + n, labels.begin(),
                    nearest_centroid{points.data(), centroids.data(), dims, k});
  return labels;
}

ps::device_vector<int> assign_cpu(ps::gpu_context& ctx, const ps::device_vector<float>& points,
                                  const ps::device_vector<float>& centroids, int dims) {
  const auto n = static_cast<index_t>(rows_of(ctx, points, dims, "points"));
  const int k = static_cast<int>(rows_of(ctx, centroids, dims, "centroids"));
  ps::device_vector<int> labels(static_cast<std::size_t>(n), ctx);
  for (index_t i = 0; i < n; ++i) labels.data()[i] = nearest(points.data() + i * dims, centroids.data(), dims, k);
  return labels;
}

}  // namespace kmeans_steps
