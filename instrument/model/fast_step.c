/* The fast live step of the folk-rnn LSTM stack: AVX2 + FMA, float32 (or bf16) weights, B voices.
 *
 * Built by instrument/model/fast_step.py with gcc (-O3 -mavx2 -mfma -mf16c) at first use and loaded with ctypes.
 * Weights: float32, bf16 (prec 1) or IEEE half (prec 2, converted by F16C), products in float32.
 * One call to fs_step() runs every layer of one step for the active voices; fs_sample() then draws
 * the next token of every voice from uniforms the caller supplies (its seeded numpy generators).
 *
 * Layout (packed once by fast_step.py; Hp = hidden rounded up to 8, "group" = 8 units):
 *   w[l]     [Hp/8][K_l][32]  layer l's fused [W_ih | W_hh] columns: for the 8 units of a group,
 *                             their i, f, g, o gate columns side by side (lanes 0-7, 8-15, ...),
 *                             so one group's accumulators hold complete units. K_0 = Hp (layer 0's
 *                             input is a gather of rows of `gather`), K_l = 2 Hp for l > 0.
 *   gather   [V][4 Hp]        layer 0's input weights, one row per token, same column order.
 *   bias[l]  [4 Hp]           same column order.
 *   wout     [ceil(V/32)][Hp][32], bout [ceil(V/32)*32]
 * State (per voice b):
 *   in[l][b] = [x | h_prev] (layer 0: h_prev only), h[l][b] (the latest h, after silence),
 *   c[l][b], xo[b] (the input of the softmax layer), logits[b] (V floats).
 *
 * Work is split into chunks of unit groups claimed from an atomic ticket, so a second thread
 * that wakes late only takes fewer chunks; every output is summed in the same order whatever the
 * thread or voice count, so results do not depend on either.
 */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

/* The ABI version and the limits are defined once, in fast_step.py, and passed as -D flags (part of
 * the build's cache key): a kernel built for other limits is another file. */
#if !defined(FS_ABI) || !defined(FS_MAXL) || !defined(FS_MAX_VOCAB)
#error "build with -DFS_ABI=.. -DFS_MAXL=.. -DFS_MAX_VOCAB=.. (fast_step.py does)"
#endif
#define MAXL FS_MAXL
#define MAXB_TILE 2

typedef struct {
    int32_t layers, hp, vocab, voices, prec, kblock, keep_stride, pad1; /* keep_stride: 0 = masks shared, hp = a row per voice */
    const float *gather;
    const float *bias[MAXL];
    const void *w[MAXL];
    const float *wout, *bout;
    float *in[MAXL];
    float *h[MAXL];
    float *c[MAXL];
    float *xo;
    float *logits;
    const float *keep_out[MAXL];
    const float *keep_sil[MAXL];
    float *scratch; /* [2 threads][voices][32]: partial sums when the K loop is blocked */
} fs_net;

typedef struct {
    const fs_net *net;
    const int32_t *active; /* NULL: voices 0..nact-1 */
    int nact;
    const int32_t *hot_tok; /* [nact][maxhot] */
    const float *hot_w;
    const int32_t *nhot; /* [nact] */
    int maxhot;
    int layer_chunk; /* groups per chunk in a layer phase */
} fs_job;

/* ---------------------------------------------------------------- vector math */
static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static inline __m256 sigmoid256(__m256 x) {
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

static inline __m256 tanh256(__m256 x) { /* 2 sigmoid(2x) - 1 */
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp256(_mm256_mul_ps(x, _mm256_set1_ps(-2.0f)));
    return _mm256_sub_ps(_mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, e)), one);
}

