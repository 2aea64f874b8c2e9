// Fast CPU Gaussian rasteriser: projection, culling, depth sort, tile binning and compositing (forward and
// backward) in one call each, multi-threaded, with the per-pixel work vectorised over the 8 pixels of a tile row.
//
// Plain C++17 with a C ABI and no torch headers (compiles in seconds); worldwarp.splat.kernels builds it at first
// use and worldwarp.splat.kernels.ops calls it through ctypes, with every tensor checked first. Semantics match the
// torch reference (worldwarp.splat.raster.projection + reference): EWA projection with the Jacobian's x/z, y/z
// clamped to 1.3x the field of view, 0.3 px^2 low-pass, Gaussians front to back by camera z (stable: ties keep
// input order); pixel p takes Gaussian g iff alpha = min(0.99, o exp(power)) >= 1/255 while its transmittance is
// >= t_stop.
//
// The forward pass runs four numbered stages, each with its plain-torch twin:
//   1. project_stage   <-> projection.project_gaussians (EWA projection, culling, footprint extents)
//   2. sort_stage      <-> projection.sorted_visible (stable sort of the visible Gaussians by camera z)
//   3. bin_stage       (none: the reference composites every pixel against every Gaussian; the tile lists only
//                        drop pairs whose alpha is below 1/255, so the result is the same)
//   4. composite_stage <-> reference.composite_reference (front-to-back compositing)
// and returns an opaque context (projected Gaussians, tile lists, per-pixel final transmittance and list end) that
// the backward pass consumes in three stages (composite, per-Gaussian sums, projection); the caller frees it with
// ww_free_*.
//
// float32 uses a polynomial exp (<= 2 ulp on the range used here); float64 uses std::exp lane by lane (exact tests).

#include "common.h"

