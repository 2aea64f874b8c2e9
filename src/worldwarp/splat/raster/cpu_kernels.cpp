// Tiled front-to-back Gaussian compositing on the CPU (forward and backward), threads over tiles.
//
// Plain C++ with a C ABI (no torch headers, so it compiles in a second); worldwarp.splat.raster.cpu compiles
// it at first use and calls it through ctypes with pointers to contiguous tensors. Semantics match
// worldwarp.splat.raster.reference exactly (see worldwarp.splat.raster.projection): Gaussians arrive sorted
// front to back; pixel p takes Gaussian g iff alpha = min(ALPHA_MAX, o exp(power)) >= ALPHA_MIN, and stops
// after the Gaussian that brings its transmittance below t_stop. Binning into tiles uses each Gaussian's
// alpha >= ALPHA_MIN half-extents plus one pixel of slack, so it never changes the result.
//
// Per Gaussian inputs (G rows): means2d (G,2), conics (G,3) = a,b,c of the inverse 2D covariance,
// opacities (G), colors (G,3), depths (G), extents (G,2). Per pixel outputs (H*W rows): color (3),
// alpha, depth (= sum w z), final transmittance, and the end of the processed range of the tile's list.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <atomic>
#include <thread>
#include <vector>

namespace {

#ifndef WW_TILE
#define WW_TILE 8
#endif
constexpr int TILE = WW_TILE;

// Run fn(thread_id, tile) for every tile on n_threads std::threads that pull tiles from a shared counter
// (dynamic scheduling without OpenMP, whose spinning barriers degrade badly on oversubscribed machines).
template <typename Fn>
void parallel_tiles(int n_tiles, int n_threads, Fn fn) {
    n_threads = std::max(1, std::min(n_threads, n_tiles));
    std::atomic<int> next{0};
    auto worker = [&](int tid) {
        for (int tile = next++; tile < n_tiles; tile = next++) fn(tid, tile);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < n_threads; ++t) pool.emplace_back(worker, t);
    worker(0);
    for (auto& th : pool) th.join();
}

struct Bins {
    int tiles_x = 0, tiles_y = 0;
    std::vector<int64_t> offsets;  // (n_tiles + 1)
    std::vector<int32_t> ids;      // Gaussian ids, per tile in the input (depth) order
};

template <typename T>
int clamp_floor(T v, int lo, int hi) {
    return (int)std::floor(std::max(T(lo), std::min(T(hi), v)));
}

// Tile rectangle [x0, x1] x [y0, y1] (inclusive; empty when x1 < x0) of Gaussian g's bounding box.
template <typename T>
void tile_range(const T* means2d, const T* extents, int64_t g, int tiles_x, int tiles_y, int& x0, int& x1, int& y0,
                int& y1) {
    const T ex = extents[2 * g] + T(1), ey = extents[2 * g + 1] + T(1);
    const T mx = means2d[2 * g], my = means2d[2 * g + 1];
    // pixel centres of tile t span [t*TILE + 0.5, t*TILE + TILE - 0.5]
    x0 = clamp_floor((mx - ex) / TILE, 0, tiles_x - 1);
    x1 = clamp_floor((mx + ex) / TILE, 0, tiles_x - 1);
    y0 = clamp_floor((my - ey) / TILE, 0, tiles_y - 1);
    y1 = clamp_floor((my + ey) / TILE, 0, tiles_y - 1);
    if (!(mx + ex >= 0) || !(my + ey >= 0) || !(mx - ex <= T(tiles_x * TILE)) || !(my - ey <= T(tiles_y * TILE))) {
        x1 = x0 - 1;  // empty
    }
}

// Minimum over the rectangle [xa, xb] x [ya, yb] of offsets d of q(d) = a dx^2 + 2 b dx dy + c dy^2 (a, c > 0).
template <typename T>
T min_quadratic_on_rect(T a, T b, T c, T xa, T xb, T ya, T yb) {
    if (xa <= 0 && 0 <= xb && ya <= 0 && 0 <= yb) return T(0);
    auto q = [&](T x, T y) { return a * x * x + T(2) * b * x * y + c * y * y; };
    T best = std::numeric_limits<T>::infinity();
    for (T y : {ya, yb}) best = std::min(best, q(std::max(xa, std::min(xb, -b * y / a)), y));
    for (T x : {xa, xb}) best = std::min(best, q(x, std::max(ya, std::min(yb, -b * x / c))));
    return best;
}

// Whether Gaussian g can reach alpha >= ALPHA_MIN at a pixel centre of tile (tx, ty): its ellipse
// q(d) <= 2 ln(255 o) (widened by a relative 1e-3 and half a pixel) meets the tile's pixel-centre rectangle.
template <typename T>
bool touches_tile(const T* means2d, const T* conics, const T* opac, int64_t g, int tx, int ty) {
    const T r2 = T(2) * std::log(T(255) * opac[g]) * T(1.001) + T(1e-3);
    const T mx = means2d[2 * g], my = means2d[2 * g + 1];
    const T xa = T(tx * TILE) - mx, xb = T(tx * TILE + TILE) - mx;  // centres +-0.5 px
    const T ya = T(ty * TILE) - my, yb = T(ty * TILE + TILE) - my;
    return min_quadratic_on_rect(conics[3 * g], conics[3 * g + 1], conics[3 * g + 2], xa, xb, ya, yb) <= r2;
}

// Per-tile lists of the Gaussians (input order = front to back) that can touch each tile.
template <typename T>
void bin_gaussians(int64_t G, const T* means2d, const T* conics, const T* opac, const T* extents, int H, int W,
                   Bins& b) {
    b.tiles_x = (W + TILE - 1) / TILE;
    b.tiles_y = (H + TILE - 1) / TILE;
    const int n_tiles = b.tiles_x * b.tiles_y;
    b.offsets.assign(n_tiles + 1, 0);
    std::vector<int32_t> hits;  // tile ids per Gaussian, recorded in the counting pass
    std::vector<int64_t> start(G + 1, 0);
    for (int64_t g = 0; g < G; ++g) {
        int x0, x1, y0, y1;
        tile_range(means2d, extents, g, b.tiles_x, b.tiles_y, x0, x1, y0, y1);
        for (int ty = y0; ty <= y1; ++ty)
            for (int tx = x0; tx <= x1; ++tx)
                if (touches_tile(means2d, conics, opac, g, tx, ty)) {
                    hits.push_back(ty * b.tiles_x + tx);
                    b.offsets[ty * b.tiles_x + tx + 1]++;
                }
        start[g + 1] = (int64_t)hits.size();
    }
    for (int t = 0; t < n_tiles; ++t) b.offsets[t + 1] += b.offsets[t];
    b.ids.resize(b.offsets[n_tiles]);
    std::vector<int64_t> fill(b.offsets.begin(), b.offsets.end() - 1);
    for (int64_t g = 0; g < G; ++g)
        for (int64_t h = start[g]; h < start[g + 1]; ++h) b.ids[fill[hits[h]]++] = (int32_t)g;
}

template <typename T>
struct TileData {
    std::vector<T> mx, my, ca, cb, cc, op, lo, cr, cg, cbl, z;
    void load(const Bins& b, int tile, const T* means2d, const T* conics, const T* opac, const T* colors,
              const T* depths) {
        const int64_t s = b.offsets[tile];
        const int n = (int)(b.offsets[tile + 1] - s);
        for (auto* v : {&mx, &my, &ca, &cb, &cc, &op, &lo, &cr, &cg, &cbl, &z}) v->resize(n);
        for (int k = 0; k < n; ++k) {
            const int32_t g = b.ids[s + k];
            mx[k] = means2d[2 * g];
            my[k] = means2d[2 * g + 1];
            ca[k] = conics[3 * g];
            cb[k] = conics[3 * g + 1];
            cc[k] = conics[3 * g + 2];
            op[k] = opac[g];
            // power below lo[k] gives alpha < ALPHA_MIN with a wide margin: exp() can be skipped
            lo[k] = std::log(T(1.0 / 255.0) / opac[g]) - T(1e-2);
            cr[k] = colors[3 * g];
            cg[k] = colors[3 * g + 1];
            cbl[k] = colors[3 * g + 2];
            z[k] = depths[g];
        }
    }
};

template <typename T>
void forward(int64_t G, const T* means2d, const T* conics, const T* opac, const T* colors, const T* depths,
             const T* extents, int H, int W, T t_stop, int n_threads, T* out_color, T* out_alpha, T* out_depth,
             T* out_T, int32_t* out_last) {
    Bins b;
    bin_gaussians(G, means2d, conics, opac, extents, H, W, b);
    const int n_tiles = b.tiles_x * b.tiles_y;
    const T alpha_min = T(1.0 / 255.0), alpha_max = T(0.99);
    std::vector<TileData<T>> data(std::max(1, n_threads));
    parallel_tiles(n_tiles, n_threads, [&](int tid, int tile) {
        {
            TileData<T>& d = data[tid];
            d.load(b, tile, means2d, conics, opac, colors, depths);
            const int64_t s = b.offsets[tile];
            const int n = (int)(b.offsets[tile + 1] - s);
            const int tx0 = (tile % b.tiles_x) * TILE, ty0 = (tile / b.tiles_x) * TILE;
            for (int py = ty0; py < std::min(ty0 + TILE, H); ++py) {
                for (int px = tx0; px < std::min(tx0 + TILE, W); ++px) {
                    const T u = T(px) + T(0.5), v = T(py) + T(0.5);
                    T Tr = 1, r = 0, gr = 0, bl = 0, dep = 0, acc = 0;
                    int last = 0;
                    for (int k = 0; k < n; ++k) {
                        const T dx = u - d.mx[k], dy = v - d.my[k];
                        const T power = T(-0.5) * (d.ca[k] * dx * dx + d.cc[k] * dy * dy) - d.cb[k] * dx * dy;
                        if (power < d.lo[k]) continue;
                        const T alpha = std::min(alpha_max, d.op[k] * std::exp(power));
                        if (!(alpha >= alpha_min)) continue;
                        const T w = alpha * Tr;
                        r += w * d.cr[k];
                        gr += w * d.cg[k];
                        bl += w * d.cbl[k];
                        dep += w * d.z[k];
                        acc += w;
                        Tr *= T(1) - alpha;
                        last = k + 1;
                        if (Tr < t_stop) break;
                    }
                    const int64_t p = (int64_t)py * W + px;
                    out_color[3 * p] = r;
                    out_color[3 * p + 1] = gr;
                    out_color[3 * p + 2] = bl;
                    out_alpha[p] = acc;
                    out_depth[p] = dep;
                    out_T[p] = Tr;
                    out_last[p] = last;
                }
            }
        }
    });
}

// Gradients w.r.t. means2d (G,2), conics (G,3), opacities (G), colors (G,3), depths (G); the outputs must be
// zero-initialised by the caller.
template <typename T>
void backward(int64_t G, const T* means2d, const T* conics, const T* opac, const T* colors, const T* depths,
              const T* extents, int H, int W, int n_threads, const T* g_color, const T* g_alpha, const T* g_depth,
              const T* saved_T, const int32_t* saved_last, T* d_means2d, T* d_conics, T* d_opac, T* d_colors,
              T* d_depths) {
    Bins b;
    bin_gaussians(G, means2d, conics, opac, extents, H, W, b);
    const int n_tiles = b.tiles_x * b.tiles_y;
    const T alpha_min = T(1.0 / 255.0), alpha_max = T(0.99);
    constexpr int NF = 10;  // per-Gaussian gradient fields: mean 2, conic 3, opacity 1, color 3, depth 1
    const int n_used = std::max(1, n_threads);
    std::vector<std::vector<T>> bufs(n_used);
    std::vector<TileData<T>> data(n_used);
    parallel_tiles(n_tiles, n_used, [&](int tid, int tile) {
        std::vector<T>& acc = bufs[tid];
        if (acc.empty()) acc.assign((size_t)G * NF, T(0));
        TileData<T>& d = data[tid];
        {
            d.load(b, tile, means2d, conics, opac, colors, depths);
            const int64_t s = b.offsets[tile];
            const int tx0 = (tile % b.tiles_x) * TILE, ty0 = (tile / b.tiles_x) * TILE;
            for (int py = ty0; py < std::min(ty0 + TILE, H); ++py) {
                for (int px = tx0; px < std::min(tx0 + TILE, W); ++px) {
                    const int64_t p = (int64_t)py * W + px;
                    const T u = T(px) + T(0.5), v = T(py) + T(0.5);
                    const T gr = g_color[3 * p], gg = g_color[3 * p + 1], gb = g_color[3 * p + 2];
                    const T ga = g_alpha[p], gd = g_depth[p];
                    T Tr = saved_T[p];
                    T suffix = 0;  // sum over later Gaussians k of w_k * (g . f_k)
                    for (int k = saved_last[p] - 1; k >= 0; --k) {
                        const T dx = u - d.mx[k], dy = v - d.my[k];
                        const T power = T(-0.5) * (d.ca[k] * dx * dx + d.cc[k] * dy * dy) - d.cb[k] * dx * dy;
                        if (power < d.lo[k]) continue;
                        const T gauss = std::exp(power);
                        const T raw = d.op[k] * gauss;
                        const T alpha = std::min(alpha_max, raw);
                        if (!(alpha >= alpha_min)) continue;
                        const T one_m = T(1) - alpha;
                        Tr = Tr / one_m;  // transmittance before this Gaussian
                        const T w = alpha * Tr;
                        const T gf = gr * d.cr[k] + gg * d.cg[k] + gb * d.cbl[k] + gd * d.z[k] + ga;
                        T* a = &acc[(size_t)b.ids[s + k] * NF];
                        a[6] += w * gr;
                        a[7] += w * gg;
                        a[8] += w * gb;
                        a[9] += w * gd;
                        const T d_alpha = Tr * gf - suffix / one_m;
                        suffix += w * gf;
                        if (raw > alpha_max) continue;  // clamped: no gradient to opacity or geometry
                        a[5] += d_alpha * gauss;
                        const T d_power = d_alpha * alpha;
                        a[0] += d_power * (d.ca[k] * dx + d.cb[k] * dy);
                        a[1] += d_power * (d.cb[k] * dx + d.cc[k] * dy);
                        a[2] += d_power * T(-0.5) * dx * dx;
                        a[3] += d_power * -dx * dy;
                        a[4] += d_power * T(-0.5) * dy * dy;
                    }
                }
            }
        }
    });
    for (const auto& acc : bufs) {
        if (acc.empty()) continue;
        for (int64_t g = 0; g < G; ++g) {
            const T* a = &acc[(size_t)g * NF];
            d_means2d[2 * g] += a[0];
            d_means2d[2 * g + 1] += a[1];
            d_conics[3 * g] += a[2];
            d_conics[3 * g + 1] += a[3];
            d_conics[3 * g + 2] += a[4];
            d_opac[g] += a[5];
            d_colors[3 * g] += a[6];
            d_colors[3 * g + 1] += a[7];
            d_colors[3 * g + 2] += a[8];
            d_depths[g] += a[9];
        }
    }
}

}  // namespace

