// k-means clustering on the GPU: generate Gaussian blobs around k known
// centres, choose initial centroids with k-means++, run Lloyd's algorithm
// and assign every point to its centroid in GPU steps (kmeans_steps.inl), and
// score the clustering against the true blobs: its purity (the share of
// points whose cluster's majority blob is their own) and its inertia (mean
// squared distance to the assigned centroid).
//
// The GPU steps run on either backend (--gpu auto|cuda|host): `kmeans` has
// their code built for Thrust on oneTBB, so its runs take the host backend
// by default, `kmeans_cuda` for CUDA (auto: CUDA where there is a device),
// with CPU fallbacks that run where the
// machine has no device (they compute what `kmeans --gpu host` does, bit for
// bit; on CUDA the distances may round differently).
//
//   ./kmeans run [--param points=100000] [--param dims=8] [--param k=8]
//                [--param iterations=10] [--param seed=1] [--gpu host]
//   ./kmeans_cuda run [--param ...]
#include <penstock/penstock.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kmeans_steps.hpp"

namespace ps = penstock;

struct blobs {
  std::vector<float> x;    // points × dims, row-major
  std::vector<int> label;  // the blob each point was drawn from
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, label);
  }
};

struct score {
  double purity = 0;
  double inertia = 0;  // per point
  template <class Archive>
  void serialize(Archive& ar) {
    ar(purity, inertia);
  }
  friend std::ostream& operator<<(std::ostream& out, const score& s) {
    return out << std::fixed << std::setprecision(4) << "purity " << s.purity << ", inertia per point " << s.inertia;
  }
};

// k centres uniform in [-10, 10]^dims; each point one of them (at random)
// plus Gaussian noise, close enough that some blobs overlap.
blobs generate(int points, int dims, int k, int seed) {
  if (points <= 0 || dims <= 0 || k <= 0) throw std::invalid_argument("points, dims and k must be positive");
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::uniform_real_distribution<float> where(-10.0f, 10.0f);
  std::vector<float> centres(static_cast<std::size_t>(k) * static_cast<std::size_t>(dims));
  for (float& v : centres) v = where(rng);
  std::uniform_int_distribution<int> which(0, k - 1);
  std::normal_distribution<float> noise(0.0f, 2.5f);
  blobs out;
  out.x.reserve(static_cast<std::size_t>(points) * static_cast<std::size_t>(dims));
  out.label.reserve(static_cast<std::size_t>(points));
  for (int i = 0; i < points; ++i) {
    const int c = which(rng);
    out.label.push_back(c);
    for (int j = 0; j < dims; ++j) out.x.push_back(centres[static_cast<std::size_t>(c * dims + j)] + noise(rng));
  }
  return out;
}

float squared_distance(const float* a, const float* b, int dims) {
  float d = 0;
  for (int j = 0; j < dims; ++j) d += (a[j] - b[j]) * (a[j] - b[j]);
  return d;
}

// k-means++: the first centroid a point at random, each next one a point
// drawn with probability proportional to its squared distance to the
// nearest centroid so far. Seeded, so the same on every run.
std::vector<float> kmeans_plus_plus(const std::vector<float>& x, int dims, int k, int seed) {
  const std::size_t d = static_cast<std::size_t>(dims);
  const std::size_t n = x.size() / d;
  if (n < static_cast<std::size_t>(k)) throw std::invalid_argument("fewer points than clusters");
  std::mt19937 rng(static_cast<std::uint32_t>(seed) + 1);
  std::vector<float> centroids;
  centroids.reserve(static_cast<std::size_t>(k) * d);
  auto add = [&](std::size_t i) { centroids.insert(centroids.end(), x.begin() + i * d, x.begin() + (i + 1) * d); };
  add(std::uniform_int_distribution<std::size_t>(0, n - 1)(rng));
  std::vector<double> nearest(n);
  for (std::size_t i = 0; i < n; ++i) nearest[i] = squared_distance(&x[i * d], centroids.data(), dims);
  for (int c = 1; c < k; ++c) {
    double total = 0;
    for (double v : nearest) total += v;
    double pick = std::uniform_real_distribution<double>(0.0, total)(rng);
    std::size_t i = 0;
    while (i + 1 < n && pick >= nearest[i]) pick -= nearest[i++];
    add(i);
    const float* latest = &centroids[static_cast<std::size_t>(c) * d];
    for (std::size_t p = 0; p < n; ++p) {
      nearest[p] = std::min(nearest[p], static_cast<double>(squared_distance(&x[p * d], latest, dims)));
    }
  }
  return centroids;
}

// Purity against the true blobs, and the mean squared distance of each point
// to its assigned centroid.
score evaluate(const std::vector<float>& x, const std::vector<float>& centroids, const std::vector<int>& assigned,
               const std::vector<int>& truth, int dims, int k) {
  const std::size_t n = assigned.size();
  if (n == 0 || truth.size() != n || x.size() != n * static_cast<std::size_t>(dims)) {
    throw std::invalid_argument("evaluate: the points, assignment and labels disagree in size");
  }
  const std::size_t kk = static_cast<std::size_t>(k);
  std::vector<std::size_t> table(kk * kk);  // cluster × blob
  double inertia = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::size_t>(assigned[i]);
    ++table[c * kk + static_cast<std::size_t>(truth[i])];
    inertia +=
        squared_distance(&x[i * static_cast<std::size_t>(dims)], &centroids[c * static_cast<std::size_t>(dims)], dims);
  }
  std::size_t majority = 0;
  for (std::size_t c = 0; c < kk; ++c) {
    std::size_t best = 0;
    for (std::size_t t = 0; t < kk; ++t) best = std::max(best, table[c * kk + t]);
    majority += best;
  }
  return {static_cast<double>(majority) / static_cast<double>(n), inertia / static_cast<double>(n)};
}

int main(int argc, char** argv) {
  auto points = ps::param<int>("points", 100000);
  auto dims = ps::param<int>("dims", 8);
  auto k = ps::param<int>("k", 8);
  auto iterations = ps::param<int>("iterations", 10);
  auto seed = ps::param<int>("seed", 1);

  auto data = ps::step<"generate">(generate)(points, dims, k, seed);
  auto x = ps::get<&blobs::x>(data);
  auto initial = ps::step<"init">(kmeans_plus_plus)(x, dims, k, seed);
  // GPU steps: the std::vector<float> nodes are copied to the device for
  // them, and their device_vector outputs back to the host for `evaluate`.
  auto centroids = ps::step<"lloyd">(kmeans_steps::lloyd)
                       .on(ps::gpu)
                       .fallback(kmeans_steps::lloyd_cpu)(x, initial, dims, iterations);
  auto assigned =
      ps::step<"assign">(kmeans_steps::assign).on(ps::gpu).fallback(kmeans_steps::assign_cpu)(x, centroids, dims);
  auto quality = ps::step<"evaluate">(evaluate)(x, centroids, assigned, ps::get<&blobs::label>(data), dims, k);

  return ps::main(ps::pipeline<"kmeans">(quality), argc, argv);
}