namespace {

constexpr int TILE = 8;  // tile side; one tile row = one vector of LANES pixels
static_assert(TILE == LANES, "a tile row is one vector");
constexpr double ALPHA_MIN = 1.0 / 255.0;
constexpr double ALPHA_MAX = 0.99;
constexpr double LOWPASS = 0.3;
constexpr double FOV_CLAMP = 1.3;

// exp of a vector of powers (<= 0 in use). float: Cody-Waite range reduction + degree-6 polynomial, inputs clamped
// to [-87, 88] (exp(-87) ~ 1.6e-38 is far below any alpha threshold). double: std::exp per lane.
inline Vec<float>::type vexp(Vec<float>::type x) {
    typedef Vec<float>::type V;
    typedef Vec<float>::itype I;
    x = x < splat<V>(-87.0f) ? splat<V>(-87.0f) : x;
    x = x > splat<V>(88.0f) ? splat<V>(88.0f) : x;
    const V magic = splat<V>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    V t = x * 1.44269504088896341f + magic;
    V n = t - magic;
    I ni;
    std::memcpy(&ni, &t, sizeof(I));
    I mbits;
    std::memcpy(&mbits, &magic, sizeof(I));
    ni = ni - mbits;  // round(x / ln 2) as integers
    V r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    V p = splat<V>(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    I pb;
    std::memcpy(&pb, &p, sizeof(I));
    pb = pb + (ni << 23);
    V out;
    std::memcpy(&out, &pb, sizeof(V));
    return out;
}

inline Vec<double>::type vexp(Vec<double>::type x) {
    Vec<double>::type out;
    for (int l = 0; l < LANES; ++l) out[l] = std::exp(x[l]);
    return out;
}

// Whether any lane of a comparison mask is set (OR of its 64-bit words: no per-lane branches).
template <typename M>
inline bool any_lane(M m) {
    uint64_t w[sizeof(M) / 8];
    std::memcpy(w, &m, sizeof(M));
    uint64_t o = 0;
    for (size_t i = 0; i < sizeof(M) / 8; ++i) o |= w[i];
    return o != 0;
}

// Lane i of the result = the sum of the lanes of v[i] (i < LANES): a transposing tree of shuffles and adds, far
// fewer instructions than LANES separate hsums (compilers without __builtin_shufflevector: separate hsums).
template <typename V>
inline V hsum_lanes(const V* v) {
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    auto pairs = [](V x, V y) {  // [x0+x1, y0+y1, x2+x3, y2+y3, ...]
        return __builtin_shufflevector(x, y, 0, 8, 2, 10, 4, 12, 6, 14) +
               __builtin_shufflevector(x, y, 1, 9, 3, 11, 5, 13, 7, 15);
    };
    auto quads = [](V x, V y) {
        return __builtin_shufflevector(x, y, 0, 1, 8, 9, 4, 5, 12, 13) +
               __builtin_shufflevector(x, y, 2, 3, 10, 11, 6, 7, 14, 15);
    };
    const V e = quads(pairs(v[0], v[1]), pairs(v[2], v[3])), f = quads(pairs(v[4], v[5]), pairs(v[6], v[7]));
    return __builtin_shufflevector(e, f, 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(e, f, 4, 5, 6, 7, 12, 13, 14, 15);
#else
    V out;
    for (int i = 0; i < LANES; ++i) out[i] = hsum(v[i]);
    return out;
#endif
}

// Run fn(thread_id, item) for items [0, n) pulled dynamically from a shared counter by n_threads threads.
template <typename Fn>
void parallel_dynamic(int n, int n_threads, Fn fn) {
    int nt = std::max(1, std::min(n_threads, n));
    std::atomic<int> next{0};
    auto worker = [&](int tid) {
        for (int i = next++; i < n; i = next++) fn(tid, i);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < nt; ++t) pool.emplace_back(worker, t);
    worker(0);
    for (auto& th : pool) th.join();
}

// Packed per-Gaussian data in depth order (one cache line for float).
// PK_RECT: the tile rectangle (4 x int32, bytes of slots 12..15), which travels with the row through the depth sort
enum { PK_MX, PK_MY, PK_CA, PK_CB, PK_CC, PK_OP, PK_R, PK_G, PK_B, PK_Z, PK_EY, PK_R2, PK_RECT, PK_N = 16 };
static_assert((PK_N - PK_RECT) * sizeof(float) >= 4 * sizeof(int32_t), "room for the tile rectangle");
template <typename T>
struct alignas(64) Row {  // one cache line (two for double)
    T v[PK_N];
};


template <typename T>
int floor_clamped(T v, int lo, int hi) {
    return (int)std::floor(std::max(T(lo), std::min(T(hi), v)));
}

// Minimum over the rectangle [xa, xb] x [ya, yb] of q(d) = a dx^2 + 2 b dx dy + c dy^2 (a, c > 0).
template <typename T>
T min_quadratic_on_rect(T a, T b, T c, T xa, T xb, T ya, T yb) {
    if (xa <= 0 && 0 <= xb && ya <= 0 && 0 <= yb) return T(0);
    auto q = [&](T x, T y) { return a * x * x + T(2) * b * x * y + c * y * y; };
    T best = std::numeric_limits<T>::infinity();
    for (T y : {ya, yb}) best = std::min(best, q(std::max(xa, std::min(xb, -b * y / a)), y));
    for (T x : {xa, xb}) best = std::min(best, q(x, std::max(ya, std::min(yb, -b * x / c))));
    return best;
}

// Rows [r0, r1] of the tile starting at image row ty0 whose pixel centres lie within ey of my.
template <typename T>
inline void row_range(T my, T ey, int ty0, int& r0, int& r1) {
    const T lo = my - ey - T(ty0) - T(0.5), hi = my + ey - T(ty0) - T(0.5);
    r0 = (int)std::floor(std::max(T(-1), std::min(T(TILE), lo)));
    r1 = (int)std::ceil(std::max(T(-1), std::min(T(TILE), hi)));
    r0 = std::max(r0, 0);
    r1 = std::min(r1, TILE - 1);
}

// Quaternion (w, x, y, z), normalised, to a row-major rotation matrix.
template <typename T>
void quat_to_rot(const T* q, T* R, T& norm) {
    norm = std::max(std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]), T(1e-12));
    const T w = q[0] / norm, x = q[1] / norm, y = q[2] / norm, z = q[3] / norm;
    R[0] = 1 - 2 * (y * y + z * z), R[1] = 2 * (x * y - w * z), R[2] = 2 * (x * z + w * y);
    R[3] = 2 * (x * y + w * z), R[4] = 1 - 2 * (x * x + z * z), R[5] = 2 * (y * z - w * x);
    R[6] = 2 * (x * z - w * y), R[7] = 2 * (y * z + w * x), R[8] = 1 - 2 * (x * x + y * y);
}

// Everything the projection of one Gaussian computes (shared by forward and backward).
template <typename T>
struct Proj {
    T p[3], zs, u, v, tx, ty, txr, tyr, qn, s[3], M[9], S[6], a, b, c, det, op;
    bool ok;
};

template <typename T>
struct Context {
    int64_t G = 0;
    int H = 0, W = 0, tiles_x = 0, tiles_y = 0;
    T cam[16];                     // R_wc (9, row-major), t_wc (3), fx, fy, cx, cy
    std::vector<int32_t> order;    // visible Gaussian ids, front to back (rank -> id)
    std::vector<int32_t> rank_of;  // (G) id -> rank, -1 for culled Gaussians (kept for the backward pass)
    std::vector<Row<T>> pk;        // (V, PK_N) packed projected data by rank
    std::vector<int64_t> offsets;  // (n_tiles + 1) into entries
    std::vector<int32_t> entries;  // ranks, per tile in depth order
    std::vector<T> final_T;        // (H * W) transmittance after compositing
    std::vector<int32_t> last;     // (H * W) 1 + list position of the last Gaussian taken (0: none)
    std::vector<Proj<T>> proj;     // (G) projection intermediates for the backward pass (when kept)
    // scratch reused between calls (contexts are recycled, so big buffers are not page-faulted in every call)
    std::vector<Row<T>> rows;               // (G) packed data by id
    std::vector<uint8_t> vis;               // (G) visible
    std::vector<std::vector<int32_t>> hits;  // per binning thread, in rank order: entry positions, -1 ends a rank
    typedef typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type Key;
    std::vector<Key> keys, keys2;           // depth sort: keys
    std::vector<int32_t> sorted;            // depth sort: ids
    std::vector<T> egrad;                   // (entries, NF) backward: gradient sums per tile entry
    std::vector<T> gsum;                    // (V, NF) backward: their per-Gaussian totals
};

// A small pool of finished contexts whose buffers (with their pages) are reused by the next calls.
template <typename T>
struct Pool {
    std::mutex mu;
    std::vector<Context<T>*> free;
    Context<T>* get() {
        std::lock_guard<std::mutex> lock(mu);
        if (free.empty()) return new Context<T>();
        Context<T>* c = free.back();
        free.pop_back();
        c->order.clear();
        return c;
    }
    void put(Context<T>* c) {
        std::lock_guard<std::mutex> lock(mu);
        if (free.size() < 2)
            free.push_back(c);
        else
            delete c;
    }
};
template <typename T>
Pool<T>& pool() {
    static Pool<T>* p = new Pool<T>();  // never destroyed: contexts may be returned during interpreter shutdown
    return *p;
}

template <typename T>
void project_one(const T* cam, int H, int W, T near, const T* m, const T* q, const T* ls, T logit, Proj<T>& P) {
    const T* R = cam;
    const T* t = cam + 9;
    const T fx = cam[12], fy = cam[13], cx = cam[14], cy = cam[15];
    for (int i = 0; i < 3; ++i) P.p[i] = R[3 * i] * m[0] + R[3 * i + 1] * m[1] + R[3 * i + 2] * m[2] + t[i];
    const T z = P.p[2];
    const bool in_front = z > near;
    P.zs = in_front ? z : T(1);
    P.u = fx * P.p[0] / P.zs + cx;
    P.v = fy * P.p[1] / P.zs + cy;
    T Rq[9];
    quat_to_rot(q, Rq, P.qn);
    for (int j = 0; j < 3; ++j) P.s[j] = std::exp(ls[j]);
    // M = R_wc Rq diag(s); S = M M^T (upper triangle 00 01 02 11 12 22)
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            P.M[3 * i + j] = (R[3 * i] * Rq[j] + R[3 * i + 1] * Rq[3 + j] + R[3 * i + 2] * Rq[6 + j]) * P.s[j];
    auto dot = [&](int i, int k) {
        return P.M[3 * i] * P.M[3 * k] + P.M[3 * i + 1] * P.M[3 * k + 1] + P.M[3 * i + 2] * P.M[3 * k + 2];
    };
    P.S[0] = dot(0, 0), P.S[1] = dot(0, 1), P.S[2] = dot(0, 2), P.S[3] = dot(1, 1), P.S[4] = dot(1, 2);
    P.S[5] = dot(2, 2);
    const T slack_x = T(FOV_CLAMP - 1.0) * T(0.5) * T(W) / fx, slack_y = T(FOV_CLAMP - 1.0) * T(0.5) * T(H) / fy;
    P.txr = P.p[0] / P.zs;
    P.tyr = P.p[1] / P.zs;
    P.tx = std::min(std::max(P.txr, -(cx / fx + slack_x)), (T(W) - cx) / fx + slack_x);
    P.ty = std::min(std::max(P.tyr, -(cy / fy + slack_y)), (T(H) - cy) / fy + slack_y);
    const T j00 = fx / P.zs, j02 = -fx * P.tx / P.zs, j11 = fy / P.zs, j12 = -fy * P.ty / P.zs;
    // cov2d = J S J^T with J = [[j00, 0, j02], [0, j11, j12]]
    const T S00 = P.S[0], S01 = P.S[1], S02 = P.S[2], S11 = P.S[3], S12 = P.S[4], S22 = P.S[5];
    P.a = j00 * (j00 * S00 + j02 * S02) + j02 * (j00 * S02 + j02 * S22) + T(LOWPASS);
    P.b = j00 * (j11 * S01 + j12 * S02) + j02 * (j11 * S12 + j12 * S22);
    P.c = j11 * (j11 * S11 + j12 * S12) + j12 * (j11 * S12 + j12 * S22) + T(LOWPASS);
    P.det = P.a * P.c - P.b * P.b;
    P.ok = in_front && P.det > 0;
    P.op = T(1) / (T(1) + std::exp(-logit));
}

// Stage 1: project every Gaussian (parallel); per Gaussian: packed data, tile rectangle, visibility. Twin:
// projection.project_gaussians. Fills ctx->rows (by id), ctx->vis and, when kept, ctx->proj.
template <typename T>
void project_stage(Context<T>* ctx, const T* means, const T* quats, const T* log_scales, const T* logits,
                   const T* colors, T near, int n_threads, bool keep) {
    const int64_t G = ctx->G;
    const int H = ctx->H, W = ctx->W, tiles_x = ctx->tiles_x, tiles_y = ctx->tiles_y;
    const T* cam = ctx->cam;
    std::vector<Row<T>>& rows = ctx->rows;
    rows.resize(G);
    T* pk_all = reinterpret_cast<T*>(rows.data());
    std::vector<uint8_t>& vis = ctx->vis;
    vis.resize(G);
    if (keep) ctx->proj.resize(G);
    parallel_range(G, n_threads, 4096, [&](int64_t g0, int64_t g1) {
        Proj<T> P;
        for (int64_t g = g0; g < g1; ++g) {
            project_one(cam, H, W, near, means + 3 * g, quats + 4 * g, log_scales + 3 * g, logits[g], P);
            T* k = &pk_all[(size_t)g * PK_N];
            const T inv = P.ok ? T(1) / P.det : T(1);
            k[PK_MX] = P.u, k[PK_MY] = P.v;
            k[PK_CA] = P.c * inv, k[PK_CB] = -P.b * inv, k[PK_CC] = P.a * inv;
            k[PK_OP] = P.op;
            k[PK_R] = colors[3 * g], k[PK_G] = colors[3 * g + 1], k[PK_B] = colors[3 * g + 2];
            k[PK_Z] = P.p[2];
            const T r2 = std::max(T(2) * std::log(P.op / T(ALPHA_MIN)), T(0));
            const T ex = P.ok ? std::sqrt(std::max(r2 * P.a, T(0))) : T(0);
            const T ey = P.ok ? std::sqrt(std::max(r2 * P.c, T(0))) : T(0);
            k[PK_EY] = ey * T(1.001) + T(1e-3);  // rows farther than this from the mean get alpha < ALPHA_MIN
            k[PK_R2] = r2 * T(1.001) + T(1e-3);
            bool v = P.ok && P.op >= T(ALPHA_MIN) && P.u + ex >= 0 && P.u - ex <= T(W) && P.v + ey >= 0 &&
                     P.v - ey <= T(H);
            int32_t rc[4] = {0, 0, 0, 0};
            if (v) {
                const T bx = ex * T(1.001) + T(1e-3), by = ey * T(1.001) + T(1e-3);  // rounding slack
                rc[0] = floor_clamped((P.u - bx) / TILE, 0, tiles_x - 1);
                rc[1] = floor_clamped((P.u + bx) / TILE, 0, tiles_x - 1);
                rc[2] = floor_clamped((P.v - by) / TILE, 0, tiles_y - 1);
                rc[3] = floor_clamped((P.v + by) / TILE, 0, tiles_y - 1);
            }
            std::memcpy(&k[PK_RECT], rc, sizeof(rc));
            vis[g] = v;
            if (keep) ctx->proj[g] = P;
        }
    });
}

// Stage 2: stable sort of the visible Gaussians by depth: LSD radix sort on the bits of z > 0 (which order like z),
// taken relative to the smallest key, on just the bits that vary, in passes of at most 12 bits. Twin:
// projection.sorted_visible. Fills ctx->order (rank -> id), ctx->pk (by rank) and, when kept, ctx->rank_of.
template <typename T>
void sort_stage(Context<T>* ctx, int n_threads, bool keep) {
    const int64_t G = ctx->G;
    const std::vector<Row<T>>& rows = ctx->rows;
    const T* pk_all = reinterpret_cast<const T*>(rows.data());
    const std::vector<uint8_t>& vis = ctx->vis;
    std::vector<int32_t>& order = ctx->order;
    for (int64_t g = 0; g < G; ++g)
        if (vis[g]) order.push_back((int32_t)g);
    const int64_t nv = (int64_t)order.size();
    {
        typedef typename Context<T>::Key K;
        std::vector<K>&keys = ctx->keys, &keys2 = ctx->keys2;
        std::vector<int32_t>& tmp = ctx->sorted;
        keys.resize(nv), keys2.resize(nv), tmp.resize(nv);
        K kmin = std::numeric_limits<K>::max(), krange = 0;
        for (int64_t i = 0; i < nv; ++i) {
            std::memcpy(&keys[i], &pk_all[(size_t)order[i] * PK_N + PK_Z], sizeof(K));
            kmin = std::min(kmin, keys[i]);
        }
        for (int64_t i = 0; i < nv; ++i) krange = std::max(krange, keys[i] -= kmin);
        int n_bits = 0;
        while (n_bits < (int)(8 * sizeof(K)) && (krange >> n_bits) != 0) ++n_bits;
        const int passes = (n_bits + 11) / 12, bits = passes > 0 ? (n_bits + passes - 1) / passes : 1;
        const K mask = (K(1) << bits) - 1;
        std::vector<int64_t> count((size_t)1 << bits);
        for (int shift = 0; shift < passes * bits; shift += bits) {
            std::fill(count.begin(), count.end(), 0);
            for (int64_t i = 0; i < nv; ++i) count[(keys[i] >> shift) & mask]++;
            if (count[(keys[0] >> shift) & mask] == nv) continue;  // all equal
            int64_t sum = 0;
            for (auto& c : count) {
                const int64_t c0 = c;
                c = sum;
                sum += c0;
            }
            for (int64_t i = 0; i < nv; ++i) {
                const int64_t dst = count[(keys[i] >> shift) & mask]++;
                keys2[dst] = keys[i];
                tmp[dst] = order[i];
            }
            keys.swap(keys2);
            order.swap(tmp);
        }
    }
    if (keep) {
        ctx->rank_of.assign(G, -1);
        for (int64_t i = 0; i < nv; ++i) ctx->rank_of[order[i]] = (int32_t)i;
    }
    ctx->pk.resize((size_t)nv);
    parallel_range(nv, n_threads, 8192, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
            ctx->pk[i] = rows[order[i]];
    });
}