/* ---------------------------------------------------------------- weight loads */
static inline __m256 ld_f32(const void *p, size_t i) { return _mm256_loadu_ps((const float *)p + i); }
static inline __m256 ld_f16(const void *p, size_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
static inline __m256 ld_bf16(const void *p, size_t i) {
    __m128i v = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

/* Keeps a loaded weight vector in a register: gcc otherwise folds the load into both voices' FMAs,
 * and the doubled loads (not the FMAs) then set the pace (~65 instead of ~79 GFLOP/s a core). */
#define IN_REGISTER(v) __asm__("" : "+x"(v))

/* Products over k in [k0, k1) of one 32-column group W[k][32] with voices x0 (and x1), added into
 * acc (4 vectors per voice). One variant per weight format; every variant sums each output in k order
 * with one FMA per term, so a voice's result does not depend on the tile it was computed in. */
#define DEFINE_TILES(SUFFIX, LD, ESIZE)                                                              \
    static inline void tile1x2_##SUFFIX(const void *W0, const void *W1, int k0, int k1,               \
                                        const float *x0, __m256 *a, __m256 *b) {                        \
        __m256 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                                             \
        __m256 b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];                                             \
        for (int k = k0; k < k1; k++) {                                                               \
            __m256 xv = _mm256_broadcast_ss(x0 + k);                                                  \
            size_t o = (size_t)k * 32;                                                                \
            a0 = _mm256_fmadd_ps(LD(W0, o), xv, a0);                                                  \
            a1 = _mm256_fmadd_ps(LD(W0, o + 8), xv, a1);                                              \
            a2 = _mm256_fmadd_ps(LD(W0, o + 16), xv, a2);                                             \
            a3 = _mm256_fmadd_ps(LD(W0, o + 24), xv, a3);                                             \
            b0 = _mm256_fmadd_ps(LD(W1, o), xv, b0);                                                  \
            b1 = _mm256_fmadd_ps(LD(W1, o + 8), xv, b1);                                              \
            b2 = _mm256_fmadd_ps(LD(W1, o + 16), xv, b2);                                             \
            b3 = _mm256_fmadd_ps(LD(W1, o + 24), xv, b3);                                             \
        }                                                                                             \
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;                                                    \
        b[0] = b0; b[1] = b1; b[2] = b2; b[3] = b3;                                                    \
    }                                                                                                 \
    static inline void tile1x3_##SUFFIX(const void *W0, const void *W1, const void *W2, int k0, int k1,  \
                                        const float *x0, __m256 *a, __m256 *b, __m256 *c) {             \
        __m256 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                                             \
        __m256 b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];                                             \
        __m256 c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];                                             \
        for (int k = k0; k < k1; k++) {                                                               \
            __m256 xv = _mm256_broadcast_ss(x0 + k);                                                  \
            size_t o = (size_t)k * 32;                                                                \
            a0 = _mm256_fmadd_ps(LD(W0, o), xv, a0);                                                  \
            a1 = _mm256_fmadd_ps(LD(W0, o + 8), xv, a1);                                              \
            a2 = _mm256_fmadd_ps(LD(W0, o + 16), xv, a2);                                             \
            a3 = _mm256_fmadd_ps(LD(W0, o + 24), xv, a3);                                             \
            b0 = _mm256_fmadd_ps(LD(W1, o), xv, b0);                                                  \
            b1 = _mm256_fmadd_ps(LD(W1, o + 8), xv, b1);                                              \
            b2 = _mm256_fmadd_ps(LD(W1, o + 16), xv, b2);                                             \
            b3 = _mm256_fmadd_ps(LD(W1, o + 24), xv, b3);                                             \
            c0 = _mm256_fmadd_ps(LD(W2, o), xv, c0);                                                  \
            c1 = _mm256_fmadd_ps(LD(W2, o + 8), xv, c1);                                              \
            c2 = _mm256_fmadd_ps(LD(W2, o + 16), xv, c2);                                             \
            c3 = _mm256_fmadd_ps(LD(W2, o + 24), xv, c3);                                             \
        }                                                                                             \
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;                                                    \
        b[0] = b0; b[1] = b1; b[2] = b2; b[3] = b3;                                                    \
        c[0] = c0; c[1] = c1; c[2] = c2; c[3] = c3;                                                    \
    }                                                                                                 \
    static inline void tile2x1_##SUFFIX(const void *W, int k0, int k1, const float *x0,               \
                                        const float *x1, __m256 *a, __m256 *b) {                        \
        __m256 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                                             \
        __m256 b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];                                             \
        for (int k = k0; k < k1; k++) {                                                               \
            size_t o = (size_t)k * 32;                                                                \
            __m256 w0 = LD(W, o), w1 = LD(W, o + 8), w2 = LD(W, o + 16), w3 = LD(W, o + 24);           \
            IN_REGISTER(w0); IN_REGISTER(w1); IN_REGISTER(w2); IN_REGISTER(w3);                        \
            __m256 xv = _mm256_broadcast_ss(x0 + k);                                                  \
            a0 = _mm256_fmadd_ps(w0, xv, a0);                                                         \
            a1 = _mm256_fmadd_ps(w1, xv, a1);                                                         \
            a2 = _mm256_fmadd_ps(w2, xv, a2);                                                         \
            a3 = _mm256_fmadd_ps(w3, xv, a3);                                                         \
            __m256 yv = _mm256_broadcast_ss(x1 + k);                                                  \
            b0 = _mm256_fmadd_ps(w0, yv, b0);                                                         \
            b1 = _mm256_fmadd_ps(w1, yv, b1);                                                         \
            b2 = _mm256_fmadd_ps(w2, yv, b2);                                                         \
            b3 = _mm256_fmadd_ps(w3, yv, b3);                                                         \
        }                                                                                             \
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;                                                    \
        b[0] = b0; b[1] = b1; b[2] = b2; b[3] = b3;                                                    \
    }                                                                                                 \
    static inline void tile1x1_##SUFFIX(const void *W, int k0, int k1, const float *x0, __m256 *a) {  \
        __m256 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                                             \
        for (int k = k0; k < k1; k++) {                                                               \
            size_t o = (size_t)k * 32;                                                                \
            __m256 xv = _mm256_broadcast_ss(x0 + k);                                                  \
            a0 = _mm256_fmadd_ps(LD(W, o), xv, a0);                                                   \
            a1 = _mm256_fmadd_ps(LD(W, o + 8), xv, a1);                                               \
            a2 = _mm256_fmadd_ps(LD(W, o + 16), xv, a2);                                              \
            a3 = _mm256_fmadd_ps(LD(W, o + 24), xv, a3);                                              \
        }                                                                                             \
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;                                                    \
    }

