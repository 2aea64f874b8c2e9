// Fused losses of the 3DGS cache fit: the SSIM of image planes with its analytic gradient (ww_ssim_*) and the whole
// loss of one rendered view taken straight from the rasteriser's raw outputs (ww_fit_loss_*), so that a fit step is
// two native calls (render, loss). Plain-torch twins: worldwarp.splat.ssim.ssim (SSIM) and
// worldwarp.splat.cache.cache_loss (the loss). Built and called like raster.cpp (worldwarp.splat.kernels).

#include "common.h"

namespace {

// Unaligned load / store of N = LANES (a vector) or N = 1 (a scalar) values, for loops written once for both.
template <int N, typename T>
inline auto ld(const T* p) {
    if constexpr (N == 1) {
        return *p;
    } else {
        typename Vec<T>::type v;
        std::memcpy(&v, p, sizeof(v));
        return v;
    }
}
template <typename T, typename X>
inline void st(T* p, X x) {
    std::memcpy(p, &x, sizeof(X));
}
// fn(j, std::integral_constant<int, N>) over [0, n): vectors of LANES, then the remainder one by one.
template <typename Fn>
inline void lanes_loop(int n, Fn fn) {
    int j = 0;
    for (; j + LANES <= n; j += LANES) fn(j, std::integral_constant<int, LANES>());
    for (; j < n; ++j) fn(j, std::integral_constant<int, 1>());
}

// SSIM of P planes of H x W (worldwarp.splat.ssim: separable window of `win` taps, "valid" filtering, population
// statistics). Writes the sum of each plane's SSIM map (Ho x Wo, Ho = H - win + 1, Wo = W - win + 1) to
// plane_sums (rows summed in order, so independent of the thread count) and, when grad is not null, the gradient
// of that sum w.r.t. a (P, H, W). Per map row: the five statistics (mu_a, mu_b, E[a^2], E[b^2], E[ab]) by a
// vertical then a horizontal pass, the map and its partial derivatives w.r.t. mu_a, E[a^2] and E[ab], and those
// taken through the adjoint horizontal pass; a second pass applies the adjoint vertical pass and the chain rule
// of a^2 and ab. Every filter loops over the taps innermost with its sums in registers (one vector of outputs).
template <typename T>
void ssim_planes(int P, int H, int W, const T* a, const T* b, const T* taps, int win, T c1, T c2, double* plane_sums,
                 T* grad, int n_threads) {
    typedef typename Vec<T>::type V;
    const int Ho = H - win + 1, Wo = W - win + 1;
    if (Ho <= 0 || Wo <= 0) return;
    std::vector<double> row_sums((size_t)P * Ho);
    // (P, Ho, 3, W): d(map)/d(mu_a, E[a^2], E[ab]) through the adjoint horizontal pass; kept between calls (per
    // calling thread), so that its pages are not faulted in again every call. The workers use the caller's buffer
    // through this reference (naming the thread_local inside them would give each worker its own).
    static thread_local std::vector<T> hadj_kept;
    std::vector<T>& hadj = hadj_kept;
    if (grad) hadj.resize((size_t)P * Ho * 3 * W);
    const int pad = win - 1;  // zeros on both sides of the map-row derivatives, for the adjoint horizontal pass
    constexpr int RB = 8;     // rows per work item
    const int row_blocks = (Ho + RB - 1) / RB;
    parallel_range((int64_t)P * row_blocks, n_threads, 1, [&](int64_t i0, int64_t i1) {
        std::vector<T> buf((size_t)5 * W + 5 * (size_t)Wo + 3 * (size_t)(Wo + 2 * pad), T(0));
        T* va = buf.data();
        T *vb = va + W, *vaa = vb + W, *vbb = vaa + W, *vab = vbb + W;
        T *ma = vab + W, *mb = ma + Wo, *maa = mb + Wo, *mbb = maa + Wo, *mab = mbb + Wo;
        T* gmu = mab + Wo + pad;  // gmu[-pad, Wo + pad), zero outside [0, Wo)
        T* gaa = gmu + Wo + 2 * pad;
        T* gab = gaa + Wo + 2 * pad;
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t p = item / row_blocks;
            const int r0 = (int)(item % row_blocks) * RB, r1 = std::min(Ho, r0 + RB);
            const T* A = a + (size_t)p * H * W;
            const T* B = b + (size_t)p * H * W;
            for (int i = r0; i < r1; ++i) {
                lanes_loop(W, [&](int j, auto n) {
                    constexpr int N = decltype(n)::value;
                    decltype(ld<N>(va)) sa{}, sb{}, saa{}, sbb{}, sab{};
                    for (int k = 0; k < win; ++k) {
                        const T tk = taps[k];
                        const auto x = ld<N>(A + (size_t)(i + k) * W + j), y = ld<N>(B + (size_t)(i + k) * W + j);
                        sa += tk * x;
                        sb += tk * y;
                        saa += tk * (x * x);
                        sbb += tk * (y * y);
                        sab += tk * (x * y);
                    }
                    st(va + j, sa), st(vb + j, sb), st(vaa + j, saa), st(vbb + j, sbb), st(vab + j, sab);
                });
                lanes_loop(Wo, [&](int j, auto n) {
                    constexpr int N = decltype(n)::value;
                    decltype(ld<N>(va)) sa{}, sb{}, saa{}, sbb{}, sab{};
                    for (int k = 0; k < win; ++k) {
                        const T tk = taps[k];
                        sa += tk * ld<N>(va + j + k);
                        sb += tk * ld<N>(vb + j + k);
                        saa += tk * ld<N>(vaa + j + k);
                        sbb += tk * ld<N>(vbb + j + k);
                        sab += tk * ld<N>(vab + j + k);
                    }
                    st(ma + j, sa), st(mb + j, sb), st(maa + j, saa), st(mbb + j, sbb), st(mab + j, sab);
                });
                V vsum = splat<V>(T(0));
                double sum = 0;
                lanes_loop(Wo, [&](int j, auto n) {
                    constexpr int N = decltype(n)::value;
                    const auto mu_a = ld<N>(ma + j), mu_b = ld<N>(mb + j);
                    const auto var_a = ld<N>(maa + j) - mu_a * mu_a, var_b = ld<N>(mbb + j) - mu_b * mu_b;
                    const auto cov = ld<N>(mab + j) - mu_a * mu_b;
                    const auto a1 = T(2) * mu_a * mu_b + c1, a2 = T(2) * cov + c2;
                    const auto b1 = mu_a * mu_a + mu_b * mu_b + c1, b2 = var_a + var_b + c2;
                    const auto s = (a1 * a2) / (b1 * b2);
                    if constexpr (N == 1)
                        sum += (double)s;
                    else
                        vsum += s;
                    if (grad) {
                        const auto inv = T(1) / (b1 * b2);
                        const auto d_a1 = a2 * inv, d_a2 = a1 * inv, d_b1 = -s / b1, d_b2 = -s / b2;
                        st(gmu + j, T(2) * mu_b * (d_a1 - d_a2) + T(2) * mu_a * (d_b1 - d_b2));
                        st(gaa + j, d_b2);
                        st(gab + j, T(2) * d_a2);
                    }
                });
                row_sums[(size_t)p * Ho + i] = (double)hsum(vsum) + sum;
                if (!grad) continue;
                // adjoint horizontal pass: h[x] = sum_k taps[k] g[x - k] over x - k in [0, Wo) (g is zero-padded)
                T* hm = &hadj[((size_t)p * Ho + i) * 3 * W];
                T *ha = hm + W, *hb = ha + W;
                lanes_loop(W, [&](int x, auto n) {
                    constexpr int N = decltype(n)::value;
                    decltype(ld<N>(va)) sm{}, sa{}, sb{};
                    for (int k = 0; k < win; ++k) {
                        const T tk = taps[k];
                        sm += tk * ld<N>(gmu + x - k);
                        sa += tk * ld<N>(gaa + x - k);
                        sb += tk * ld<N>(gab + x - k);
                    }
                    st(hm + x, sm), st(ha + x, sa), st(hb + x, sb);
                });
            }
        }
    });
    for (int p = 0; p < P; ++p) {
        double s = 0;
        for (int i = 0; i < Ho; ++i) s += row_sums[(size_t)p * Ho + i];
        plane_sums[p] = s;
    }
    if (!grad) return;
    // adjoint vertical pass: input row y collects map rows y - k (k < win) inside [0, Ho)
    const int in_blocks = (H + RB - 1) / RB;
    parallel_range((int64_t)P * in_blocks, n_threads, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t p = item / in_blocks;
            const int y0 = (int)(item % in_blocks) * RB, y1 = std::min(H, y0 + RB);
            for (int y = y0; y < y1; ++y) {
                const int k0 = std::max(0, y - Ho + 1), k1 = std::min(win - 1, y);
                const size_t off = ((size_t)p * H + y) * W;
                const T *ra = a + off, *rb = b + off;
                T* out = grad + off;
                lanes_loop(W, [&](int j, auto n) {
                    constexpr int N = decltype(n)::value;
                    decltype(ld<N>(ra)) sm{}, sa{}, sb{};
                    for (int k = k0; k <= k1; ++k) {
                        const T tk = taps[k];
                        const T* hm = &hadj[((size_t)p * Ho + (y - k)) * 3 * W] + j;
                        sm += tk * ld<N>(hm);
                        sa += tk * ld<N>(hm + W);
                        sb += tk * ld<N>(hm + 2 * W);
                    }
                    st(out + j, sm + T(2) * ld<N>(ra + j) * sa + ld<N>(rb + j) * sb);
                });
            }
        }
    });
}