// Stage 3: tile lists in depth order: each thread takes a contiguous range of ranks and records its (tile, rank) hits
// with per-tile counts; the lists are then filled thread by thread, which keeps the depth order. No twin (the
// reference composites every pixel against every Gaussian; the lists only leave out pairs whose alpha is below
// 1/255). Fills ctx->hits, ctx->offsets and ctx->entries.
template <typename T>
void bin_stage(Context<T>* ctx, int n_threads) {
    const int tiles_x = ctx->tiles_x, n_tiles = ctx->tiles_x * ctx->tiles_y;
    const int64_t nv = (int64_t)ctx->order.size();
    const T* pk = reinterpret_cast<const T*>(ctx->pk.data());
    const int nt = (int)std::max<int64_t>(1, std::min<int64_t>(n_threads, nv / 4096));
    std::vector<std::vector<int64_t>> cnt(nt, std::vector<int64_t>(n_tiles + 1, 0));
    std::vector<std::vector<int32_t>>& hits = ctx->hits;  // tile ids, in rank order, per thread
    hits.resize(nt);
    for (auto& h : hits) h.clear();
    parallel_dynamic(nt, nt, [&](int, int t) {
        const int64_t i0 = nv * t / nt, i1 = nv * (t + 1) / nt;
        std::vector<int64_t>& c = cnt[t];
        std::vector<int32_t>& h = hits[t];
        h.reserve((size_t)(i1 - i0) * 4);
        for (int64_t i = i0; i < i1; ++i) {
            const T* k = pk + (size_t)i * PK_N;
            int32_t rc[4];
            std::memcpy(rc, &k[PK_RECT], sizeof(rc));
            const bool test = (rc[1] - rc[0] + 1) * (rc[3] - rc[2] + 1) > 2;  // small boxes: keep every tile
            for (int ty = rc[2]; ty <= rc[3]; ++ty)
                for (int tx = rc[0]; tx <= rc[1]; ++tx) {
                    if (test) {
                        // does the alpha >= ALPHA_MIN ellipse (slightly widened) meet the tile's pixel centres?
                        const T xa = T(tx * TILE) - k[PK_MX], xb = T(tx * TILE + TILE) - k[PK_MX];
                        const T ya = T(ty * TILE) - k[PK_MY], yb = T(ty * TILE + TILE) - k[PK_MY];
                        if (min_quadratic_on_rect(k[PK_CA], k[PK_CB], k[PK_CC], xa, xb, ya, yb) > k[PK_R2]) continue;
                    }
                    const int tile = ty * tiles_x + tx;
                    h.push_back(tile);
                    c[tile]++;
                }
            h.push_back(-1);  // end of rank i
        }
    });
    ctx->offsets.assign(n_tiles + 1, 0);
    int64_t total = 0;
    for (int tile = 0; tile < n_tiles; ++tile) {
        ctx->offsets[tile] = total;
        for (int t = 0; t < nt; ++t) {
            const int64_t c0 = cnt[t][tile];
            cnt[t][tile] = total;  // becomes this thread's write position in the tile
            total += c0;
        }
    }
    ctx->offsets[n_tiles] = total;
    ctx->entries.resize(total);
    parallel_dynamic(nt, nt, [&](int, int t) {
        int64_t i = nv * t / nt;
        std::vector<int64_t>& c = cnt[t];
        for (int32_t& h : hits[t]) {
            if (h < 0) {
                ++i;
            } else {
                const int64_t pos = c[h]++;
                ctx->entries[pos] = (int32_t)i;
                h = (int32_t)pos;  // the backward pass sums each Gaussian's entries in this fixed order
            }
        }
    });
}