DEFINE_TILES(f32, ld_f32, 4)
DEFINE_TILES(bf16, ld_bf16, 2)
DEFINE_TILES(f16, ld_f16, 2)

/* ---------------------------------------------------------------- one chunk of a phase */
static inline int voice_at(const fs_job *job, int i) { return job->active ? job->active[i] : i; }

/* Initial accumulators of voice (position i) for group g of layer l: bias, plus for layer 0 the
 * weighted rows of the hot input tokens. */
static inline void init_acc(const fs_job *job, int l, int i, int g, __m256 *a) {
    const fs_net *n = job->net;
    const float *b = n->bias[l] + (size_t)g * 32;
    for (int q = 0; q < 4; q++) a[q] = _mm256_loadu_ps(b + 8 * q);
    if (l == 0) {
        size_t row = (size_t)4 * n->hp;
        for (int j = 0; j < job->nhot[i]; j++) {
            const float *r = n->gather + (size_t)job->hot_tok[i * job->maxhot + j] * row + (size_t)g * 32;
            __m256 wv = _mm256_set1_ps(job->hot_w[i * job->maxhot + j]);
            for (int q = 0; q < 4; q++) a[q] = _mm256_fmadd_ps(_mm256_loadu_ps(r + 8 * q), wv, a[q]);
        }
    }
}

/* Gates -> c, h of 8 units (group g) of voice v; h (after silence) to h[l], h (after output cut) to
 * the next layer's input. keep_sil/keep_out are one row shared by every voice (keep_stride 0) or a
 * row per voice (keep_stride hp): each voice of an ensemble may cut its own units. */
