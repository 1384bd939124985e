// Convolution kernels of the CNN backbone (EfficientNet-Lite), activations channels-last (NHWC:
// one sample is [H, W, C], channels contiguous), so that a 1x1 convolution is a plain GEMM over
// [pixels, C] (done by CLTensor's Compute.gemm) and these kernels vectorise over channels.
// Each function handles one sample (or a range of output rows of one); CLTensor's `Conv` wrapper owns
// the threading. Padding is given explicitly (top, left); TensorFlow's "same" rule is computed by the caller.
#ifndef CLBENCH_CKCONV_H
#define CLBENCH_CKCONV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Depthwise k x k convolution, stride s, zero padding (pad_top, pad_left), of one sample
/// in [h, w, c] with weights wt [k*k, c] (tap-major: tap (i, j) at row i*k+j) and bias [c]:
/// out [ho, wo, c] for output rows [row_lo, row_hi). relu6 != 0 clamps the result to [0, 6].
void ck_dwconv_forward(float *out, const float *in, const float *wt, const float *bias,
                       ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int k, int s, int pad_top, int pad_left,
                       ptrdiff_t ho, ptrdiff_t wo, int relu6, ptrdiff_t row_lo, ptrdiff_t row_hi);

/// Backward of ck_dwconv_forward for one sample, given dout [ho, wo, c] (already multiplied by the
/// activation's derivative): din += (when not NULL), dwt += [k*k, c], dbias += [c] (when not NULL).
void ck_dwconv_backward(float *din, float *dwt, float *dbias, const float *dout, const float *in, const float *wt,
                        ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int k, int s, int pad_top, int pad_left,
                        ptrdiff_t ho, ptrdiff_t wo);

/// In place: x = min(max(x, 0), 6) (NaN stays NaN).
void ck_relu6_forward(float *x, ptrdiff_t n);
/// In place: g = (0 < y < 6) ? g : 0, with y the saved ReLU6 output (the derivative of
/// PyTorch's hardtanh: 0 at both bounds).
void ck_relu6_backward(float *g, const float *y, ptrdiff_t n);

/// im2col of one CHW image for a k x k convolution, stride s, zero padding (pad_top, pad_left):
/// cols [ho*wo, c*k*k], column order (channel, i, j), PyTorch's weight order [out, c, k, k].
void ck_im2col_chw(float *cols, const float *img, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int k, int s,
                   int pad_top, int pad_left, ptrdiff_t ho, ptrdiff_t wo);

#ifdef __cplusplus
}
#endif
#endif
