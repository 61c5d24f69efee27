// The k-means example's GPU steps built by nvcc for CUDA: Thrust on the
// step's stream, device_vector in device memory. The `kmeans_cuda` binary;
// where the run has no CUDA device, the steps' CPU fallbacks run instead.
#include "kmeans_steps.inl"
