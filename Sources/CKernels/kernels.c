// Pointwise and row kernels that need SIMD maths (see ckernels.h for the contracts).
//
// Why C: these loops call exp and erf. With the C library's scalar expf/erff no loop vectorises,
// and Swift has no per-function target attributes, so Swift code runs at the x86-64 baseline
// (4-wide SSE). Here each exported kernel is compiled three times (AVX-512, AVX2+FMA, baseline)
// with `target_clones`, and the loader picks the best one for the CPU. Before, the C library's
// erff and the loop around it took ~14 % of a ViT training step (perf on `clbench bench`); moving
// these kernels here took the step from 91.7 to 111.4 img/s (docs/performance.md). The maths is
// written as plain scalar loops that clang vectorises.
//
// exp: Cephes' method: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n * ln2_hi is
// exact), e^r by its degree-5 minimax polynomial, 2^n put into the exponent bits. Arguments are
// clamped to [-87.3, 88], so results stay finite and normal. Relative error < 2e-7.
// erf: x P(x^2) / Q(x^2) on [-4, 4] (erf is +-1 in float beyond), the rational approximation
// Eigen and TensorFlow use; absolute error < 5e-7. Both are checked in CLTensorTests.
//
// Determinism: results depend only on the inputs and on which clone runs (FMA contraction and
// vector widths differ between clones), never on timing or thread count. Sums that must be
// vectorised are reassociated explicitly (`#pragma clang fp reassociate`), in loops that contain
// nothing else, so that the exp trick below (which relies on exact rounding) is never rewritten.
#include "ckernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define CK_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define CK_CLONES
#endif

// Helpers must be inlined into each clone: an out-of-line static function is compiled for the
// baseline target only, whatever clone calls it.
#define CK_INLINE static inline __attribute__((always_inline))

// NaN stays NaN (both comparisons are false), so a diverged value is never clamped into a finite
// one; fminf/fmaxf would turn NaN into a bound and hide it.
CK_INLINE float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

CK_INLINE float exp_approx(float x) {
    x = clampf(x, -87.3f, 88.0f);
    // n = round(x / ln2): adding 1.5 * 2^23 leaves n in the low mantissa bits of t.
    const float magic = 12582912.0f;
    float t = x * 1.44269504f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float er = p * (r * r) + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000 + 127) << 23;   // 2^n: n + 127 in the exponent field
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return er * scale;
}

CK_INLINE float erf_approx(float x) {
    x = clampf(x, -4.0f, 4.0f);
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

// tanh(x) = 1 - 2 / (e^(2x) + 1); beyond |x| = 9 it is +-1 in float.
CK_INLINE float tanh_approx(float x) {
    x = clampf(x, -9.0f, 9.0f);
    return 1.0f - 2.0f / (exp_approx(x + x) + 1.0f);
}

static const float kInvSqrt2 = 0.70710678118654752f;
static const float kInvSqrt2Pi = 0.39894228040143268f;
static const float kTanhScale = 0.79788456080286536f;   // sqrt(2/pi)

float ck_exp(float x) { return exp_approx(x); }
float ck_erf(float x) { return erf_approx(x); }

CK_CLONES
void ck_gelu_forward(float *restrict out, const float *restrict inp, ptrdiff_t n, int tanh_form) {
    if (tanh_form) {
        for (ptrdiff_t i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanh_approx(kTanhScale * (x + 0.044715f * x * x * x)));
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + erf_approx(x * kInvSqrt2));
        }
    }
}

CK_INLINE float gelu_derivative(float x, int tanh_form) {
    if (tanh_form) {
        float t = tanh_approx(kTanhScale * (x + 0.044715f * x * x * x));
        float du = kTanhScale * (1.0f + 3.0f * 0.044715f * x * x);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    }
    // d/dx [x Phi(x)] = Phi(x) + x phi(x)
    float cdf = 0.5f * (1.0f + erf_approx(x * kInvSqrt2));
    float pdf = kInvSqrt2Pi * exp_approx(-0.5f * x * x);
    return cdf + x * pdf;
}

