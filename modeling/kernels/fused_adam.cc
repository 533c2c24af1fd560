/* The original BERT optimizer's update as one pass over memory.

For every element, in float32 and in this order (the order and the roundings of
the TensorFlow-op path in modeling/optimization.py, so the results are the same
to the bit):

  g     = grad * clip_scale                 tf.clip_by_global_norm
  m     = m + (g - m) * (1 - beta1)         ResourceApplyAdam with both beta
  v     = v + (g * g - v) * (1 - beta2)       powers 0 (no bias correction)
  param = param * decay                     decay = 1 - lr * weight_decay_rate
  param = param - (m * lr) / (sqrt(v) + epsilon)

The TensorFlow path reads and writes every variable three times (the clip
multiply, the decay pass, Adam); this reads param, m, v and the gradient once and
writes param, m and v once. The sparse op takes a gather's gradient as distinct
rows (indices [U], values [U, ...]); every other row has a zero gradient, so its
moments still decay and it still moves, as in the original's dense update, without
a dense gradient being built. The group op updates N variables in one call.

Built by `python -m modeling.kernels` (scripts/setup_env.sh runs it) with
-ffp-contract=off: a fused multiply-add would round once where TensorFlow rounds
twice.
*/

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"

namespace bert_tf2 {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShapeUtils;
using ::tensorflow::Var;
using CPUDevice = Eigen::ThreadPoolDevice;

namespace errors = ::tensorflow::errors;

// The six scalar inputs of an update (lr, decay, clip_scale, beta1, beta2, epsilon).
struct Scalars {
  float lr, decay, clip_scale, one_minus_beta1, one_minus_beta2, epsilon;
};

// The update of n consecutive elements. Without a gradient (kHasGrad false) the
// gradient is 0: rows a sparse gradient leaves out are exactly 0 in the dense
// gradient TensorFlow builds, whatever the clip scale.
template <bool kHasGrad>
inline void UpdateRange(const Scalars& s, float* __restrict param, float* __restrict m,
                        float* __restrict v, const float* __restrict grad, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = kHasGrad ? grad[i] * s.clip_scale : 0.0f;
    const float m_new = m[i] + (g - m[i]) * s.one_minus_beta1;
    const float v_new = v[i] + (g * g - v[i]) * s.one_minus_beta2;
    m[i] = m_new;
    v[i] = v_new;
    const float decayed = param[i] * s.decay;
    param[i] = decayed - (m_new * s.lr) / (std::sqrt(v_new) + s.epsilon);
  }
}

// Locks the variables of inputs [0, count) (in address order, as TensorFlow's
// training ops do) and makes their buffers writable: a buffer a reader still
// holds is copied first.
class LockedVariables {
 public:
  LockedVariables(OpKernelContext* ctx, int count) {
    for (int i = 0; i < count; ++i) {
      Var* var = nullptr;
      auto status = ::tensorflow::LookupResource(
          ctx, ::tensorflow::HandleFromInput(ctx, i), &var);
      if (!status.ok()) {
        ctx->SetStatus(status);
        return;
      }
      vars_.emplace_back(var);
    }
    std::vector<Var*> order;
    for (auto& var : vars_) order.push_back(var.get());
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    for (Var* var : order) locks_.emplace_back(*var->mu());
    for (int i = 0; i < count; ++i) {
      Tensor* t = vars_[i]->tensor();
      if (!t->IsInitialized()) {
        ctx->SetStatus(errors::FailedPrecondition(
            "Attempting to use an uninitialized variable: ",
            ctx->op_kernel().requested_input(i)));
        return;
      }
      if (t->dtype() != ::tensorflow::DT_FLOAT) {
        ctx->SetStatus(errors::InvalidArgument(
            "BertAdamWeightDecay updates float32 variables; input ", i, " holds ",
            ::tensorflow::DataTypeString(t->dtype())));
        return;
      }
      auto prepared = ::tensorflow::PrepareToUpdateVariable<CPUDevice, float>(
          ctx, t, vars_[i]->copy_on_read_mode.load());
      if (!prepared.ok()) {
        ctx->SetStatus(prepared);
        return;
      }
    }
    ok_ = true;
  }

