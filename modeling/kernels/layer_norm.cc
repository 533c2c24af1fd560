/* BERT's LayerNorm for training on CPUs: the forward pass and its gradient, each
one pass over the rows; and the gradient of a bias summed in float32 (BertBiasGrad,
at the end of this file).

For each row x of H values (float32), as modeling/encoder.py's
_layer_norm_float32 writes it with TensorFlow ops:

  mean    = sum(x) / H
  c       = x - mean
  inv_std = 1 / sqrt(sum(c * c) / H + epsilon)
  normed  = c * inv_std
  y       = normed * gamma + beta

and for the gradient, with g = dy * gamma:

  dx      = inv_std * (g - sum(g) / H - normed * sum(g * normed) / H)
  dgamma  = sum over rows of dy * normed
  dbeta   = sum over rows of dy

As TensorFlow ops that is about eight passes over [rows, H] in memory forward and
ten backward, each a kernel launch; a MiniLM step at 24 tokens spent about 21 of
its 208 kernel-milliseconds in them (bench/RESULTS.md, session 13). Sums run in a
different order than TensorFlow's reductions, so results agree to float32
rounding, not to the bit. The row sums of dgamma and dbeta are taken over fixed
blocks of rows and then added block by block in order, so they do not depend on
the number of threads.
*/

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::TensorShapeUtils;
using CPUDevice = Eigen::ThreadPoolDevice;

namespace errors = ::tensorflow::errors;

// Rows per block of the gradient's dgamma and dbeta partial sums.
constexpr int64_t kRowsPerBlock = 32;

// Sums keep kLanes partial sums (lane j takes elements j, j + kLanes, ...), so the
// compiler can use vector adds without reordering float additions itself.
constexpr int kLanes = 16;

inline float AddLanes(const float* lanes) {
  float total = 0.0f;
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

// sum(x) and sum((x - mean)^2) over one row.
inline float RowSum(const float* x, int64_t n) {
  float lanes[kLanes] = {0.0f};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += x[i + j];
  }
  float total = AddLanes(lanes);
  for (; i < n; ++i) total += x[i];
  return total;
}

inline float RowSquares(const float* x, float mean, int64_t n) {
  float lanes[kLanes] = {0.0f};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float c = x[i + j] - mean;
      lanes[j] += c * c;
    }
  }
  float total = AddLanes(lanes);
  for (; i < n; ++i) {
    const float c = x[i] - mean;
    total += c * c;
  }
  return total;
}

// sum(g) and sum(g * normed) with g = dy * gamma, normed = (x - mean) * inv_std.
inline void RowGradSums(const float* dy, const float* x, const float* gamma, float mean,
                        float inv_std, int64_t n, float* sum_g, float* sum_gn) {
  float lanes_g[kLanes] = {0.0f}, lanes_gn[kLanes] = {0.0f};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float normed = (x[i + j] - mean) * inv_std;
      const float g = dy[i + j] * gamma[i + j];
      lanes_g[j] += g;
      lanes_gn[j] += g * normed;
    }
  }
  float total_g = AddLanes(lanes_g), total_gn = AddLanes(lanes_gn);
  for (; i < n; ++i) {
    const float normed = (x[i] - mean) * inv_std;
    const float g = dy[i] * gamma[i];
    total_g += g;
    total_gn += g * normed;
  }
  *sum_g = total_g;
  *sum_gn = total_gn;
}

// The loops below are compiled for AVX-512, AVX2 and baseline x86-64, the best
// one picked at load time; the library itself must run on any CPU TensorFlow runs
// on. Without fused multiply-adds (-ffp-contract=off) and with the lane order
// fixed above, every version gives the same values.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BERT_CPU_VERSIONS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BERT_CPU_VERSIONS
#endif