extern "C" {

#define WW_EXPORT(SUFFIX, T)                                                                                        \
    void ww_forward_##SUFFIX(int64_t G, const T* means2d, const T* conics, const T* opac, const T* colors,          \
                             const T* depths, const T* extents, int H, int W, T t_stop, int n_threads,             \
                             T* out_color, T* out_alpha, T* out_depth, T* out_T, int32_t* out_last) {              \
        forward<T>(G, means2d, conics, opac, colors, depths, extents, H, W, t_stop, n_threads, out_color,          \
                   out_alpha, out_depth, out_T, out_last);                                                         \
    }                                                                                                              \
    void ww_backward_##SUFFIX(int64_t G, const T* means2d, const T* conics, const T* opac, const T* colors,         \
                              const T* depths, const T* extents, int H, int W, int n_threads, const T* g_color,    \
                              const T* g_alpha, const T* g_depth, const T* saved_T, const int32_t* saved_last,     \
                              T* d_means2d, T* d_conics, T* d_opac, T* d_colors, T* d_depths) {                    \
        backward<T>(G, means2d, conics, opac, colors, depths, extents, H, W, n_threads, g_color, g_alpha, g_depth, \
                    saved_T, saved_last, d_means2d, d_conics, d_opac, d_colors, d_depths);                         \
    }

WW_EXPORT(f32, float)
WW_EXPORT(f64, double)

}  // extern "C"