  bool ok() const { return ok_; }
  Tensor* tensor(int i) { return vars_[i]->tensor(); }

 private:
  std::vector<::tensorflow::core::RefCountPtr<Var>> vars_;
  std::vector<::tsl::mutex_lock> locks_;
  bool ok_ = false;
};

// Reads the six scalar inputs that start at input `first`.
bool ReadScalars(OpKernelContext* ctx, int first, Scalars* s) {
  float values[6];
  const char* names[6] = {"lr", "decay", "clip_scale", "beta1", "beta2", "epsilon"};
  for (int i = 0; i < 6; ++i) {
    const Tensor& t = ctx->input(first + i);
    if (!TensorShapeUtils::IsScalar(t.shape())) {
      ctx->SetStatus(errors::InvalidArgument(names[i], " must be a scalar, got shape ",
                                             t.shape().DebugString()));
      return false;
    }
    values[i] = t.scalar<float>()();
  }
  s->lr = values[0];
  s->decay = values[1];
  s->clip_scale = values[2];
  s->one_minus_beta1 = 1.0f - values[3];
  s->one_minus_beta2 = 1.0f - values[4];
  s->epsilon = values[5];
  return true;
}

// Bytes and cycles per element, for Eigen's split of the work over the threads.
const Eigen::TensorOpCost kCostPerElement(16, 12, 20);

class DenseUpdateOp : public OpKernel {
 public:
  explicit DenseUpdateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Scalars s;
    if (!ReadScalars(ctx, 3, &s)) return;
    LockedVariables slots(ctx, 3);
    if (!slots.ok()) return;
    Tensor* param = slots.tensor(0);
    const Tensor& grad = ctx->input(9);
    for (int i = 1; i < 3; ++i) {
      OP_REQUIRES(ctx, slots.tensor(i)->shape() == param->shape(),
                  errors::InvalidArgument("slot ", i, " has shape ",
                                          slots.tensor(i)->shape().DebugString(),
                                          ", the variable ", param->shape().DebugString()));
    }
    OP_REQUIRES(ctx, grad.shape() == param->shape(),
                errors::InvalidArgument("gradient of shape ", grad.shape().DebugString(),
                                        " for a variable of shape ",
                                        param->shape().DebugString()));
    float* p = param->flat<float>().data();
    float* m = slots.tensor(1)->flat<float>().data();
    float* v = slots.tensor(2)->flat<float>().data();
    const float* g = grad.flat<float>().data();
    ctx->eigen_device<CPUDevice>().parallelFor(
        param->NumElements(), kCostPerElement,
        [&s, p, m, v, g](Eigen::Index begin, Eigen::Index end) {
          UpdateRange<true>(s, p + begin, m + begin, v + begin, g + begin, end - begin);
        });
  }
};