// Rows [begin, end) of the forward pass.
BERT_CPU_VERSIONS
void ForwardRows(const float* __restrict x, const float* __restrict gamma,
                 const float* __restrict beta, int64_t h, float epsilon, int64_t begin,
                 int64_t end, float* __restrict y, float* __restrict mean,
                 float* __restrict inv_std) {
  const float inv_h = 1.0f / static_cast<float>(h);
  for (int64_t r = begin; r < end; ++r) {
    const float* row = x + r * h;
    float* out = y + r * h;
    const float m = RowSum(row, h) * inv_h;
    const float s = 1.0f / std::sqrt(RowSquares(row, m, h) * inv_h + epsilon);
    for (int64_t i = 0; i < h; ++i) {
      const float normed = (row[i] - m) * s;
      out[i] = normed * gamma[i] + beta[i];
    }
    mean[r] = m;
    inv_std[r] = s;
  }
}

// Blocks [first_block, end_block) of the gradient: dx of their rows, and per block
// the partial sums of dgamma and dbeta at partial + block * 2 * h.
BERT_CPU_VERSIONS
void BackwardBlocks(const float* __restrict dy, const float* __restrict x,
                    const float* __restrict mean, const float* __restrict inv_std,
                    const float* __restrict gamma, int64_t rows, int64_t h,
                    int64_t first_block, int64_t end_block, float* __restrict dx,
                    float* __restrict partial) {
  const float inv_h = 1.0f / static_cast<float>(h);
  for (int64_t b = first_block; b < end_block; ++b) {
    float* __restrict block_dgamma = partial + b * 2 * h;
    float* __restrict block_dbeta = block_dgamma + h;
    const int64_t end = std::min(rows, (b + 1) * kRowsPerBlock);
    for (int64_t r = b * kRowsPerBlock; r < end; ++r) {
      const float* __restrict dy_row = dy + r * h;
      const float* __restrict x_row = x + r * h;
      float* __restrict dx_row = dx + r * h;
      const float m = mean[r];
      const float s = inv_std[r];
      float sum_g, sum_gn;
      RowGradSums(dy_row, x_row, gamma, m, s, h, &sum_g, &sum_gn);
      const float mean_g = sum_g * inv_h;
      const float mean_gn = sum_gn * inv_h;
      for (int64_t i = 0; i < h; ++i) {
        const float normed = (x_row[i] - m) * s;
        const float g = dy_row[i] * gamma[i];
        dx_row[i] = s * (g - mean_g - normed * mean_gn);
        block_dgamma[i] += dy_row[i] * normed;
        block_dbeta[i] += dy_row[i];
      }
    }
  }
}

// The rows of a [..., width] tensor: all elements over the last dimension.
inline int64_t Rows(const Tensor& t, int64_t width) {
  return width ? t.NumElements() / width : 0;
}

// out[i] += the i-th of each block's partial sums, block after block in order (the
// blocks are `stride` floats apart), so the total does not depend on the threads.
void AddBlocksInOrder(const float* partial, int64_t blocks, int64_t stride,
                      int64_t width, float* out) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float* block = partial + b * stride;
    for (int64_t i = 0; i < width; ++i) out[i] += block[i];
  }
}

// x [..., H] as (rows, H); fails the op unless gamma (and more) are [H].
bool RowsAndWidth(OpKernelContext* ctx, const Tensor& x, const Tensor& gamma,
                  int64_t* rows, int64_t* width) {
  if (!TensorShapeUtils::IsVectorOrHigher(x.shape())) {
    ctx->SetStatus(errors::InvalidArgument("LayerNorm needs x of rank >= 1, got shape ",
                                           x.shape().DebugString()));
    return false;
  }
  *width = x.dim_size(x.dims() - 1);
  *rows = Rows(x, *width);
  if (!TensorShapeUtils::IsVector(gamma.shape()) || gamma.dim_size(0) != *width) {
    ctx->SetStatus(errors::InvalidArgument("LayerNorm: gamma and beta must be [",
                                           *width, "] for x of shape ",
                                           x.shape().DebugString(), ", got ",
                                           gamma.shape().DebugString()));
    return false;
  }
  return true;
}

TensorShape RowShape(const Tensor& x) {
  TensorShape shape = x.shape();
  shape.RemoveLastDims(1);
  return shape;
}

