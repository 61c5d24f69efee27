// The GPU steps of the k-means example (kmeans.cpp). Their code is in
// kmeans_steps.inl, compiled once per backend: kmeans_steps_host.cpp (g++,
// Thrust on oneTBB) and kmeans_steps_cuda.cu (nvcc). Only the light GPU
// headers here, so nvcc never sees penstock.hpp.
#pragma once

#include <penstock/device_vector.hpp>
#include <penstock/gpu_context.hpp>

namespace kmeans_steps {

// `iterations` rounds of Lloyd's algorithm over the row-major `points`
// (`dims` values each), from the row-major `initial` centroids (their count is
// k). Returns the final centroids, k × dims. A centroid that loses all its
// points keeps its place.
penstock::device_vector<float> lloyd(penstock::gpu_context& ctx, const penstock::device_vector<float>& points,
                                     const penstock::device_vector<float>& initial, int dims, int iterations);
// The same, in plain loops on the host: lloyd's .fallback where the run has
// no CUDA device for code compiled with nvcc. Computes the same centroids as
// the Thrust code on oneTBB, bit for bit.
penstock::device_vector<float> lloyd_cpu(penstock::gpu_context& ctx, const penstock::device_vector<float>& points,
                                         const penstock::device_vector<float>& initial, int dims, int iterations);

// The index of each point's nearest centroid.
penstock::device_vector<int> assign(penstock::gpu_context& ctx, const penstock::device_vector<float>& points,
                                    const penstock::device_vector<float>& centroids, int dims);
penstock::device_vector<int> assign_cpu(penstock::gpu_context& ctx, const penstock::device_vector<float>& points,
                                        const penstock::device_vector<float>& centroids, int dims);

}  // namespace kmeans_steps
