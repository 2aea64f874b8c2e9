// Shared by the kernel sources of worldwarp.splat.kernels (raster.cpp, losses.cpp, reproject.cpp): the 8-lane
// vector types, lane sums and the thread pool. Each source is its own library; everything here has internal linkage
// (an anonymous namespace), so each library gets its own copy and none depends on another.
//
// Vectorisation uses GCC/Clang vector extensions (8 lanes = one row of an 8x8 tile); the compiler lowers them to
// AVX2/SSE/scalar code for the target, so there is no hand-written intrinsic path to keep in sync.

#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

constexpr int LANES = 8;

template <typename T>
struct Vec;
template <>
struct Vec<float> {
    typedef float type __attribute__((vector_size(LANES * sizeof(float))));
    typedef int32_t itype __attribute__((vector_size(LANES * sizeof(int32_t))));
    typedef int32_t ielem;
};
template <>
struct Vec<double> {
    typedef double type __attribute__((vector_size(LANES * sizeof(double))));
    typedef int64_t itype __attribute__((vector_size(LANES * sizeof(int64_t))));
    typedef int64_t ielem;
};

template <typename V, typename S>
inline V splat(S s) {
    V v;
    for (int l = 0; l < LANES; ++l) v[l] = s;
    return v;
}

// Sum of the lanes, as a tree (halves added as vectors first).
template <typename V>
inline auto hsum(V v) {
    typedef typename std::decay<decltype(v[0])>::type T;
    typedef T H __attribute__((vector_size(sizeof(V) / 2)));
    H lo, hi;
    std::memcpy(&lo, &v, sizeof(H));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
    const H q = lo + hi;
    return (q[0] + q[2]) + (q[1] + q[3]);
}

// Run fn(begin, end) over [0, n) in blocks of `block` items pulled dynamically by up to n_threads std::threads
// (no static split: on a busy machine a descheduled thread does not hold the others up).
template <typename Fn>
void parallel_range(int64_t n, int n_threads, int64_t block, Fn fn) {
    const int64_t n_blocks = (n + block - 1) / block;
    const int nt = (int)std::max<int64_t>(1, std::min<int64_t>(n_threads, n_blocks));
    std::atomic<int64_t> next{0};
    auto worker = [&] {
        for (int64_t b = next++; b < n_blocks; b = next++) fn(b * block, std::min(n, (b + 1) * block));
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < nt; ++t) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
}

}  // namespace