static inline void lstm_out(const fs_net *n, int l, int v, int g, const __m256 *a) {
    size_t hp = (size_t)n->hp, u = (size_t)g * 8;
    __m256 i = sigmoid256(a[0]), f = sigmoid256(a[1]), gg = tanh256(a[2]), o = sigmoid256(a[3]);
    float *cp = n->c[l] + v * hp + u;
    __m256 c = _mm256_fmadd_ps(f, _mm256_loadu_ps(cp), _mm256_mul_ps(i, gg));
    _mm256_storeu_ps(cp, c);
    __m256 h = _mm256_mul_ps(o, tanh256(c));
    size_t keep = (size_t)v * n->keep_stride + u; /* the voice's own row of an ablation, or the shared one */
    if (n->keep_sil[l]) h = _mm256_mul_ps(h, _mm256_loadu_ps(n->keep_sil[l] + keep));
    _mm256_storeu_ps(n->h[l] + v * hp + u, h);
    if (n->keep_out[l]) h = _mm256_mul_ps(h, _mm256_loadu_ps(n->keep_out[l] + keep));
    float *next = (l + 1 < n->layers) ? n->in[l + 1] + v * 2 * hp : n->xo + v * hp;
    _mm256_storeu_ps(next + u, h);
}

static inline void logits_out(const fs_net *n, int v, int g, const __m256 *a) {
    float tmp[32];
    for (int q = 0; q < 4; q++) _mm256_storeu_ps(tmp + 8 * q, a[q]);
    int cols = n->vocab - g * 32;
    if (cols > 32) cols = 32;
    memcpy(n->logits + (size_t)v * n->vocab + (size_t)g * 32, tmp, sizeof(float) * cols);
}

