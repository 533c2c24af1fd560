"""The original BERT optimizer (AdamWeightDecay), its schedule, loss scaling and
gradient accumulation, written for tf.distribute.

Distribution convention: inside `strategy.run`, every replica computes its loss as
  sum(per_example_loss on this replica) / GLOBAL_batch_size
so that the SUM all-reduce of the replicas' gradients (done once per step inside
`AdamWeightDecay.apply_gradients`) equals the gradient of the global-batch mean loss.
Clipping and the update then run identically on every replica.
"""

import math
import re

import tensorflow as tf

from modeling import kernels


class LinearWarmupLinearDecay(object):
  """Learning rate of the original optimization.create_optimizer.

  lr(step) = init_lr * step / num_warmup_steps            if step < num_warmup_steps
           = init_lr * (1 - min(step, num_train_steps) / num_train_steps)  otherwise
  """

  def __init__(self, init_lr, num_train_steps, num_warmup_steps):
    """Args:
      init_lr: peak learning rate.
      num_train_steps: step at which the rate reaches 0.
      num_warmup_steps: linear warmup length (0 for none).
    """
    if num_train_steps <= 0:
      raise ValueError("num_train_steps must be > 0, got %r" % (num_train_steps,))
    if num_warmup_steps < 0:
      raise ValueError("num_warmup_steps must be >= 0, got %r" % (num_warmup_steps,))
    self.init_lr = float(init_lr)
    self.num_train_steps = int(num_train_steps)
    self.num_warmup_steps = int(num_warmup_steps)

  def __call__(self, step):
    """Args:
      step: int or scalar tensor, the global step.

    Returns:
      float32 scalar tensor.
    """
    step = tf.cast(step, tf.float32)
    decay_step = tf.minimum(step, float(self.num_train_steps))
    lr = self.init_lr * (1.0 - decay_step / float(self.num_train_steps))
    if self.num_warmup_steps:
      warmup_lr = self.init_lr * step / float(self.num_warmup_steps)
      lr = tf.where(step < float(self.num_warmup_steps), warmup_lr, lr)
    return lr


class DynamicLossScale(object):
  """Dynamic loss scaling for float16 training.

  Usage inside the replica step function:
    scaled = loss_scale.scale_loss(loss)
    grads = loss_scale.unscale(tape.gradient(scaled, variables))
    optimizer.apply_gradients(grads)  # optimizer built with loss_scale=loss_scale
  The optimizer checks the all-reduced gradients for inf/nan: non-finite gradients of
  ANY replica make the sum non-finite on EVERY replica, so all replicas take the same
  decision: skip the update (weights, slots and global_step unchanged) and halve the
  scale. After `growth_interval` finite steps in a row the scale doubles.
  Construct under strategy.scope(). The scale is not written to checkpoints (the
  original format has no such variable); it restarts at initial_scale.
  """

  def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000, multiplier=2.0):
    """Args:
      initial_scale: starting scale.
      growth_interval: finite steps in a row before the scale is multiplied.
      multiplier: growth / back-off factor.
    """
    self.initial_scale = float(initial_scale)
    self.growth_interval = int(growth_interval)
    self.multiplier = float(multiplier)
    self.scale = tf.Variable(self.initial_scale, trainable=False, dtype=tf.float32,
                             name="loss_scale")
    self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64,
                                  name="loss_scale_good_steps")

  def scale_loss(self, loss):
    """Returns loss * scale (float32)."""
    return tf.cast(loss, tf.float32) * self.scale

  def unscale(self, grads):
    """Divides each gradient by the scale (None stays None, IndexedSlices stay
    IndexedSlices)."""
    inv = 1.0 / self.scale

    def unscaled(g):
      if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(g.values * tf.cast(inv, g.values.dtype), g.indices,
                                g.dense_shape)
      return tf.convert_to_tensor(g) * tf.cast(inv, g.dtype)

    return [None if g is None else unscaled(g) for g in grads]

  def _update_state(self, is_finite):
    """Per-replica state update (called inside strategy.extended.update)."""
    grown = self.good_steps + 1
    grow = tf.logical_and(is_finite, grown >= self.growth_interval)
    new_scale = tf.where(is_finite,
                         tf.where(grow, self.scale * self.multiplier, self.scale),
                         tf.maximum(self.scale / self.multiplier, 1.0))
    new_good = tf.where(is_finite, tf.where(grow, tf.zeros_like(grown), grown),
                        tf.zeros_like(grown))
    return tf.group(self.scale.assign(new_scale), self.good_steps.assign(new_good))