// Stage 4: composite every tile: 8 rows x 8 lanes of pixel state, Gaussians front to back. Twin:
// reference.composite_reference. Writes the outputs, ctx->final_T and ctx->last.
template <typename T>
void composite_stage(Context<T>* ctx, T t_stop, int n_threads, T* out_color, T* out_alpha, T* out_depth) {
    typedef typename Vec<T>::type V;
    typedef typename Vec<T>::itype I;
    const int H = ctx->H, W = ctx->W, tiles_x = ctx->tiles_x, n_tiles = ctx->tiles_x * ctx->tiles_y;
    const T* pk = reinterpret_cast<const T*>(ctx->pk.data());
    ctx->final_T.assign((size_t)H * W, T(1));
    ctx->last.assign((size_t)H * W, 0);
    parallel_dynamic(n_tiles, n_threads, [&](int, int tile) {
        const int tx0 = (tile % tiles_x) * TILE, ty0 = (tile / tiles_x) * TILE;
        V px;
        for (int l = 0; l < LANES; ++l) px[l] = T(tx0 + l) + T(0.5);
        V Tr[TILE], cr[TILE], cg[TILE], cb[TILE], dep[TILE], acc[TILE];
        I lst[TILE];
        for (int r = 0; r < TILE; ++r) {
            Tr[r] = splat<V>(T(1));
            cr[r] = cg[r] = cb[r] = dep[r] = acc[r] = splat<V>(T(0));
            lst[r] = splat<I>(0);
        }
        const V amin = splat<V>(T(ALPHA_MIN)), amax = splat<V>(T(ALPHA_MAX)), tstop = splat<V>(t_stop);
        const V zero = splat<V>(T(0));
        const int64_t s = ctx->offsets[tile], e = ctx->offsets[tile + 1];
        for (int64_t j = s; j < e; ++j) {
            if (j + 4 < e) __builtin_prefetch(pk + (size_t)ctx->entries[j + 4] * PK_N);
            const T* k = pk + (size_t)ctx->entries[j] * PK_N;
            const T mx = k[PK_MX], my = k[PK_MY], ca = k[PK_CA], cbb = k[PK_CB], cc = k[PK_CC], op = k[PK_OP];
            const T ey = k[PK_EY];
            const V dx = px - mx;
            const V hdx2 = T(-0.5) * ca * dx * dx;
            const typename Vec<T>::ielem kk = (typename Vec<T>::ielem)(j - s + 1);
            int r0, r1;
            row_range(my, ey, ty0, r0, r1);
            for (int r = r0; r <= r1; ++r) {
                const auto live = Tr[r] >= tstop;
                if (!any_lane(live)) continue;  // the whole row is saturated
                const T dy = T(ty0 + r) + T(0.5) - my;
                const V power = hdx2 + (T(-0.5) * cc * dy * dy) - (cbb * dy) * dx;
                V alpha = op * vexp(power);
                alpha = alpha < amax ? alpha : amax;
                const auto ok = (alpha >= amin) & live;
                const V a = ok ? alpha : zero;
                const V w = a * Tr[r];
                cr[r] += w * k[PK_R];
                cg[r] += w * k[PK_G];
                cb[r] += w * k[PK_B];
                dep[r] += w * k[PK_Z];
                acc[r] += w;
                Tr[r] = Tr[r] * (T(1) - a);
                lst[r] = ok ? splat<I>(kk) : lst[r];
            }
            if (((j - s) & 7) == 7) {
                auto alive = Tr[0] >= tstop;
                for (int r = 1; r < TILE; ++r) alive |= Tr[r] >= tstop;
                if (!any_lane(alive)) break;
            }
        }
        for (int r = 0; r < TILE && ty0 + r < H; ++r) {
            for (int l = 0; l < LANES && tx0 + l < W; ++l) {
                const int64_t p = (int64_t)(ty0 + r) * W + tx0 + l;
                out_color[3 * p] = cr[r][l];
                out_color[3 * p + 1] = cg[r][l];
                out_color[3 * p + 2] = cb[r][l];
                out_alpha[p] = acc[r][l];
                out_depth[p] = dep[r][l];
                ctx->final_T[p] = Tr[r][l];
                ctx->last[p] = (int32_t)lst[r][l];
            }
        }
    });
}