// Loss of the 3DGS cache fit on one rendered view (worldwarp.splat.cache: w_l1 L1(rgb) + w_ssim (1 - SSIM(rgb)) +
// w_depth L1(1 / depth) over the pixels with a valid ground-truth and rendered depth > near) straight from the
// renderer's outputs, and its gradient w.r.t. them. rgb = color + (1 - alpha) bg; depth = depth_acc / alpha where
// alpha > alpha_eps, else 0. color (H, W, 3), alpha and depth_acc (H, W), target (3, H, W), depth_ok (H, W) bytes,
// inv_depth (H, W). terms gets the mean L1, the mean SSIM, the mean inverse-depth error and the number of depth
// pixels; the gradients (same shapes as the inputs) are those of the weighted loss. Sums are taken per row, then
// over rows in order (independent of the thread count).
template <typename T>
void fit_loss(int H, int W, const T* color, const T* alpha, const T* depth_acc, const T* bg, const T* target,
              const uint8_t* depth_ok, const T* inv_depth, const T* taps, int win, double w_l1, double w_ssim,
              double w_depth, T near, T alpha_eps, T c1, T c2, double* terms, T* g_color, T* g_alpha,
              T* g_depth_acc, int n_threads) {
    const int64_t HW = (int64_t)H * W;
    static thread_local std::vector<T> kept[4];  // scratch kept between calls, used via references (see ssim_planes)
    std::vector<T>&pred = kept[0], &sgn = kept[1], &dd = kept[2], &gs = kept[3];
    pred.resize((size_t)3 * HW), sgn.resize((size_t)3 * HW), dd.resize(HW);
    std::vector<double> l1_rows(H), d_rows(H);
    std::vector<int64_t> n_rows(H);
    const bool use_depth = w_depth > 0;
    parallel_range(H, n_threads, 8, [&](int64_t y0, int64_t y1) {
        for (int64_t y = y0; y < y1; ++y) {
            double l1 = 0, de = 0;
            int64_t n = 0;
            for (int64_t p = y * W; p < (y + 1) * W; ++p) {
                const T om = T(1) - alpha[p];
                for (int c = 0; c < 3; ++c) {
                    const T v = color[3 * p + c] + om * bg[c];
                    const T d = v - target[c * HW + p];
                    pred[c * HW + p] = v;
                    l1 += (double)std::abs(d);
                    sgn[c * HW + p] = T((d > 0) - (d < 0));
                }
                if (!use_depth) continue;
                const T a = alpha[p];
                const T dep = a > alpha_eps ? depth_acc[p] / a : T(0);
                T g = 0;
                if (depth_ok[p] && dep > near) {
                    const T inv = T(1) / dep, e = inv - inv_depth[p];
                    de += (double)std::abs(e);
                    ++n;
                    g = -T((e > 0) - (e < 0)) * (inv * inv);  // d|1/dep - gt| / d dep
                }
                dd[p] = g;
            }
            l1_rows[y] = l1, d_rows[y] = de, n_rows[y] = n;
        }
    });
    double l1 = 0, de = 0;
    int64_t n = 0;
    for (int y = 0; y < H; ++y) l1 += l1_rows[y], de += d_rows[y], n += n_rows[y];
    terms[0] = l1 / (double)(3 * HW);
    terms[1] = 1.0;
    terms[2] = n > 0 ? de / (double)n : 0.0;
    terms[3] = (double)n;
    const int Ho = H - win + 1, Wo = W - win + 1;
    if (w_ssim > 0) {
        double sums[3];
        gs.resize((size_t)3 * HW);
        ssim_planes(3, H, W, pred.data(), target, taps, win, c1, c2, sums, gs.data(), n_threads);
        terms[1] = (sums[0] + sums[1] + sums[2]) / (3.0 * Ho * Wo);
    }
    const T k_l1 = T(w_l1 / (double)(3 * HW));
    const T k_ssim = w_ssim > 0 ? T(-w_ssim / (3.0 * Ho * Wo)) : T(0);
    const T k_d = n > 0 ? T(w_depth / (double)n) : T(0);
    parallel_range(HW, n_threads, 4096, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            T ga = 0;
            for (int c = 0; c < 3; ++c) {
                T g = k_l1 * sgn[c * HW + p];
                if (w_ssim > 0) g += k_ssim * gs[c * HW + p];
                g_color[3 * p + c] = g;
                ga -= g * bg[c];
            }
            T gd = 0;
            if (use_depth && n > 0 && dd[p] != T(0)) {
                const T a = alpha[p], g = k_d * dd[p];
                gd = g / a;
                ga -= g * depth_acc[p] / (a * a);
            }
            g_alpha[p] = ga;
            g_depth_acc[p] = gd;
        }
    });
}

}  // namespace