#define DEFINE_CHUNK(SUFFIX, ESIZE)                                                                    \
    static void layer_chunk_##SUFFIX(const fs_job *job, int tid, int l, int g0, int g1) {                       \
        const fs_net *n = job->net;                                                                    \
        int hp = n->hp, K = l ? 2 * hp : hp, stride = K;                                               \
        const char *W = (const char *)n->w[l];                                                         \
        size_t gbytes = (size_t)K * 32 * ESIZE;                                                        \
        int pairs = job->nact / 2, i = 2 * pairs, KB = n->kblock;                                      \
        if (KB > 0 && pairs > 1 && K > KB) { /* k blocks of one group (in L1) for every voice pair */  \
            float *S = n->scratch + (size_t)tid * n->voices * 32;                                      \
            for (int g = g0; g < g1; g++) {                                                            \
                for (int k0 = 0; k0 < K; k0 += KB) {                                                   \
                    int k1 = k0 + KB < K ? k0 + KB : K;                                                \
                    for (int p = 0; p < pairs; p++) {                                                  \
                        int v0 = voice_at(job, 2 * p), v1 = voice_at(job, 2 * p + 1);                  \
                        float *s0 = S + (size_t)(2 * p) * 32, *s1 = s0 + 32;                           \
                        __m256 a[4], b[4];                                                             \
                        if (k0 == 0) {                                                                 \
                            init_acc(job, l, 2 * p, g, a);                                             \
                            init_acc(job, l, 2 * p + 1, g, b);                                         \
                        } else {                                                                       \
                            for (int q = 0; q < 4; q++) {                                              \
                                a[q] = _mm256_loadu_ps(s0 + 8 * q);                                    \
                                b[q] = _mm256_loadu_ps(s1 + 8 * q);                                    \
                            }                                                                          \
                        }                                                                              \
                        tile2x1_##SUFFIX(W + g * gbytes, k0, k1, n->in[l] + (size_t)v0 * stride,      \
                                         n->in[l] + (size_t)v1 * stride, a, b);                        \
                        if (k1 == K) {                                                                 \
                            lstm_out(n, l, v0, g, a);                                                  \
                            lstm_out(n, l, v1, g, b);                                                  \
                        } else {                                                                       \
                            for (int q = 0; q < 4; q++) {                                              \
                                _mm256_storeu_ps(s0 + 8 * q, a[q]);                                    \
                                _mm256_storeu_ps(s1 + 8 * q, b[q]);                                    \
                            }                                                                          \
                        }                                                                              \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
            pairs = 0;                                                                                 \
        }                                                                                              \
        for (int g = g0; g < g1 && pairs; g++) { /* one group (in L2) for every voice pair */          \
            for (int p = 0; p < pairs; p++) {                                                          \
                int v0 = voice_at(job, 2 * p), v1 = voice_at(job, 2 * p + 1);                          \
                const float *x0 = n->in[l] + (size_t)v0 * stride, *x1 = n->in[l] + (size_t)v1 * stride; \
                __m256 a[4], b[4];                                                                     \
                init_acc(job, l, 2 * p, g, a);                                                         \
                init_acc(job, l, 2 * p + 1, g, b);                                                     \
                tile2x1_##SUFFIX(W + g * gbytes, 0, K, x0, x1, a, b);                                  \
                lstm_out(n, l, v0, g, a);                                                              \
                lstm_out(n, l, v1, g, b);                                                              \
            }                                                                                          \
        }                                                                                              \
        if (i < job->nact) { /* one voice: three groups at a time (three weight streams) */            \
            int v0 = voice_at(job, i);                                                                 \
            const float *x0 = n->in[l] + (size_t)v0 * stride;                                          \
            int g = g0;                                                                                \
            for (; g + 2 < g1; g += 3) {                                                               \
                __m256 a[4], b[4], c[4];                                                               \
                init_acc(job, l, i, g, a);                                                             \
                init_acc(job, l, i, g + 1, b);                                                         \
                init_acc(job, l, i, g + 2, c);                                                         \
                tile1x3_##SUFFIX(W + g * gbytes, W + (g + 1) * gbytes, W + (g + 2) * gbytes, 0, K, x0, \
                                 a, b, c);                                                             \
                lstm_out(n, l, v0, g, a);                                                              \
                lstm_out(n, l, v0, g + 1, b);                                                          \
                lstm_out(n, l, v0, g + 2, c);                                                          \
            }                                                                                          \
            for (; g + 1 < g1; g += 2) {                                                               \
                __m256 a[4], b[4];                                                                     \
                init_acc(job, l, i, g, a);                                                             \
                init_acc(job, l, i, g + 1, b);                                                         \
                tile1x2_##SUFFIX(W + g * gbytes, W + (g + 1) * gbytes, 0, K, x0, a, b);                \
                lstm_out(n, l, v0, g, a);                                                              \
                lstm_out(n, l, v0, g + 1, b);                                                          \
            }                                                                                          \
            if (g < g1) {                                                                              \
                __m256 a[4];                                                                           \
                init_acc(job, l, i, g, a);                                                             \
                tile1x1_##SUFFIX(W + g * gbytes, 0, K, x0, a);                                         \
                lstm_out(n, l, v0, g, a);                                                              \
            }                                                                                          \
        }                                                                                              \
    }

DEFINE_CHUNK(f32, 4)
DEFINE_CHUNK(bf16, 2)
DEFINE_CHUNK(f16, 2)

static void out_chunk(const fs_job *job, int g0, int g1) {
    const fs_net *n = job->net;
    int K = n->hp;
    size_t gsize = (size_t)K * 32;
    int pairs = job->nact / 2, i = 2 * pairs;
    for (int g = g0; g < g1; g++) {
        for (int p = 0; p < pairs; p++) {
            int v0 = voice_at(job, 2 * p), v1 = voice_at(job, 2 * p + 1);
            __m256 a[4], b[4];
            for (int q = 0; q < 4; q++) a[q] = b[q] = _mm256_loadu_ps(n->bout + g * 32 + 8 * q);
            tile2x1_f32(n->wout + g * gsize, 0, K, n->xo + (size_t)v0 * K, n->xo + (size_t)v1 * K, a, b);
            logits_out(n, v0, g, a);
            logits_out(n, v1, g, b);
        }
    }
    if (i < job->nact) {
        int v0 = voice_at(job, i);
        for (int g = g0; g < g1; g++) {
            __m256 a[4];
            for (int q = 0; q < 4; q++) a[q] = _mm256_loadu_ps(n->bout + g * 32 + 8 * q);
            tile1x1_f32(n->wout + g * gsize, 0, K, n->xo + (size_t)v0 * K, a);
            logits_out(n, v0, g, a);
        }
    }
}