def _all_finite(grads):
  return tf.reduce_all([
      tf.reduce_all(tf.math.is_finite(g.values if isinstance(g, tf.IndexedSlices)
                                      else g))
      for g in grads])


def summed_rows(slices):
  """The same gradient as IndexedSlices that name each row once.

  A gather's gradient lists one row per gathered position: a word that occurs 30
  times in a batch has 30 rows. Summing them gives exactly the nonzero rows of the
  dense gradient, so norms and updates computed from these values equal the dense
  ones (up to the order of float additions) while touching a few hundred rows
  instead of the whole embedding table.

  Args:
    slices: tf.IndexedSlices with values [N, ...] and indices [N].

  Returns:
    tf.IndexedSlices with values [U, ...] and distinct indices [U].
  """
  rows, position = tf.unique(slices.indices)  # [U], [N]
  values = tf.math.unsorted_segment_sum(slices.values, position,
                                        tf.shape(rows)[0])  # [U, ...]
  return tf.IndexedSlices(values, rows, slices.dense_shape)


# The --optimizer choices: the original's update, and the bias-corrected one.
OPTIMIZERS = ("adamweightdecay", "adamw")


class AdamWeightDecay(object):
  """Adam with decoupled weight decay: the original BERT optimizer, or AdamW.

  The original (bias_correction=False) has no bias correction:
    update = m / (sqrt(v) + epsilon) + weight_decay_rate * param
    param -= lr * update
  for variables whose name matches none of exclude_from_weight_decay (the decay term
  is left out for those). Gradients are clipped by global norm `clip_norm` first
  (None to disable).

  With bias_correction=True it is AdamW as torch.optim.AdamW and the Hugging Face
  Trainer compute it (Loshchilov & Hutter; Adam's bias correction at step t, counted
  from 1):
    param *= 1 - lr * weight_decay_rate
    param -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)
  Without the correction a step is (1 - beta_1^t) / sqrt(1 - beta_2^t) times the
  corrected one (with the default betas about 6.5 at step 10, 3.2 at step 100, 1.3
  at step 1000), so a short fine-tuning run takes steps several times larger than
  its learning rate says; recipes tuned with AdamW want a lower learning rate here.
  """

  def __init__(self, learning_rate, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
               epsilon=1e-6, exclude_from_weight_decay=("LayerNorm", "layer_norm",
                                                        "bias"),
               clip_norm=1.0, loss_scale=None, use_cpu_kernel=True,
               bias_correction=False):
    """Args:
      learning_rate: float, or a callable step -> lr (e.g. LinearWarmupLinearDecay),
        evaluated at global_step before it is incremented.
      weight_decay_rate: decoupled weight decay.
      beta_1, beta_2, epsilon: Adam constants.
      exclude_from_weight_decay: regexes; a variable name matching any is not decayed.
      clip_norm: global-norm clip applied to the (all-reduced) gradients, or None.
      loss_scale: optional DynamicLossScale; enables the non-finite-gradient skip.
      use_cpu_kernel: update variables on the CPU with this project's one-pass
        kernel (modeling/kernels) when it is built; same values as the TensorFlow
        ops, which are used otherwise (GPU, TPU, XLA, kernel not built).
      bias_correction: False for the original update, True for AdamW's (see the
        class docstring). The checkpoint format is the same either way.
    """
    self.learning_rate = learning_rate
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())
    self.clip_norm = clip_norm
    self.loss_scale = loss_scale
    self.bias_correction = bool(bias_correction)
    self._kernel = kernels.load() if use_cpu_kernel else None
    self._names = None

  @property
  def has_cpu_kernel(self):
    """Whether variables on a CPU get the one-pass kernel (built and allowed)."""
    return self._kernel is not None

  def learning_rate_at(self, step):
    """Returns the learning rate (float32 scalar tensor) at `step`."""
    if callable(self.learning_rate):
      return tf.cast(self.learning_rate(step), tf.float32)
    return tf.constant(float(self.learning_rate), tf.float32)

  def _do_use_weight_decay(self, name):
    if not self.weight_decay_rate:
      return False
    return not any(re.search(r, name) for r in self.exclude_from_weight_decay)

  def build(self, named_vars):
    """Creates the slots "<var>/adam_m", "<var>/adam_v" and "global_step".

    Call under strategy.scope() so the slots are mirrored like the model variables.

    Args:
      named_vars: dict {original name: tf.Variable}; apply_gradients takes gradients
        in this order.
    """
    if self._names is not None:
      raise RuntimeError("AdamWeightDecay.build() was already called")
    self._names = list(named_vars)
    self._vars = list(named_vars.values())
    self._m, self._v = [], []
    for name, var in named_vars.items():
      self._m.append(tf.Variable(tf.zeros(var.shape, tf.float32), trainable=False,
                                 name=name + "/adam_m"))
      self._v.append(tf.Variable(tf.zeros(var.shape, tf.float32), trainable=False,
                                 name=name + "/adam_v"))
    self._use_wd = [self._do_use_weight_decay(n) for n in self._names]
    self.global_step = tf.Variable(0, trainable=False, dtype=tf.int64,
                                   name="global_step")

  def slot_variables(self):
    """Returns {"<var>/adam_m": var, "<var>/adam_v": var, ..., "global_step": var}."""
    self._check_built()
    out = {}
    for name, m, v in zip(self._names, self._m, self._v):
      out[name + "/adam_m"] = m
      out[name + "/adam_v"] = v
    out["global_step"] = self.global_step
    return out

  def _check_built(self):
    if self._names is None:
      raise RuntimeError("Call AdamWeightDecay.build(named_vars) first")

  def apply_gradients(self, grads, sparse=True):
    """All-reduces (SUM, once), clips, and applies one update; increments global_step.

    Call in replica context (inside strategy.run) or with no strategy. With a loss
    scale, a step whose all-reduced gradients are not finite is skipped on every
    replica (global_step is not incremented) and the scale is halved.

    The clipping norm is the norm of the dense gradients (as the original on TPU,
    where embedding gradients are dense). With one replica an embedding's gradient
    (IndexedSlices from a gather) keeps only its distinct rows for the norm and the
    clipping, which gives the same values without a pass over the whole table: for
    MiniLM that drops 11.7M of the 22.7M values the norm reads and the clip
    multiplies (bench/RESULTS.md, session 6). The Adam update stays dense, as the
    original's: every row's moments decay and every row moves (on the CPU the
    project's kernel does that from the distinct rows, without a dense gradient).

    Args:
      grads: list of gradients (tensors, IndexedSlices or None) aligned with the
        named_vars passed to build(); None leaves that variable untouched, as the
        original.
      sparse: keep IndexedSlices for the norm and the clipping when there is one
        replica, and let CPU variables take the project's kernel. False turns them
        into dense tensors first and keeps to TensorFlow's ops, as XLA and TPUs
        need (tf.unique has no static shape; XLA cannot compile the kernel).

    Returns:
      None (the updates are stateful ops; tf.function orders them automatically).
    """
    self._check_built()
    if len(grads) != len(self._vars):
      raise ValueError("apply_gradients got %d gradients for %d variables"
                       % (len(grads), len(self._vars)))
    present = [i for i, g in enumerate(grads) if g is not None]
    grads = [grads[i] for i in present]

    ctx = tf.distribute.get_replica_context()
    if ctx is None:
      raise RuntimeError("apply_gradients must be called in replica context (inside "
                         "strategy.run) or without a distribution strategy")
    if ctx.num_replicas_in_sync > 1 or not sparse:
      grads = [tf.convert_to_tensor(g) for g in grads]  # IndexedSlices -> dense
    else:
      grads = [summed_rows(g) if isinstance(g, tf.IndexedSlices) else g
               for g in grads]
    if ctx.num_replicas_in_sync > 1:
      grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    # Every replica now holds the same gradients, so the checks below agree everywhere.
    if self.loss_scale is not None:
      is_finite = _all_finite(grads)
    else:
      is_finite = tf.constant(True)
    # The clip factor only; each update multiplies by it (the kernel on the fly).
    clip_scale = None
    if self.clip_norm is not None:
      with tf.name_scope("clip_by_global_norm"):
        clip_scale = _clip_scale(grads, self.clip_norm)
    lr = self.learning_rate_at(self.global_step)
    # Decayed variables take param *= decay before the Adam term.
    decay = 1.0 - lr * self.weight_decay_rate
    hyper = (decay,) + self._step_size_and_epsilon(lr)
    with tf.name_scope("adam_update"):
      ctx.merge_call(self._distributed_apply,
                     args=(present, grads, hyper, clip_scale, is_finite, sparse))

  def _step_size_and_epsilon(self, lr):
    """The step size and epsilon of this step's update, in the original's form.

    The original's are the learning rate and epsilon. AdamW's bias-corrected update
      lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    equals the original's form
      [lr * sqrt(1 - b2^t) / (1 - b1^t)] * m / (sqrt(v) + [eps * sqrt(1 - b2^t)])
    so the CPU kernel and TensorFlow's Adam op compute both. 1 - b^t is formed as
    -expm1(t * log(b)), which keeps float32's precision where 1 - b^t is small.

    Args:
      lr: float32 scalar, the learning rate at this step.

    Returns:
      (step_size, epsilon), float32 scalars.
    """
    epsilon = tf.constant(self.epsilon, tf.float32)
    if not self.bias_correction:
      return lr, epsilon
    t = tf.cast(self.global_step + 1, tf.float32)  # Adam counts steps from 1
    correction_1 = -tf.math.expm1(t * math.log(self.beta_1))
    sqrt_correction_2 = tf.sqrt(-tf.math.expm1(t * math.log(self.beta_2)))
    return lr * sqrt_correction_2 / correction_1, epsilon * sqrt_correction_2

  def _distributed_apply(self, strategy, present, grads, hyper, clip_scale, is_finite,
                         kernel_allowed):
    """Cross-replica: runs the same update on every replica's copy.

    hyper is (decay factor, step size, epsilon) of this step.
    """
    grouped = None
    if kernel_allowed and strategy.num_replicas_in_sync == 1:
      grouped = self._grouped_kernel_update(present, grads, hyper, clip_scale,
                                            is_finite)
    if grouped is not None:
      updates = grouped
    else:
      updates = []
      for i, grad in zip(present, grads):
        updates.append(strategy.extended.update(
            self._vars[i], self._apply_one,
            args=(grad, self._m[i], self._v[i], hyper, clip_scale, is_finite,
                  self._use_wd[i], kernel_allowed),
            group=False))
    with tf.control_dependencies(tf.nest.flatten(updates)):
      step_update = strategy.extended.update(
          self.global_step,
          lambda step, ok: step.assign_add(tf.cast(ok, tf.int64)),
          args=(is_finite,), group=False)
      if self.loss_scale is not None:
        scale_update = strategy.extended.update(
            self.loss_scale.scale, lambda _, ok: self.loss_scale._update_state(ok),
            args=(is_finite,), group=False)
        step_update = tf.nest.flatten([step_update, scale_update])
    return tf.group(tf.nest.flatten(updates) + tf.nest.flatten(step_update))

  def _kernel_scalars(self, step_size, epsilon, decay, clip_scale):
    """The scalar inputs of the kernel ops; decay None means 1 (not decayed)."""
    one = tf.constant(1.0, tf.float32)
    return dict(lr=step_size, decay=decay if decay is not None else one,
                clip_scale=(tf.cast(clip_scale, tf.float32) if clip_scale is not None
                            else one),
                beta1=tf.constant(self.beta_1, tf.float32),
                beta2=tf.constant(self.beta_2, tf.float32),
                epsilon=epsilon)

  def _sparse_kernel_update(self, param, m, v, grad, scalars):
    """The kernel's update of one variable from a gradient's distinct rows."""
    return self._kernel.bert_sparse_adam_weight_decay(
        var=param.handle, m=m.handle, v=v.handle, indices=grad.indices,
        values=grad.values, **scalars)

  def _grouped_kernel_update(self, present, grads, hyper, clip_scale, is_finite):
    """The whole update in one kernel call (one more per sparse gradient).

    A step has about 100 variables, most of them small (biases, LayerNorm), and an
    op call has a fixed cost: one call for the dense ones took MiniLM's from 19.5
    to 14.8 kernel-ms a step (bench/RESULTS.md, session 12). Only with one replica
    and plain float32 variables on a CPU; returns None otherwise (the per-variable
    path then applies).

    Returns:
      A list of the update ops (of Nones when eager), or None.
    """
    if self._kernel is None or not all(
        _is_plain_cpu_float32(self._vars[i]) for i in present):
      return None
    decay, step_size, epsilon = hyper

    def update():
      ops = []
      dense = []
      for i, grad in zip(present, grads):
        if isinstance(grad, tf.IndexedSlices):
          ops.append(self._sparse_kernel_update(
              self._vars[i], self._m[i], self._v[i], grad,
              self._kernel_scalars(step_size, epsilon,
                                   decay if self._use_wd[i] else None, clip_scale)))
        else:
          dense.append((i, grad))
      if dense:
        ops.append(self._kernel.bert_group_adam_weight_decay(
            var=[self._vars[i].handle for i, _ in dense],
            m=[self._m[i].handle for i, _ in dense],
            v=[self._v[i].handle for i, _ in dense],
            grad=[grad for _, grad in dense],
            use_decay=[self._use_wd[i] for i, _ in dense],
            **self._kernel_scalars(step_size, epsilon, decay, clip_scale)))
      return ops

    if self.loss_scale is None:
      return update()
    return [tf.cond(is_finite, lambda: tf.group(update()), tf.no_op)]

  def _apply_one(self, param, grad, m, v, hyper, clip_scale, is_finite, use_wd,
                 kernel_allowed):
    """The per-variable update (runs on one replica's copies).

    The original computes param -= lr * (m / (sqrt(v) + epsilon) + wd * param) with
    m = beta_1 * m + (1 - beta_1) * grad and v = beta_2 * v + (1 - beta_2) * grad^2,
    no bias correction, grad already multiplied by the clip factor; AdamW's step
    size and epsilon take the place of lr and epsilon in the Adam term (see
    _step_size_and_epsilon). On the CPU,
    with modeling/kernels built, that is one pass of this project's kernel, which
    takes a gather's gradient as its distinct rows. Otherwise it is three
    TensorFlow kernels: the clip multiply, the decay param *= 1 - lr * wd (it uses
    the old param, as the original), then TensorFlow's Adam kernel, which updates
    m, v and param in one pass; with both beta powers 0 its bias-correction factor
    is exactly 1. Both give the same values to the bit (tests/test_kernels.py).
    """
    decay, step_size, epsilon = hyper
    decay = decay if use_wd else None
    use_kernel = (kernel_allowed and self._kernel is not None and
                  param.dtype == tf.float32 and _on_cpu(param))

    def kernel_update():
      scalars = self._kernel_scalars(step_size, epsilon, decay, clip_scale)
      if isinstance(grad, tf.IndexedSlices):
        return self._sparse_kernel_update(param, m, v, grad, scalars)
      return self._kernel.bert_adam_weight_decay(
          var=param.handle, m=m.handle, v=v.handle, grad=grad, **scalars)

    def tf_update():
      ops = []
      clipped = grad
      if clip_scale is not None:
        if isinstance(grad, tf.IndexedSlices):
          clipped = tf.IndexedSlices(grad.values * tf.cast(clip_scale, grad.dtype),
                                     grad.indices, grad.dense_shape)
        else:
          clipped = grad * tf.cast(clip_scale, grad.dtype)
      # Adam's kernel takes a dense gradient: rows an IndexedSlices leaves out are 0.
      clipped = tf.convert_to_tensor(clipped)
      if decay is not None:
        # param * (1 - lr * wd): one pass whose result the variable takes over;
        # assign_sub(lr * wd * param) is two (16-19 ms against 10-11 ms for
        # MiniLM's 22M parameters, bench/RESULTS.md, session 4). The two differ by
        # float32 rounding only.
        ops.append(param.assign(param * decay))
      with tf.control_dependencies(ops):
        zero = tf.constant(0.0, tf.float32)
        ops.append(tf.raw_ops.ResourceApplyAdam(
            var=param.handle, m=m.handle, v=v.handle, beta1_power=zero,
            beta2_power=zero, lr=step_size,
            beta1=tf.constant(self.beta_1, tf.float32),
            beta2=tf.constant(self.beta_2, tf.float32), epsilon=epsilon, grad=clipped,
            use_locking=False))
      return tf.group(ops)

    update = kernel_update if use_kernel else tf_update
    if self.loss_scale is None:
      return update()
    return tf.cond(is_finite, lambda: tf.group(update()), tf.no_op)