class LayerNormOp : public OpKernel {
 public:
  explicit LayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& gamma = ctx->input(1);
    const Tensor& beta = ctx->input(2);
    int64_t rows, h;
    if (!RowsAndWidth(ctx, x, gamma, &rows, &h)) return;
    OP_REQUIRES(ctx, beta.shape() == gamma.shape(),
                errors::InvalidArgument("LayerNorm: beta has shape ",
                                        beta.shape().DebugString(), ", gamma ",
                                        gamma.shape().DebugString()));
    Tensor *y, *mean, *inv_std;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, RowShape(x), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, RowShape(x), &inv_std));
    if (rows == 0 || h == 0) return;
    const float* xp = x.flat<float>().data();
    const float* gp = gamma.flat<float>().data();
    const float* bp = beta.flat<float>().data();
    float* yp = y->flat<float>().data();
    float* mp = mean->flat<float>().data();
    float* sp = inv_std->flat<float>().data();
    const float epsilon = epsilon_;
    ctx->eigen_device<CPUDevice>().parallelFor(
        rows, Eigen::TensorOpCost(8.0 * h, 8.0 * h, 6.0 * h),
        [=](Eigen::Index begin, Eigen::Index end) {
          ForwardRows(xp, gp, bp, h, epsilon, begin, end, yp, mp, sp);
        });
  }

 private:
  float epsilon_;
};

class LayerNormGradOp : public OpKernel {
 public:
  explicit LayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& mean = ctx->input(2);
    const Tensor& inv_std = ctx->input(3);
    const Tensor& gamma = ctx->input(4);
    int64_t rows, h;
    if (!RowsAndWidth(ctx, x, gamma, &rows, &h)) return;
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                errors::InvalidArgument("LayerNormGrad: dy has shape ",
                                        dy.shape().DebugString(), ", x ",
                                        x.shape().DebugString()));
    OP_REQUIRES(ctx, mean.NumElements() == rows && inv_std.NumElements() == rows,
                errors::InvalidArgument("LayerNormGrad: mean and inv_std need ", rows,
                                        " values, got ", mean.NumElements(), " and ",
                                        inv_std.NumElements()));
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    float* dgp = dgamma->flat<float>().data();
    float* dbp = dbeta->flat<float>().data();
    std::fill(dgp, dgp + h, 0.0f);
    std::fill(dbp, dbp + h, 0.0f);
    if (rows == 0 || h == 0) return;
    const float* dyp = dy.flat<float>().data();
    const float* xp = x.flat<float>().data();
    const float* mp = mean.flat<float>().data();
    const float* sp = inv_std.flat<float>().data();
    const float* gp = gamma.flat<float>().data();
    float* dxp = dx->flat<float>().data();
    const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
    // Per block: dgamma's partial sums, then dbeta's.
    std::vector<float> partial(blocks * 2 * h, 0.0f);
    float* pp = partial.data();
    ctx->eigen_device<CPUDevice>().parallelFor(
        blocks, Eigen::TensorOpCost(16.0 * h * kRowsPerBlock, 12.0 * h * kRowsPerBlock,
                                    12.0 * h * kRowsPerBlock),
        [=](Eigen::Index first_block, Eigen::Index end_block) {
          BackwardBlocks(dyp, xp, mp, sp, gp, rows, h, first_block, end_block, dxp, pp);
        });
    AddBlocksInOrder(pp, blocks, 2 * h, h, dgp);
    AddBlocksInOrder(pp + h, blocks, 2 * h, h, dbp);
  }
};

}  // namespace

REGISTER_OP("BertLayerNorm")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("inv_std: float")
    .Attr("epsilon: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle rows;
      TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 0, -1, &rows));
      c->set_output(0, c->input(0));
      c->set_output(1, rows);
      c->set_output(2, rows);
      return ::tsl::OkStatus();
    });

REGISTER_OP("BertLayerNormGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("mean: float")
    .Input("inv_std: float")
    .Input("gamma: float")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(4));
      return ::tsl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("BertLayerNorm").Device(DEVICE_CPU), LayerNormOp);
REGISTER_KERNEL_BUILDER(Name("BertLayerNormGrad").Device(DEVICE_CPU), LayerNormGradOp);

namespace {

// Rows per block of the bias gradient's partial sums.
constexpr int64_t kBiasRowsPerBlock = 64;

inline float ToFloat(float x) { return x; }
inline float ToFloat(Eigen::bfloat16 x) {
  // A bfloat16 is the top half of a float32: a shift, which vectorizes.
  uint16_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &wide, sizeof(out));
  return out;
}
inline float ToFloat(Eigen::half x) { return static_cast<float>(x); }