// The forward pass: stages 1-4 on a recycled context, which the caller keeps for the backward pass or frees.
template <typename T>
Context<T>* forward(int64_t G, const T* means, const T* quats, const T* log_scales, const T* logits, const T* colors,
                    const T* cam, int H, int W, T near, T t_stop, int n_threads, bool keep, T* out_color,
                    T* out_alpha, T* out_depth) {
    Context<T>* ctx = pool<T>().get();
    ctx->G = G, ctx->H = H, ctx->W = W;
    std::memcpy(ctx->cam, cam, sizeof(ctx->cam));
    ctx->tiles_x = (W + TILE - 1) / TILE, ctx->tiles_y = (H + TILE - 1) / TILE;
    project_stage(ctx, means, quats, log_scales, logits, colors, near, n_threads, keep);
    sort_stage(ctx, n_threads, keep);
    bin_stage(ctx, n_threads);
    composite_stage(ctx, t_stop, n_threads, out_color, out_alpha, out_depth);
    return ctx;
}

// Backward stage 1 (stage 4 in reverse): walk each tile's list back to front, recovering the transmittance by
// division, and write every tile entry's gradient row (mean2d 2, conic 3, opacity 1, colour 3, depth 1). Every entry
// gets its own row (no races, no per-thread buffers); stage 2 sums each Gaussian's rows in a fixed order, so results
// do not depend on the number of threads or on scheduling.
constexpr int NF = 10;
template <typename T>
void composite_backward_stage(Context<T>* ctx, const T* g_color, const T* g_alpha, const T* g_depth, int n_threads) {
    typedef typename Vec<T>::type V;
    typedef typename Vec<T>::itype I;
    const int H = ctx->H, W = ctx->W, tiles_x = ctx->tiles_x, n_tiles = ctx->tiles_x * ctx->tiles_y;
    const T* pk = reinterpret_cast<const T*>(ctx->pk.data());
    const int nt = std::max(1, std::min(n_threads, n_tiles));
    std::vector<T>& egrad = ctx->egrad;
    egrad.resize(ctx->entries.size() * NF);
    parallel_dynamic(n_tiles, nt, [&](int, int tile) {
        const int tx0 = (tile % tiles_x) * TILE, ty0 = (tile / tiles_x) * TILE;
        V px;
        for (int l = 0; l < LANES; ++l) px[l] = T(tx0 + l) + T(0.5);
        V Tr[TILE], suf[TILE], gr[TILE], gg[TILE], gb[TILE], ga[TILE], gd[TILE];
        I lst[TILE];
        int kmax = 0;
        for (int r = 0; r < TILE; ++r) {
            Tr[r] = splat<V>(T(1));
            suf[r] = gr[r] = gg[r] = gb[r] = ga[r] = gd[r] = splat<V>(T(0));
            lst[r] = splat<I>(0);
            if (ty0 + r >= H) continue;
            for (int l = 0; l < LANES && tx0 + l < W; ++l) {
                const int64_t p = (int64_t)(ty0 + r) * W + tx0 + l;
                Tr[r][l] = ctx->final_T[p];
                lst[r][l] = ctx->last[p];
                kmax = std::max(kmax, ctx->last[p]);
                gr[r][l] = g_color[3 * p], gg[r][l] = g_color[3 * p + 1], gb[r][l] = g_color[3 * p + 2];
                ga[r][l] = g_alpha[p], gd[r][l] = g_depth[p];
            }
        }
        const V amin = splat<V>(T(ALPHA_MIN)), amax = splat<V>(T(ALPHA_MAX)), zero = splat<V>(T(0));
        const int64_t s = ctx->offsets[tile], e = ctx->offsets[tile + 1];
        std::fill(egrad.begin() + (s + kmax) * NF, egrad.begin() + e * NF, T(0));  // never reached
        for (int64_t j = s + kmax - 1; j >= s; --j) {
            const int32_t rank = ctx->entries[j];
            if (j - 4 >= s) {
                __builtin_prefetch(pk + (size_t)ctx->entries[j - 4] * PK_N);
            }
            const T* k = pk + (size_t)rank * PK_N;
            const T mx = k[PK_MX], my = k[PK_MY], ca = k[PK_CA], cbb = k[PK_CB], cc = k[PK_CC], op = k[PK_OP];
            const T fr = k[PK_R], fg = k[PK_G], fb = k[PK_B], fz = k[PK_Z], ey = k[PK_EY];
            const V dx = px - mx;
            const V hdx2 = T(-0.5) * ca * dx * dx;
            const typename Vec<T>::ielem kk = (typename Vec<T>::ielem)(j - s);
            int r0, r1;
            row_range(my, ey, ty0, r0, r1);
            V s_r = zero, s_g = zero, s_b = zero, s_z = zero, s_op = zero, s_mx = zero, s_my = zero;
            V s_ca = zero, s_cb = zero, s_cc = zero;
            bool any = false;
            for (int r = r0; r <= r1; ++r) {
                const auto live = splat<I>(kk) < lst[r];
                if (!any_lane(live)) continue;  // every pixel of the row stopped before this Gaussian
                const T dy = T(ty0 + r) + T(0.5) - my;
                const V power = hdx2 + (T(-0.5) * cc * dy * dy) - (cbb * dy) * dx;
                const V gauss = vexp(power);
                const V raw = op * gauss;
                const V alpha = raw < amax ? raw : amax;
                const auto ok = (alpha >= amin) & live;
                if (!any_lane(ok)) continue;
                any = true;
                const V a = ok ? alpha : zero;
                const V one_m = T(1) - a;
                const V inv_m = T(1) / one_m;
                const V Tb = Tr[r] * inv_m;  // transmittance before this Gaussian
                const V w = a * Tb;
                const V gf = gr[r] * fr + gg[r] * fg + gb[r] * fb + gd[r] * fz + ga[r];
                const V d_alpha = Tb * gf - suf[r] * inv_m;
                suf[r] += w * gf;
                Tr[r] = Tb;
                s_r += w * gr[r];
                s_g += w * gg[r];
                s_b += w * gb[r];
                s_z += w * gd[r];
                const V dal = (ok & (raw <= amax)) ? d_alpha : zero;  // clamped alpha: no gradient
                s_op += dal * gauss;
                const V dp = dal * alpha;
                const T dyv = dy;
                s_mx += dp * (ca * dx + cbb * dyv);
                s_my += dp * (cbb * dx + cc * dyv);
                s_ca += T(-0.5) * dp * dx * dx;
                s_cb -= dp * dx * dyv;
                s_cc += (T(-0.5) * dyv * dyv) * dp;
            }
            T* b = &egrad[(size_t)j * NF];
            if (!any) {
                std::fill(b, b + NF, T(0));
                continue;
            }
            const V first[LANES] = {s_mx, s_my, s_ca, s_cb, s_cc, s_op, s_r, s_g};
            const V sums = hsum_lanes(first);
            std::memcpy(b, &sums, sizeof(V));
            b[8] = hsum(s_b), b[9] = hsum(s_z);
        }
    });
}

