// The k-means example's GPU steps built by the host compiler for Thrust's TBB
// backend (linked with penstock::thrust_tbb): device_vector in host memory,
// Thrust on oneTBB. The `kmeans` binary; runs anywhere, with --gpu host.
#include "kmeans_steps.inl"