CK_CLONES
void ck_gelu_backward(float *restrict dinp, const float *restrict inp, const float *restrict dout, ptrdiff_t n,
                      int tanh_form, int accumulate) {
    // Four loops rather than branches inside one, so that each vectorises on its own.
    if (tanh_form && accumulate) {
        for (ptrdiff_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_derivative(inp[i], 1);
    } else if (tanh_form) {
        for (ptrdiff_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_derivative(inp[i], 1);
    } else if (accumulate) {
        for (ptrdiff_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_derivative(inp[i], 0);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_derivative(inp[i], 0);
    }
}

CK_INLINE float row_sum(const float *restrict x, ptrdiff_t dim) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    for (ptrdiff_t i = 0; i < dim; i++) s += x[i];
    return s;
}

CK_INLINE float row_dot(const float *restrict a, const float *restrict b, ptrdiff_t dim) {
#pragma clang fp reassociate(on)
    float s = 0.0f;
    for (ptrdiff_t i = 0; i < dim; i++) s += a[i] * b[i];
    return s;
}

// Max with 16 running lanes: a plain fmaxf reduction is not vectorised (fmaxf's NaN rule), and
// `a > b ? a : b` per lane maps straight to vector max instructions.
CK_INLINE float row_max(const float *restrict x, ptrdiff_t dim) {
    float lanes[16];
    for (int j = 0; j < 16; j++) lanes[j] = -INFINITY;
    ptrdiff_t i = 0;
    for (; i + 16 <= dim; i += 16)
        for (int j = 0; j < 16; j++) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < dim; i++) m = x[i] > m ? x[i] : m;
    return m;
}

// One row in place. `restrict` matters: attention's softmax is in place, and with two pointers
// that may alias the vectoriser's run-time overlap check sends every in-place row down the
// scalar path (seen in perf: a quarter of a CIFAR-10 evaluation in scalar exp).
CK_INLINE void softmax_in_place(float *restrict p, ptrdiff_t dim) {
    float m = row_max(p, dim);
    for (ptrdiff_t i = 0; i < dim; i++) p[i] = exp_approx(p[i] - m);
    float inv = 1.0f / row_sum(p, dim);
    for (ptrdiff_t i = 0; i < dim; i++) p[i] *= inv;
}

CK_CLONES
void ck_softmax_rows(float *y, const float *x, ptrdiff_t rows, ptrdiff_t dim, ptrdiff_t ld) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *yr = y + r * ld;
        const float *xr = x + r * ld;
        if (yr != xr) memmove(yr, xr, (size_t)dim * sizeof(float));
        softmax_in_place(yr, dim);
    }
}

CK_CLONES
void ck_softmax_backward_rows(float *restrict g, const float *restrict p, ptrdiff_t rows, ptrdiff_t dim) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *gr = g + r * dim;
        const float *pr = p + r * dim;
        float dot = row_dot(pr, gr, dim);
        for (ptrdiff_t i = 0; i < dim; i++) gr[i] = pr[i] * (gr[i] - dot);
    }
}

CK_CLONES
void ck_layernorm_forward(float *restrict out, float *restrict mean, float *restrict rstd, const float *restrict inp,
                          const float *restrict w, const float *restrict b, ptrdiff_t rows, ptrdiff_t dim, float eps) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *x = inp + r * dim;
        float *y = out + r * dim;
        float m = row_sum(x, dim) / (float)dim;
        float v;
        {
#pragma clang fp reassociate(on)
            float acc = 0.0f;
            for (ptrdiff_t i = 0; i < dim; i++) {
                float d = x[i] - m;
                acc += d * d;
            }
            v = acc / (float)dim;
        }
        float s = 1.0f / sqrtf(v + eps);
        for (ptrdiff_t i = 0; i < dim; i++) y[i] = (x[i] - m) * s * w[i] + b[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

CK_CLONES
void ck_layernorm_backward(float *restrict dinp, const float *restrict residual, float *restrict dw, float *restrict db,
                           const float *restrict dout,
                           const float *restrict inp, const float *restrict w, const float *restrict mean,
                           const float *restrict rstd, ptrdiff_t rows, ptrdiff_t dim) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *x = inp + r * dim, *g = dout + r * dim;
        float m = mean[r], s = rstd[r];
        float meanG, meanGN;
        {
#pragma clang fp reassociate(on)
            float a = 0.0f, c = 0.0f;
            for (ptrdiff_t i = 0; i < dim; i++) {
                float wg = w[i] * g[i];
                a += wg;
                c += wg * (x[i] - m) * s;
            }
            meanG = a / (float)dim;
            meanGN = c / (float)dim;
        }
        if (dinp) {
            float *d = dinp + r * dim;
            const float *res = residual ? residual + r * dim : d;
            for (ptrdiff_t i = 0; i < dim; i++) {
                float nrm = (x[i] - m) * s;
                d[i] = res[i] + (w[i] * g[i] - meanG - nrm * meanGN) * s;
            }
        }
        if (dw) for (ptrdiff_t i = 0; i < dim; i++) dw[i] += (x[i] - m) * s * g[i];
        if (db) for (ptrdiff_t i = 0; i < dim; i++) db[i] += g[i];
    }
}