// Backward stage 2: per-Gaussian totals (ctx->gsum, by rank) of the entry rows, ranks in order, each Gaussian's
// entries in tile order (the order stage 3 of the forward pass recorded in ctx->hits).
template <typename T>
void sum_backward_stage(Context<T>* ctx, int n_threads) {
    const int64_t nv = (int64_t)ctx->order.size();
    const std::vector<T>& egrad = ctx->egrad;
    std::vector<T>& gsum_all = ctx->gsum;
    gsum_all.resize((size_t)nv * NF);
    const int n_bin = (int)ctx->hits.size();
    parallel_dynamic(n_bin, n_threads, [&](int, int t) {
        int64_t i = nv * t / n_bin;
        T acc[NF] = {};
        for (const int32_t h : ctx->hits[t]) {
            if (h < 0) {
                std::copy(acc, acc + NF, &gsum_all[(size_t)i * NF]);
                std::fill(acc, acc + NF, T(0));
                ++i;
            } else {
                const T* b = &egrad[(size_t)h * NF];
                for (int f = 0; f < NF; ++f) acc[f] += b[f];
            }
        }
    });
}

// Backward stage 3 (stage 1 in reverse): the projection's gradient per visible Gaussian w.r.t. means (G,3), quats
// (G,4), log_scales (G,3), opacity logits (G) and colors (G,3); the outputs must be zero-initialised by the caller
// (invisible Gaussians keep zeros).
template <typename T>
void project_backward_stage(Context<T>* ctx, const T* quats, int n_threads, T* d_means, T* d_quats, T* d_log_scales,
                            T* d_logits, T* d_colors) {
    const std::vector<T>& gsum_all = ctx->gsum;
    const T* cam = ctx->cam;
    // in id order, so the per-Gaussian inputs and outputs stream; the rank-indexed sums are prefetched
    const int32_t* rank_of = ctx->rank_of.data();
    parallel_range(ctx->G, n_threads, 4096, [&](int64_t g0, int64_t g1) {
        T gsum[NF];
        for (int64_t g = g0; g < g1; ++g) {
            const int32_t i = rank_of[g];
            if (g + 16 < g1 && rank_of[g + 16] >= 0) __builtin_prefetch(&gsum_all[(size_t)rank_of[g + 16] * NF]);
            if (i < 0) continue;
            std::copy(&gsum_all[(size_t)i * NF], &gsum_all[(size_t)i * NF] + NF, gsum);
            const Proj<T>& P = ctx->proj[g];
            const T* R = cam;
            const T fx = cam[12], fy = cam[13];
            const T du = gsum[0], dv = gsum[1], gC0 = gsum[2], gC1 = gsum[3], gC2 = gsum[4];
            d_colors[3 * g] = gsum[6], d_colors[3 * g + 1] = gsum[7], d_colors[3 * g + 2] = gsum[8];
            d_logits[g] = gsum[5] * P.op * (T(1) - P.op);
            // conic (c, -b, a) / det -> (a, b, c) of the 2D covariance
            const T a = P.a, b = P.b, c = P.c, det = P.det, d2 = det * det;
            const T ga = (-c * c * gC0 + b * c * gC1 - b * b * gC2) / d2;
            const T gb = (2 * b * c * gC0 - (det + 2 * b * b) * gC1 + 2 * a * b * gC2) / d2;
            const T gc = (-b * b * gC0 + a * b * gC1 - a * a * gC2) / d2;
            // cov2d = J S J^T; symmetric gradient Gs = [[ga, gb/2], [gb/2, gc]]
            const T z = P.zs;
            const T j00 = fx / z, j02 = -fx * P.tx / z, j11 = fy / z, j12 = -fy * P.ty / z;
            const T J[6] = {j00, 0, j02, 0, j11, j12};
            const T Gs[4] = {ga, gb / 2, gb / 2, gc};
            T Sm[9] = {P.S[0], P.S[1], P.S[2], P.S[1], P.S[3], P.S[4], P.S[2], P.S[4], P.S[5]};
            // dJ = 2 Gs J S
            T JS[6];
            for (int r = 0; r < 2; ++r)
                for (int col = 0; col < 3; ++col)
                    JS[3 * r + col] = J[3 * r] * Sm[col] + J[3 * r + 1] * Sm[3 + col] + J[3 * r + 2] * Sm[6 + col];
            T dJ[6];
            for (int r = 0; r < 2; ++r)
                for (int col = 0; col < 3; ++col)
                    dJ[3 * r + col] = 2 * (Gs[2 * r] * JS[col] + Gs[2 * r + 1] * JS[3 + col]);
            // dS = J^T Gs J (symmetric); dM = 2 dS M
            T GJ[6];
            for (int r = 0; r < 2; ++r)
                for (int col = 0; col < 3; ++col) GJ[3 * r + col] = Gs[2 * r] * J[col] + Gs[2 * r + 1] * J[3 + col];
            T dS[9];
            for (int r = 0; r < 3; ++r)
                for (int col = 0; col < 3; ++col) dS[3 * r + col] = J[r] * GJ[col] + J[3 + r] * GJ[3 + col];
            T dM[9];
            for (int r = 0; r < 3; ++r)
                for (int col = 0; col < 3; ++col)
                    dM[3 * r + col] =
                        2 * (dS[3 * r] * P.M[col] + dS[3 * r + 1] * P.M[3 + col] + dS[3 * r + 2] * P.M[6 + col]);
            // M = R_wc Rq diag(s): dRq = R_wc^T dM diag(s), ds_j = sum_i (R_wc Rq)_ij dM_ij
            T dRq[9];
            for (int r = 0; r < 3; ++r)
                for (int col = 0; col < 3; ++col) {
                    const T rd = R[r] * dM[col] + R[3 + r] * dM[3 + col] + R[6 + r] * dM[6 + col];
                    dRq[3 * r + col] = rd * P.s[col];
                }
            for (int col = 0; col < 3; ++col) {
                T ds = 0;
                for (int r = 0; r < 3; ++r) ds += P.M[3 * r + col] * dM[3 * r + col];
                d_log_scales[3 * g + col] = ds;  // M_ij = (R Rq)_ij s_j, so dL/dlog s_j = sum_i M_ij dM_ij
            }
            // rotation matrix of the normalised quaternion -> its components, then through the normalisation
            const T qn = P.qn, w = quats[4 * g] / qn, x = quats[4 * g + 1] / qn, y = quats[4 * g + 2] / qn,
                    zq = quats[4 * g + 3] / qn;
            const T* D = dRq;
            T dq[4];
            dq[0] = 2 * (-zq * D[1] + y * D[2] + zq * D[3] - x * D[5] - y * D[6] + x * D[7]);
            dq[1] = 2 * (y * D[1] + zq * D[2] + y * D[3] - 2 * x * D[4] - w * D[5] + zq * D[6] + w * D[7] -
                         2 * x * D[8]);
            dq[2] = 2 * (-2 * y * D[0] + x * D[1] + w * D[2] + x * D[3] + zq * D[5] - w * D[6] + zq * D[7] -
                         2 * y * D[8]);
            dq[3] = 2 * (-2 * zq * D[0] - w * D[1] + x * D[2] + w * D[3] - 2 * zq * D[4] + y * D[5] + x * D[6] +
                         y * D[7]);
            const T qdot = w * dq[0] + x * dq[1] + y * dq[2] + zq * dq[3];
            const bool qclamped = qn <= T(1e-12);
            d_quats[4 * g] = qclamped ? dq[0] / qn : (dq[0] - w * qdot) / qn;
            d_quats[4 * g + 1] = qclamped ? dq[1] / qn : (dq[1] - x * qdot) / qn;
            d_quats[4 * g + 2] = qclamped ? dq[2] / qn : (dq[2] - y * qdot) / qn;
            d_quats[4 * g + 3] = qclamped ? dq[3] / qn : (dq[3] - zq * qdot) / qn;
            // J and the projected mean -> camera point p (tx, ty pass gradient only inside their clamp range)
            T dp[3] = {0, 0, 0};
            T dz = gsum[9];
            dp[0] += fx / z * du;
            dp[1] += fy / z * dv;
            dz += -fx * P.p[0] / (z * z) * du - fy * P.p[1] / (z * z) * dv;
            dz += (-fx * dJ[0] + fx * P.tx * dJ[2] - fy * dJ[4] + fy * P.ty * dJ[5]) / (z * z);
            const T dtx = -fx / z * dJ[2], dty = -fy / z * dJ[5];
            if (P.tx == P.txr) {
                dp[0] += dtx / z;
                dz += -dtx * P.p[0] / (z * z);
            }
            if (P.ty == P.tyr) {
                dp[1] += dty / z;
                dz += -dty * P.p[1] / (z * z);
            }
            dp[2] += dz;
            for (int col = 0; col < 3; ++col)
                d_means[3 * g + col] = R[col] * dp[0] + R[3 + col] * dp[1] + R[6 + col] * dp[2];
        }
    });
}