template <typename Index>
class SparseUpdateOp : public OpKernel {
 public:
  explicit SparseUpdateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Scalars s;
    if (!ReadScalars(ctx, 3, &s)) return;
    LockedVariables slots(ctx, 3);
    if (!slots.ok()) return;
    Tensor* param = slots.tensor(0);
    const Tensor& indices = ctx->input(9);
    const Tensor& values = ctx->input(10);
    OP_REQUIRES(ctx, TensorShapeUtils::IsVectorOrHigher(param->shape()),
                errors::InvalidArgument("the sparse update needs a variable of rank >= 1"));
    for (int i = 1; i < 3; ++i) {
      OP_REQUIRES(ctx, slots.tensor(i)->shape() == param->shape(),
                  errors::InvalidArgument("slot ", i, " has shape ",
                                          slots.tensor(i)->shape().DebugString(),
                                          ", the variable ", param->shape().DebugString()));
    }
    OP_REQUIRES(ctx, TensorShapeUtils::IsVector(indices.shape()),
                errors::InvalidArgument("indices must be a vector, got shape ",
                                        indices.shape().DebugString()));
    const int64_t rows = param->dim_size(0);
    const int64_t row_size = rows == 0 ? 0 : param->NumElements() / rows;
    const int64_t count = indices.dim_size(0);
    OP_REQUIRES(ctx, values.dims() >= 1 && values.dim_size(0) == count &&
                         values.NumElements() == count * row_size,
                errors::InvalidArgument("values of shape ", values.shape().DebugString(),
                                        " for ", count, " indices into a variable of shape ",
                                        param->shape().DebugString()));
    // Which value row each variable row takes; -1: none (zero gradient).
    std::vector<int64_t> slot_of_row(rows, -1);
    auto index = indices.flat<Index>();
    for (int64_t j = 0; j < count; ++j) {
      const int64_t row = static_cast<int64_t>(index(j));
      OP_REQUIRES(ctx, row >= 0 && row < rows,
                  errors::InvalidArgument("index ", row, " at position ", j,
                                          " is outside [0, ", rows, ")"));
      OP_REQUIRES(ctx, slot_of_row[row] < 0,
                  errors::InvalidArgument("row ", row, " appears twice in indices; sum "
                                          "duplicate rows first (optimization.summed_rows)"));
      slot_of_row[row] = j;
    }
    float* p = param->flat<float>().data();
    float* m = slots.tensor(1)->flat<float>().data();
    float* v = slots.tensor(2)->flat<float>().data();
    const float* g = values.flat<float>().data();
    const int64_t* slot = slot_of_row.data();
    const Eigen::TensorOpCost row_cost(16.0 * row_size, 12.0 * row_size, 20.0 * row_size);
    ctx->eigen_device<CPUDevice>().parallelFor(
        rows, row_cost, [&s, p, m, v, g, slot, row_size](Eigen::Index begin, Eigen::Index end) {
          for (Eigen::Index r = begin; r < end; ++r) {
            const int64_t at = r * row_size;
            if (slot[r] < 0) {
              UpdateRange<false>(s, p + at, m + at, v + at, nullptr, row_size);
            } else {
              UpdateRange<true>(s, p + at, m + at, v + at, g + slot[r] * row_size, row_size);
            }
          }
        });
  }
};

