// Reprojection check of forward warping (worldwarp.warp.reprojection_mask, fused over the pixels of one rendered
// view; that function is its plain-torch twin). Built and called like raster.cpp (worldwarp.splat.kernels).

#include "common.h"

namespace {

// Reprojection check of forward warping (worldwarp.warp.reprojection_mask, fused over pixels): each pixel with
// valid[p] set is lifted to 3D with its rendered depth (target camera c2w R, t and fx, fy, cx, cy) and projected
// into the V history cameras (w2c R, t and intrinsics, 16 numbers each); it stays valid when some view holds a valid
// history depth d there (> near; nearest pixel, or all four bilinear neighbours) with |z - d| < rel_tol * d.
// Nearest sampling with window k > 1 (odd) accepts any valid history depth in the k x k block centred on the nearest
// pixel, clipped to the image (WarpConfig.reprojection_window); k = 1 reads only the nearest pixel.
template <typename T>
void reproject(int H, int W, const T* depth, uint8_t* valid, const T* tcam, int V, const T* hcams, int Hh, int Wh,
               const T* hdepth, T rel_tol, T near, int bilinear, int window, int n_threads) {
    const int r = window > 1 ? window / 2 : 0;
    const T* R = tcam;
    const T* t = tcam + 9;
    const T fx = tcam[12], fy = tcam[13], cx = tcam[14], cy = tcam[15];
    parallel_range(H, n_threads, 8, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            for (int j = 0; j < W; ++j) {
                const int64_t p = i * W + j;
                if (!valid[p]) continue;
                const T d = depth[p];
                const T pc[3] = {(T(j) + T(0.5) - cx) / fx * d, (T(i) + T(0.5) - cy) / fy * d, d};
                T w[3];
                for (int a = 0; a < 3; ++a)
                    w[a] = R[3 * a] * pc[0] + R[3 * a + 1] * pc[1] + R[3 * a + 2] * pc[2] + t[a];
                bool ok = false;
                for (int v = 0; v < V && !ok; ++v) {
                    const T* c = hcams + 16 * v;
                    T q[3];
                    for (int a = 0; a < 3; ++a)
                        q[a] = c[3 * a] * w[0] + c[3 * a + 1] * w[1] + c[3 * a + 2] * w[2] + c[9 + a];
                    const T z = q[2];
                    const T zs = std::abs(z) < T(1e-12) ? T(1e-12) : z;
                    const T u = c[12] * q[0] / zs + c[14], vv = c[13] * q[1] / zs + c[15];
                    if (!(u >= 0 && u < T(Wh) && vv >= 0 && vv < T(Hh))) continue;
                    const T* hd = hdepth + (int64_t)v * Hh * Wh;
                    if (!bilinear) {  // nearest pixel and its clipped (2r + 1)^2 block
                        if (!(z > near)) continue;
                        const int jj = std::min(std::max((int)std::floor(u), 0), Wh - 1);
                        const int ii = std::min(std::max((int)std::floor(vv), 0), Hh - 1);
                        const int i_lo = std::max(ii - r, 0), i_hi = std::min(ii + r, Hh - 1);
                        const int j_lo = std::max(jj - r, 0), j_hi = std::min(jj + r, Wh - 1);
                        for (int bi = i_lo; bi <= i_hi && !ok; ++bi) {
                            const T* row = hd + (int64_t)bi * Wh;
                            for (int bj = j_lo; bj <= j_hi && !ok; ++bj) {
                                const T dn = row[bj];
                                ok = dn > near && std::abs(z - dn) < rel_tol * dn;
                            }
                        }
                        continue;
                    }
                    const T x = std::min(std::max(u - T(0.5), T(0)), T(Wh - 1));
                    const T y = std::min(std::max(vv - T(0.5), T(0)), T(Hh - 1));
                    const int x0 = std::min(std::max((int)std::floor(x), 0), Wh - 1);
                    const int y0 = std::min(std::max((int)std::floor(y), 0), Hh - 1);
                    const int x1 = std::min(x0 + 1, Wh - 1), y1 = std::min(y0 + 1, Hh - 1);
                    const T ffx = x - T(x0), ffy = y - T(y0);
                    const T d00 = hd[(int64_t)y0 * Wh + x0], d01 = hd[(int64_t)y0 * Wh + x1];
                    const T d10 = hd[(int64_t)y1 * Wh + x0], d11 = hd[(int64_t)y1 * Wh + x1];
                    if (!(d00 > near && d01 > near && d10 > near && d11 > near)) continue;
                    const T dh = (d00 * (1 - ffx) + d01 * ffx) * (1 - ffy) + (d10 * (1 - ffx) + d11 * ffx) * ffy;
                    ok = z > near && std::abs(z - dh) < rel_tol * dh;
                }
                valid[p] = ok;
            }
        }
    });
}

}  // namespace

extern "C" {

#define WW_REPROJECT_EXPORT(SUFFIX, T)                                                                             \
    void ww_reproject_##SUFFIX(int H, int W, const T* depth, uint8_t* valid, const T* tcam, int V, const T* hcams,  \
                               int Hh, int Wh, const T* hdepth, double rel_tol, double near, int bilinear,         \
                               int window, int n_threads) {                                                        \
        reproject<T>(H, W, depth, valid, tcam, V, hcams, Hh, Wh, hdepth, T(rel_tol), T(near), bilinear, window,     \
                     n_threads);                                                                                   \
    }

WW_REPROJECT_EXPORT(f32, float)
WW_REPROJECT_EXPORT(f64, double)

}  // extern "C"
