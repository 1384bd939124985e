// Pointwise and row kernels of the tensor engine that need SIMD maths to be fast: GELU (erf and
// tanh forms), softmax rows, layer norm rows. CLTensor's Swift wrappers (GELU, Softmax,
// LayerNorm) own the threading and call these on contiguous ranges; kernels.c says why they are C.
#ifndef CLBENCH_CKERNELS_H
#define CLBENCH_CKERNELS_H

#include <stddef.h>
#include "ckconv.h"

#ifdef __cplusplus
extern "C" {
#endif

/// out[i] = GELU(inp[i]); tanh_form selects 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void ck_gelu_forward(float *out, const float *inp, ptrdiff_t n, int tanh_form);
/// dinp[i] += dout[i] * GELU'(inp[i]), or dinp[i] = ... when accumulate is 0 (dinp is then only
/// written, so the caller need not zero it first).
void ck_gelu_backward(float *dinp, const float *inp, const float *dout, ptrdiff_t n, int tanh_form, int accumulate);

/// y = softmax(x) per row of `dim` values, rows `ld` apart (y may equal x).
void ck_softmax_rows(float *y, const float *x, ptrdiff_t rows, ptrdiff_t dim, ptrdiff_t ld);
/// In place, per row: g = p * (g - sum(p * g)) (softmax backward from the saved output p).
void ck_softmax_backward_rows(float *g, const float *p, ptrdiff_t rows, ptrdiff_t dim);

/// Layer norm of each row: out = (x - mean) * rstd * w + b; saves mean and rstd per row.
void ck_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, ptrdiff_t rows, ptrdiff_t dim, float eps);
/// Layer norm backward over rows, with n the normalised input and
/// dx = (w g - mean(w g) - n mean(w g n)) rstd: when dinp is not NULL, dinp += dx, or
/// dinp = residual + dx when residual is not NULL (a residual branch's gradient joined in the same
/// pass); dw += sum(n g) and db += sum(g) over these rows (when not NULL).
void ck_layernorm_backward(float *dinp, const float *residual, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean, const float *rstd,
                           ptrdiff_t rows, ptrdiff_t dim);

/// The scalar maths the kernels use, for tests: e^x and erf(x).
float ck_exp(float x);
float ck_erf(float x);

#ifdef __cplusplus
}
#endif
#endif