extern "C" {

#define WW_LOSSES_EXPORT(SUFFIX, T)                                                                                \
    void ww_ssim_##SUFFIX(int P, int H, int W, const T* a, const T* b, const T* taps, int win, double c1,          \
                          double c2, double* plane_sums, T* grad, int n_threads) {                                 \
        ssim_planes<T>(P, H, W, a, b, taps, win, T(c1), T(c2), plane_sums, grad, n_threads);                      \
    }                                                                                                              \
    void ww_fit_loss_##SUFFIX(int H, int W, const T* color, const T* alpha, const T* depth_acc, const T* bg,        \
                              const T* target, const uint8_t* depth_ok, const T* inv_depth, const T* taps, int win, \
                              double w_l1, double w_ssim, double w_depth, double near, double alpha_eps, double c1, \
                              double c2, double* terms, T* g_color, T* g_alpha, T* g_depth_acc, int n_threads) {    \
        fit_loss<T>(H, W, color, alpha, depth_acc, bg, target, depth_ok, inv_depth, taps, win, w_l1, w_ssim, w_depth, \
                    T(near), T(alpha_eps), T(c1), T(c2), terms, g_color, g_alpha, g_depth_acc, n_threads);          \
    }

WW_LOSSES_EXPORT(f32, float)
WW_LOSSES_EXPORT(f64, double)

}  // extern "C"