// The backward pass: stages 1-3 on the context of a forward pass made with keep (outputs zero-initialised).
template <typename T>
void backward(Context<T>* ctx, const T* quats, const T* g_color, const T* g_alpha, const T* g_depth, int n_threads,
              T* d_means, T* d_quats, T* d_log_scales, T* d_logits, T* d_colors) {
    composite_backward_stage(ctx, g_color, g_alpha, g_depth, n_threads);
    sum_backward_stage(ctx, n_threads);
    project_backward_stage(ctx, quats, n_threads, d_means, d_quats, d_log_scales, d_logits, d_colors);
}

}  // namespace

extern "C" {

#define WW_RASTER_EXPORT(SUFFIX, T)                                                                                \
    void* ww_forward_##SUFFIX(int64_t G, const T* means, const T* quats, const T* log_scales, const T* logits,     \
                              const T* colors, const T* cam, int H, int W, double near, double t_stop,             \
                              int n_threads, int keep, T* out_color, T* out_alpha, T* out_depth,                   \
                              int64_t* n_visible) {                                                                \
        Context<T>* ctx = forward<T>(G, means, quats, log_scales, logits, colors, cam, H, W, T(near), T(t_stop),  \
                                     n_threads, keep != 0, out_color, out_alpha, out_depth);                       \
        n_visible[0] = (int64_t)ctx->order.size();                                                                \
        n_visible[1] = (int64_t)ctx->entries.size();                                                              \
        return ctx;                                                                                                \
    }                                                                                                              \
    void ww_backward_##SUFFIX(void* ctx, const T* quats, const T* g_color, const T* g_alpha, const T* g_depth,    \
                              int n_threads, T* d_means, T* d_quats, T* d_log_scales, T* d_logits, T* d_colors) {  \
        backward<T>(static_cast<Context<T>*>(ctx), quats, g_color, g_alpha, g_depth, n_threads, d_means, d_quats,  \
                    d_log_scales, d_logits, d_colors);                                                             \
    }                                                                                                              \
    void ww_free_##SUFFIX(void* ctx) { pool<T>().put(static_cast<Context<T>*>(ctx)); }

WW_RASTER_EXPORT(f32, float)
WW_RASTER_EXPORT(f64, double)

}  // extern "C"