def _is_plain_cpu_float32(variable):
  return (not isinstance(variable, tf.distribute.DistributedValues) and
          variable.dtype == tf.float32 and _on_cpu(variable))


def _clip_scale(grads, clip_norm):
  """The factor tf.clip_by_global_norm(grads, clip_norm) multiplies every gradient by.

  Computed as that function computes it, so the products are the same to the bit:
  clip_norm * min(1 / norm, 1 / clip_norm), NaN when the norm is not finite.
  """
  norm = tf.linalg.global_norm(grads)
  clip_norm = tf.constant(clip_norm, norm.dtype)
  scale = clip_norm * tf.minimum(1.0 / norm, tf.constant(1.0, norm.dtype) / clip_norm)
  return scale + (norm - norm)


def _on_cpu(variable):
  """Whether `variable` lives on a CPU (where the project's kernel runs)."""
  if variable.device:
    return tf.DeviceSpec.from_string(variable.device).device_type == "CPU"
  return not (tf.config.list_logical_devices("GPU") or
              tf.config.list_logical_devices("TPU"))


def accumulated_gradients(loss_fn, variables, features, num_micro_batches):
  """Gradients of a batch computed in `num_micro_batches` sequential parts.

  Every tensor in `features` is split along axis 0 into num_micro_batches equal parts;
  loss_fn must return the SUM of its micro-batch's per-example losses divided by the
  caller's normaliser for the whole (global) batch, so the summed micro-batch
  gradients are exactly the gradient of one big batch.

  Args:
    loss_fn: callable(dict of micro-batch tensors, micro-batch index (int32 scalar
      tensor, for distinct dropout seeds)) -> scalar loss.
    variables: list of tf.Variable.
    features: dict {name: tensor [B, ...]}, B divisible by num_micro_batches.
    num_micro_batches: static python int k >= 1.

  Returns:
    (loss, grads): the summed loss (scalar) and a list of gradients aligned with
    `variables` (None where a variable does not affect the loss). They are dense
    tensors, except that with one micro-batch a gather's gradient stays
    IndexedSlices (see AdamWeightDecay.apply_gradients).
  """
  k = int(num_micro_batches)
  if k < 1:
    raise ValueError("num_micro_batches must be >= 1, got %r" % (num_micro_batches,))

  def micro(i):
    out = {}
    for name, t in features.items():
      t = tf.convert_to_tensor(t)
      shape = tf.shape(t)
      tf.debugging.assert_equal(
          shape[0] % k, 0,
          message="feature %s: batch size not divisible by num_micro_batches=%d"
          % (name, k))
      parts = tf.reshape(t, tf.concat([[k, shape[0] // k], shape[1:]], 0))
      out[name] = parts[i]
    return out

  def grads_of(i):
    with tf.GradientTape() as tape:
      loss = loss_fn(micro(i), tf.convert_to_tensor(i, tf.int32))
    return loss, tape.gradient(loss, variables)

  # The first part runs outside the loop to learn which gradients are None (e.g. the
  # pooler under a SQuAD head), which the loop's state cannot represent.
  loss0, grads0 = grads_of(0)
  if k == 1:
    return loss0, grads0

  def dense(grads):
    # The loop's state needs one fixed shape per gradient.
    return [None if g is None else tf.convert_to_tensor(g) for g in grads]

  grads0 = dense(grads0)
  present = [i for i, g in enumerate(grads0) if g is not None]

  def body(i, loss_acc, acc):
    loss, grads = grads_of(i)
    grads = dense(grads)
    return i + 1, loss_acc + loss, [a + grads[j] for a, j in zip(acc, present)]

  _, loss, acc = tf.while_loop(lambda i, *_: i < k, body,
                               (tf.constant(1), loss0, [grads0[j] for j in present]))
  out = list(grads0)
  for a, j in zip(acc, present):
    out[j] = a
  return loss, out