/* Phases 0..layers-1 are the LSTM layers, phase `layers` the softmax layer. */
static int phase_chunks(const fs_job *job, int phase) {
    const fs_net *n = job->net;
    if (phase < n->layers) {
        int groups = n->hp / 8;
        return (groups + job->layer_chunk - 1) / job->layer_chunk;
    }
    return (n->vocab + 31) / 32;
}

static void run_chunk(const fs_job *job, int tid, int phase, int idx) {
    const fs_net *n = job->net;
    if (phase < n->layers) {
        int groups = n->hp / 8;
        int g0 = idx * job->layer_chunk, g1 = g0 + job->layer_chunk;
        if (g1 > groups) g1 = groups;
        if (n->prec == 1)
            layer_chunk_bf16(job, tid, phase, g0, g1);
        else if (n->prec == 2)
            layer_chunk_f16(job, tid, phase, g0, g1);
        else
            layer_chunk_f32(job, tid, phase, g0, g1);
    } else {
        out_chunk(job, idx, idx + 1);
    }
}

/* ---------------------------------------------------------------- the helper thread */
/* ticket: seq (24 bits) | phase (8) | chunks (16) | next chunk (16). fetch_add(1) claims a chunk;
 * the claim is valid when next < chunks, and then its phase is still the current one because the
 * main thread waits for every claimed chunk before it publishes the next ticket. */
static struct {
    _Atomic uint64_t ticket;
    _Atomic uint32_t done;
    _Atomic uint32_t wakeword;
    _Atomic int sleeping;
    _Atomic int started;
    _Atomic long spin_ns;
    const fs_job *job;
    pthread_mutex_t busy;
    pthread_t thread;
} P = {.spin_ns = 100000, .busy = PTHREAD_MUTEX_INITIALIZER};

static inline long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline int ticket_has_work(uint64_t t) { return (t & 0xffff) < ((t >> 16) & 0xffff); }