// BertAdamWeightDecay for N variables in one call: the work of a step's ~100
// variables, most of them small (biases, LayerNorm), split over the threads
// once instead of paying an op's fixed cost per variable.
class GroupUpdateOp : public OpKernel {
 public:
  explicit GroupUpdateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_decay", &use_decay_));
    OP_REQUIRES(ctx, static_cast<int>(use_decay_.size()) == n_,
                errors::InvalidArgument("use_decay has ", use_decay_.size(),
                                        " entries for ", n_, " variables"));
  }

  void Compute(OpKernelContext* ctx) override {
    Scalars s;
    if (!ReadScalars(ctx, 3 * n_, &s)) return;
    LockedVariables vars(ctx, 3 * n_);
    if (!vars.ok()) return;
    struct Segment {
      float* param;
      float* m;
      float* v;
      const float* grad;
      bool decay;
    };
    std::vector<Segment> segments(n_);
    std::vector<int64_t> start(n_ + 1, 0);  // first element of each variable
    for (int i = 0; i < n_; ++i) {
      Tensor* param = vars.tensor(i);
      const Tensor& grad = ctx->input(3 * n_ + 6 + i);
      for (int k = 1; k < 3; ++k) {
        OP_REQUIRES(ctx, vars.tensor(k * n_ + i)->shape() == param->shape(),
                    errors::InvalidArgument("variable ", i, ": slot ", k, " has shape ",
                                            vars.tensor(k * n_ + i)->shape().DebugString(),
                                            ", the variable ", param->shape().DebugString()));
      }
      OP_REQUIRES(ctx, grad.shape() == param->shape(),
                  errors::InvalidArgument("variable ", i, ": gradient of shape ",
                                          grad.shape().DebugString(), " for a variable of shape ",
                                          param->shape().DebugString()));
      segments[i] = {param->flat<float>().data(), vars.tensor(n_ + i)->flat<float>().data(),
                     vars.tensor(2 * n_ + i)->flat<float>().data(), grad.flat<float>().data(),
                     static_cast<bool>(use_decay_[i])};
      start[i + 1] = start[i] + param->NumElements();
    }
    ctx->eigen_device<CPUDevice>().parallelFor(
        start[n_], kCostPerElement,
        [&s, &segments, &start](Eigen::Index begin, Eigen::Index end) {
          // The variable holding element `begin`, then the ones after it.
          int i = std::upper_bound(start.begin(), start.end(), begin) - start.begin() - 1;
          for (int64_t at = begin; at < end; ++i) {
            const int64_t count = std::min<int64_t>(end, start[i + 1]) - at;
            const int64_t local = at - start[i];
            const Segment& seg = segments[i];
            Scalars si = s;
            if (!seg.decay) si.decay = 1.0f;
            UpdateRange<true>(si, seg.param + local, seg.m + local, seg.v + local,
                              seg.grad + local, count);
            at += count;
          }
        });
  }

 private:
  int n_ = 0;
  std::vector<bool> use_decay_;
};

// The six scalar inputs every update op takes after its variables (ReadScalars).
#define SCALAR_INPUTS                                                   \
  .Input("lr: float")                                                   \
      .Input("decay: float")                                            \
      .Input("clip_scale: float")                                       \
      .Input("beta1: float")                                            \
      .Input("beta2: float")                                            \
      .Input("epsilon: float")

absl::Status NoOutputs(::tensorflow::shape_inference::InferenceContext*) {
  return absl::OkStatus();
}

REGISTER_OP("BertAdamWeightDecay")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    SCALAR_INPUTS
    .Input("grad: float")
    .SetShapeFn(NoOutputs)
    .Doc("The original BERT AdamWeightDecay update of one float32 variable, one pass.");

REGISTER_OP("BertSparseAdamWeightDecay")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    SCALAR_INPUTS
    .Input("indices: Tindices")
    .Input("values: float")
    .Attr("Tindices: {int32, int64}")
    .SetShapeFn(NoOutputs)
    .Doc("BertAdamWeightDecay with the gradient as distinct rows; other rows get 0.");

REGISTER_OP("BertGroupAdamWeightDecay")
    .Input("var: N * resource")
    .Input("m: N * resource")
    .Input("v: N * resource")
    SCALAR_INPUTS
    .Input("grad: N * float")
    .Attr("N: int >= 1")
    .Attr("use_decay: list(bool)")
    .SetShapeFn(NoOutputs)
    .Doc("BertAdamWeightDecay of N variables; variable i is decayed if use_decay[i].");

REGISTER_KERNEL_BUILDER(Name("BertAdamWeightDecay").Device(DEVICE_CPU), DenseUpdateOp);
REGISTER_KERNEL_BUILDER(Name("BertGroupAdamWeightDecay").Device(DEVICE_CPU), GroupUpdateOp);
REGISTER_KERNEL_BUILDER(
    Name("BertSparseAdamWeightDecay").Device(DEVICE_CPU).TypeConstraint<int32_t>("Tindices"),
    SparseUpdateOp<int32_t>);
REGISTER_KERNEL_BUILDER(
    Name("BertSparseAdamWeightDecay").Device(DEVICE_CPU).TypeConstraint<int64_t>("Tindices"),
    SparseUpdateOp<int64_t>);

}  // namespace bert_tf2
