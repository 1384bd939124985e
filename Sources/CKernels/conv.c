// Convolution kernels of the CNN backbone (contracts in ckconv.h).
//
// Why C: the depthwise convolution is a loop over channels with few multiply-adds per load; clang
// vectorises it 8 or 16 wide in the AVX2 and AVX-512 clones, where Swift code stays at the
// x86-64 baseline (4-wide SSE; see kernels.c). The loops are plain scalar code over channels,
// innermost, so that each (pixel, tap) step is one vector FMA per channel block.
//
// Determinism: every output element is summed in a fixed tap order, independent of threads.
#include "ckconv.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define CK_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define CK_CLONES
#endif

CK_CLONES
void ck_dwconv_forward(float *restrict out, const float *restrict in, const float *restrict wt, const float *restrict bias,
                       ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int k, int s, int pad_top, int pad_left,
                       ptrdiff_t ho, ptrdiff_t wo, int relu6, ptrdiff_t row_lo, ptrdiff_t row_hi) {
    for (ptrdiff_t oy = row_lo; oy < row_hi; oy++) {
        for (ptrdiff_t ox = 0; ox < wo; ox++) {
            float *restrict o = out + (oy * wo + ox) * c;
            for (ptrdiff_t ch = 0; ch < c; ch++) o[ch] = bias ? bias[ch] : 0.0f;
            for (int i = 0; i < k; i++) {
                ptrdiff_t iy = oy * s - pad_top + i;
                if (iy < 0 || iy >= h) continue;
                for (int j = 0; j < k; j++) {
                    ptrdiff_t ix = ox * s - pad_left + j;
                    if (ix < 0 || ix >= w) continue;
                    const float *restrict x = in + (iy * w + ix) * c;
                    const float *restrict f = wt + (ptrdiff_t)(i * k + j) * c;
                    for (ptrdiff_t ch = 0; ch < c; ch++) o[ch] += x[ch] * f[ch];
                }
            }
            if (relu6) {
                for (ptrdiff_t ch = 0; ch < c; ch++) {
                    float v = o[ch];
                    o[ch] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
                }
            }
        }
    }
}

CK_CLONES
void ck_dwconv_backward(float *restrict din, float *restrict dwt, float *restrict dbias, const float *restrict dout,
                        const float *restrict in, const float *restrict wt,
                        ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int k, int s, int pad_top, int pad_left,
                        ptrdiff_t ho, ptrdiff_t wo) {
    for (ptrdiff_t oy = 0; oy < ho; oy++) {
        for (ptrdiff_t ox = 0; ox < wo; ox++) {
            const float *restrict g = dout + (oy * wo + ox) * c;
            if (dbias) for (ptrdiff_t ch = 0; ch < c; ch++) dbias[ch] += g[ch];
            for (int i = 0; i < k; i++) {
                ptrdiff_t iy = oy * s - pad_top + i;
                if (iy < 0 || iy >= h) continue;
                for (int j = 0; j < k; j++) {
                    ptrdiff_t ix = ox * s - pad_left + j;
                    if (ix < 0 || ix >= w) continue;
                    ptrdiff_t tap = (ptrdiff_t)(i * k + j) * c, px = (iy * w + ix) * c;
                    if (dwt) for (ptrdiff_t ch = 0; ch < c; ch++) dwt[tap + ch] += g[ch] * in[px + ch];
                    if (din) for (ptrdiff_t ch = 0; ch < c; ch++) din[px + ch] += g[ch] * wt[tap + ch];
                }
            }
        }
    }
}

CK_CLONES
void ck_relu6_forward(float *restrict x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
    }
}

CK_CLONES
void ck_relu6_backward(float *restrict g, const float *restrict y, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) g[i] = (y[i] > 0.0f && y[i] < 6.0f) ? g[i] : 0.0f;
}

void ck_im2col_chw(float *restrict cols, const float *restrict img, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int k, int s,
                   int pad_top, int pad_left, ptrdiff_t ho, ptrdiff_t wo) {
    ptrdiff_t width = c * k * k;
    for (ptrdiff_t oy = 0; oy < ho; oy++) {
        for (ptrdiff_t ox = 0; ox < wo; ox++) {
            float *restrict row = cols + (oy * wo + ox) * width;
            for (ptrdiff_t ch = 0; ch < c; ch++) {
                for (int i = 0; i < k; i++) {
                    ptrdiff_t iy = oy * s - pad_top + i;
                    for (int j = 0; j < k; j++) {
                        ptrdiff_t ix = ox * s - pad_left + j;
                        *row++ = (iy < 0 || iy >= h || ix < 0 || ix >= w) ? 0.0f : img[(ch * h + iy) * w + ix];
                    }
                }
            }
        }
    }
}