// The rows of blocks [first_block, end_block) of dy, summed per block into partial.
template <typename T>
inline __attribute__((always_inline)) void SumBlocks(
    const T* __restrict dy, int64_t rows, int64_t k, int64_t first_block,
    int64_t end_block, float* __restrict partial) {
  for (int64_t b = first_block; b < end_block; ++b) {
    float* __restrict sums = partial + b * k;
    const int64_t end = std::min(rows, (b + 1) * kBiasRowsPerBlock);
    for (int64_t r = b * kBiasRowsPerBlock; r < end; ++r) {
      const T* __restrict row = dy + r * k;
      for (int64_t i = 0; i < k; ++i) sums[i] += ToFloat(row[i]);
    }
  }
}

BERT_CPU_VERSIONS
void BiasGradBlocks(const float* dy, int64_t rows, int64_t k, int64_t first_block,
                    int64_t end_block, float* partial) {
  SumBlocks(dy, rows, k, first_block, end_block, partial);
}

BERT_CPU_VERSIONS
void BiasGradBlocks(const Eigen::bfloat16* dy, int64_t rows, int64_t k,
                    int64_t first_block, int64_t end_block, float* partial) {
  SumBlocks(dy, rows, k, first_block, end_block, partial);
}

void BiasGradBlocks(const Eigen::half* dy, int64_t rows, int64_t k, int64_t first_block,
                    int64_t end_block, float* partial) {
  SumBlocks(dy, rows, k, first_block, end_block, partial);
}

// The gradient of a bias added to every row of dy [..., K], summed in float32
// whatever dy's dtype. TensorFlow's BiasAddGrad sums a bfloat16 gradient in
// bfloat16: over 768 rows of unit normals it was off by up to 5.7 where float32
// summation and one final rounding are off by 0.25 (bench/RESULTS.md, session 13).
template <typename T>
class BiasGradOp : public OpKernel {
 public:
  explicit BiasGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    OP_REQUIRES(ctx, TensorShapeUtils::IsVectorOrHigher(dy.shape()),
                errors::InvalidArgument("BiasGrad needs dy of rank >= 1, got shape ",
                                        dy.shape().DebugString()));
    const int64_t k = dy.dim_size(dy.dims() - 1);
    const int64_t rows = Rows(dy, k);
    Tensor* grad;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({k}), &grad));
    float* out = grad->flat<float>().data();
    std::fill(out, out + k, 0.0f);
    if (rows == 0 || k == 0) return;
    const T* dyp = dy.flat<T>().data();
    const int64_t blocks = (rows + kBiasRowsPerBlock - 1) / kBiasRowsPerBlock;
    std::vector<float> partial(blocks * k, 0.0f);
    float* pp = partial.data();
    ctx->eigen_device<CPUDevice>().parallelFor(
        blocks, Eigen::TensorOpCost(2.0 * k * kBiasRowsPerBlock, 0, 2.0 * k * kBiasRowsPerBlock),
        [=](Eigen::Index first_block, Eigen::Index end_block) {
          BiasGradBlocks(dyp, rows, k, first_block, end_block, pp);
        });
    AddBlocksInOrder(pp, blocks, k, k, out);
  }
};

}  // namespace

REGISTER_OP("BertBiasGrad")
    .Input("dy: T")
    .Output("grad: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle last;
      TF_RETURN_IF_ERROR(c->Subshape(c->input(0), -1, &last));
      c->set_output(0, last);
      return ::tsl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("BertBiasGrad").Device(DEVICE_CPU).TypeConstraint<float>("T"),
                        BiasGradOp<float>);
REGISTER_KERNEL_BUILDER(
    Name("BertBiasGrad").Device(DEVICE_CPU).TypeConstraint<Eigen::bfloat16>("T"),
    BiasGradOp<Eigen::bfloat16>);
REGISTER_KERNEL_BUILDER(
    Name("BertBiasGrad").Device(DEVICE_CPU).TypeConstraint<Eigen::half>("T"),
    BiasGradOp<Eigen::half>);