static void work_on(uint64_t old) {
    int idx = (int)(old & 0xffff), chunks = (int)((old >> 16) & 0xffff), phase = (int)((old >> 32) & 0xff);
    if (idx < chunks) {
        run_chunk(P.job, 1, phase, idx);
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    for (;;) {
        long spin_until = now_ns() + atomic_load_explicit(&P.spin_ns, memory_order_relaxed);
        int polls = 0;
        for (;;) {
            uint64_t t = atomic_load_explicit(&P.ticket, memory_order_acquire);
            if (ticket_has_work(t)) {
                work_on(atomic_fetch_add_explicit(&P.ticket, 1, memory_order_acq_rel));
                spin_until = now_ns() + atomic_load_explicit(&P.spin_ns, memory_order_relaxed);
                continue;
            }
            _mm_pause();
            if (++polls % 64 == 0 && now_ns() > spin_until) break;
        }
        /* sleep until the main thread publishes work */
        atomic_store(&P.sleeping, 1);
        uint32_t w = atomic_load(&P.wakeword);
        if (!ticket_has_work(atomic_load(&P.ticket)))
            syscall(SYS_futex, (uint32_t *)&P.wakeword, FUTEX_WAIT_PRIVATE, w, NULL, NULL, 0);
        atomic_store(&P.sleeping, 0);
    }
    return NULL;
}

static void after_fork_child(void) {
    atomic_store(&P.started, 0);
    atomic_store(&P.sleeping, 0);
    atomic_store(&P.ticket, 0);
    pthread_mutex_init(&P.busy, NULL);
}

static int ensure_worker(void) {
    static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
    if (atomic_load(&P.started)) return 1;
    pthread_mutex_lock(&start_lock);
    if (!atomic_load(&P.started)) {
        static int atfork_done = 0;
        if (!atfork_done) {
            pthread_atfork(NULL, NULL, after_fork_child);
            atfork_done = 1;
        }
        if (pthread_create(&P.thread, NULL, worker_main, NULL) == 0) {
            pthread_detach(P.thread);
            atomic_store(&P.started, 1);
        }
    }
    pthread_mutex_unlock(&start_lock);
    return atomic_load(&P.started);
}

static uint32_t seq_counter = 0;

static void run_phase_shared(const fs_job *job, int phase) {
    int chunks = phase_chunks(job, phase);
    seq_counter = (seq_counter + 1) & 0xffffff;
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    uint64_t t = ((uint64_t)seq_counter << 40) | ((uint64_t)phase << 32) | ((uint64_t)chunks << 16);
    atomic_store(&P.ticket, t); /* seq_cst: ordered before the sleeping check below */
    if (atomic_load(&P.sleeping)) {
        atomic_fetch_add(&P.wakeword, 1);
        syscall(SYS_futex, (uint32_t *)&P.wakeword, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    for (;;) {
        uint64_t old = atomic_fetch_add_explicit(&P.ticket, 1, memory_order_acq_rel);
        if ((int)(old & 0xffff) >= chunks) break;
        run_chunk(job, 0, phase, (int)(old & 0xffff));
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
    }
    unsigned spins = 0;
    while (atomic_load_explicit(&P.done, memory_order_acquire) < (uint32_t)chunks) {
        _mm_pause();
        if (++spins > 20000) sched_yield(); /* the helper was descheduled mid-chunk */
    }
}

/* ---------------------------------------------------------------- entry points */
/* groups per chunk when two threads share a layer: small chunks while the step streams weights
 * (one or two voices: a late chunk costs little), larger ones when it computes */
#define CHUNK_GROUPS(nact) ((nact) <= 2 ? 3 : 4)

int fs_abi_version(void) { return FS_ABI; }


/* One step for the active voices (NULL: voices 0..nact-1). hot_* give layer 0's input per active
 * position: nhot[i] (token, weight) pairs. threads: 1 = this thread only, 2 = with the helper. */
int fs_step(const fs_net *net, const int32_t *active, int nact, const int32_t *hot_tok, const float *hot_w,
            const int32_t *nhot, int maxhot, int threads) {
    fs_job job = {net, active, nact, hot_tok, hot_w, nhot, maxhot, 4};
    int groups = net->hp / 8;
    int shared = threads > 1 && groups > 1 && ensure_worker() && pthread_mutex_trylock(&P.busy) == 0;
    if (shared) {
        /* chunks of a few groups; single groups for small layers so both threads get some */
        job.layer_chunk = groups < 16 ? 1 : CHUNK_GROUPS(nact);
        P.job = &job;
        for (int phase = 0; phase <= net->layers; phase++) run_phase_shared(&job, phase);
        P.job = NULL;
        pthread_mutex_unlock(&P.busy);
    } else {
        job.layer_chunk = groups;
        for (int phase = 0; phase <= net->layers; phase++) {
            int chunks = phase_chunks(&job, phase);
            for (int c = 0; c < chunks; c++) run_chunk(&job, 0, phase, c);
        }
    }
    /* the new h becomes each layer's recurrent input */
    size_t hp = (size_t)net->hp;
    for (int i = 0; i < nact; i++) {
        int v = voice_at(&job, i);
        for (int l = 0; l < net->layers; l++) {
            float *dst = l ? net->in[l] + (size_t)v * 2 * hp + hp : net->in[l] + (size_t)v * hp;
            memcpy(dst, net->h[l] + (size_t)v * hp, sizeof(float) * hp);
        }
    }
    return 0;
}

void fs_sample(const float *logits, float *sampling, int V, const int32_t *active, int n, const double *temp,
               const double *bias, int64_t bias_stride, const uint8_t *allowed, int64_t allowed_stride, const double *u,
               int64_t *tokens);

/* Everything one call needs, set up once by fast_step.py (pointers) and updated per call. */
typedef struct {
    const int32_t *active; /* NULL: voices 0..nact-1 */
    const int32_t *hot_tok;
    const float *hot_w;
    const int32_t *nhot;
    int32_t nact, maxhot, threads, sample; /* advance: nact > 0 and advance; sample: then draw their tokens */
    int32_t advance, pad;
    const double *temp, *bias, *u;
    const uint8_t *allowed;
    int64_t bias_stride, allowed_stride;
    float *sampling;
    int64_t *tokens;
} fs_call;

/* Returns 0, or -1 (and does nothing) for a network beyond the limits the kernel was built for:
 * its buffers (z and cdf below, the per-layer pointers) would overflow. */
int fs_run(const fs_net *net, const fs_call *c) {
    if (net->layers < 1 || net->layers > FS_MAXL || net->vocab < 1 || net->vocab > FS_MAX_VOCAB) return -1;
    if (c->advance && c->nact > 0) fs_step(net, c->active, c->nact, c->hot_tok, c->hot_w, c->nhot, c->maxhot, c->threads);
    if (c->sample)
        fs_sample(net->logits, c->sampling, net->vocab, c->active, c->nact, c->temp, c->bias, c->bias_stride, c->allowed,
                  c->allowed_stride, c->u, c->tokens);
    return 0;
}

/* Draw the next token of each active voice (position i, voice v = active[i], or i when active is NULL)
 * as the torch path (instrument/model/torch_step.py) does in numpy (float64): z = logits[v] / T + bias (+ -inf where
 * not allowed); T > 0: p = softmax(z), token = the first index whose cumulative p exceeds u[i] * total;
 * T == 0: argmax. Writes p (float32) to sampling[v]. temp, u, bias rows, allowed rows, tokens are per i. */
void fs_sample(const float *logits, float *sampling, int V, const int32_t *active, int n, const double *temp,
               const double *bias, int64_t bias_stride, const uint8_t *allowed, int64_t allowed_stride, const double *u,
               int64_t *tokens) {
    double z[FS_MAX_VOCAB], cdf[FS_MAX_VOCAB];
    for (int i = 0; i < n; i++) {
        int v = active ? active[i] : i;
        const float *L = logits + (size_t)v * V;
        const double *bb = bias ? bias + i * bias_stride : NULL;
        const uint8_t *ok = allowed + i * allowed_stride;
        double t = temp[i];
        float *s = sampling + (size_t)v * V;
        for (int k = 0; k < V; k++) {
            double zk = t > 0 ? (double)L[k] / t : (double)L[k];
            double add = (bb ? bb[k] : 0.0) + (ok[k] ? 0.0 : -INFINITY);
            z[k] = zk + add;
        }
        if (t > 0) {
            double m = z[0];
            for (int k = 1; k < V; k++)
                if (z[k] > m) m = z[k];
            double total = 0.0;
            for (int k = 0; k < V; k++) {
                z[k] = exp(z[k] - m);
                total += z[k];
            }
            double run = 0.0;
            int last = 0;
            for (int k = 0; k < V; k++) {
                z[k] /= total;
                run += z[k];
                cdf[k] = run;
                s[k] = (float)z[k];
                if (z[k] > 0) last = k;
            }
            double target = u[i] * cdf[V - 1];
            int tok = last; /* only if rounding put target at the very top */
            for (int k = 0; k < V; k++)
                if (cdf[k] > target) {
                    tok = k;
                    break;
                }
            tokens[i] = tok;
        } else {
            int best = 0;
            for (int k = 1; k < V; k++)
                if (z[k] > z[best]) best = k;
            for (int k = 0; k < V; k++) s[k] = 0.0f;
            s[best] = 1.0f;
            tokens[i] = best;
        }
    }
}
