"""The distributed train and eval steps.

One call of `TrainStep.train` runs several optimizer steps (up to `steps_per_execution`; the
trainer stops a call early at log, checkpoint and eval steps) inside a single `tf.function`
(a `tf.range` loop), so TPUs are not starved by host round trips. Each optimizer
step runs `replica_step` on every replica through `strategy.run`:

    normalisers <- all-reduce(token counts of the global batch)
    for each of k micro-batches:         (gradient accumulation)
        loss, grads <- objective(micro-batch), scaled by the global counts
    grads <- all-reduce(sum of grads)     (the gradient of the global-batch loss)
    clip by global norm, apply AdamW

Everything inside is static-shaped and free of Python side effects. XLA: with one replica
(the default strategy, one GPU, a CPU) and `jit_compile`, the whole replica step (every
micro-batch, clipping and the optimizer update) is one XLA program; with several replicas
`jit_compile` compiles the per-micro-batch compute, and the all-reduce, clipping and update run
outside XLA (on TPU the whole step is compiled anyway). With one replica and no `jit_compile`,
only clipping plus the optimizer update is XLA-compiled: it fuses hundreds of small per-variable
ops into a few loops (see docs/performance.md).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from electra_tf.config import TrainConfig
from electra_tf.training import metrics as metrics_lib
from electra_tf.training.task import StepContext, Task

SUM = tf.distribute.ReduceOp.SUM


def step_seed(run_seed: int, step: tf.Tensor) -> tf.Tensor:
    """The sampling seed of one optimizer step: a function of the run seed and the step only."""
    return tf.cast(step, tf.int64) * 1_000_003 + run_seed


class TrainStep:
    """Builds and runs the compiled train/eval functions of one task's model under one
    strategy."""

    def __init__(self, strategy: tf.distribute.Strategy, task: Task | None, model,
                 optimizer: keras.optimizers.Optimizer, train: TrainConfig,
                 global_step: tf.Variable):
        self.strategy = strategy
        self.task = task
        self.model = model
        self.optimizer = optimizer
        self.train_config = train
        self.global_step = global_step
        self.variables = model.trainable_variables
        self.accum = train.grad_accum_steps
        self.loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        single = strategy.num_replicas_in_sync == 1
        jit = train.jit_compile
        self._compute = self._micro_step
        self._update = self._clip_and_apply
        self._replica = self.replica_step
        if jit and single:
            self._replica = tf.function(self.replica_step, jit_compile=True)
        elif jit:
            self._compute = tf.function(self._micro_step, jit_compile=True)
        elif single:
            self._update = tf.function(self._clip_and_apply, jit_compile=True)
        self._train_fn = tf.function(self._train_loop)
        self._eval_fn = tf.function(self._eval_batch)

    # ------------------------------------------------------------------ per replica

    def _micro_step(self, batch, seed, example_ids, normalizers):
        assert self.task is not None
        context = StepContext(seed=seed, example_ids=example_ids, normalizers=normalizers)
        with tf.GradientTape() as tape:
            out = self.task.train_step(self.model, batch, context)
            loss = out.loss
            if self.loss_scaling:
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, self.variables, strict=True)]
        return out.loss, grads, out.sums

    def replica_step(self, batch, step):
        """One optimizer step on this replica's share of the global batch."""
        assert self.task is not None
        ctx = tf.distribute.get_replica_context()
        replicas = self.strategy.num_replicas_in_sync
        normalizers = ctx.all_reduce(SUM, self.task.loss_normalizers(batch))
        per_replica = tf.nest.flatten(batch)[0].shape[0]
        micro = per_replica // self.accum
        first_example = (tf.cast(step, tf.int64) * per_replica * replicas
                         + tf.cast(ctx.replica_id_in_sync_group, tf.int64) * per_replica)
        seed = step_seed(self.train_config.seed, step)

        loss, grads, sums = None, None, None
        for k in range(self.accum):  # static and small: unrolled
            part = {name: value[k * micro:(k + 1) * micro] for name, value in batch.items()}
            example_ids = first_example + k * micro + tf.range(micro, dtype=tf.int64)
            k_loss, k_grads, k_sums = self._compute(part, seed, example_ids, normalizers)
            if loss is None:
                loss, grads, sums = k_loss, k_grads, k_sums
            else:
                loss += k_loss
                grads = [a + b for a, b in zip(grads, k_grads, strict=True)]
                sums = tf.nest.map_structure(tf.add, sums, k_sums)

        grads = ctx.all_reduce(SUM, grads)
        grad_norm = self._update(grads)
        # Summed across replicas below. A step the loss scaler skips (mixed_float16 overflow:
        # the norm is inf) is left out of the reported mean.
        finite = tf.math.is_finite(grad_norm)
        sums["grad_norm"] = tf.where(finite, grad_norm, 0.0) / replicas
        sums["grad_norm_steps"] = tf.cast(finite, tf.float32) / replicas
        return loss, sums

    def _clip_and_apply(self, grads):
        """Clips the all-reduced gradients by their global norm and applies AdamW."""
        replicas = self.strategy.num_replicas_in_sync
        scale = self.optimizer.dynamic_scale if self.loss_scaling else 1.0
        grad_norm = tf.linalg.global_norm(grads) / scale
        # Clipping commutes with loss scaling: clip the scaled gradients by the unscaled norm.
        clip = tf.minimum(1.0, self.train_config.clip_norm / tf.maximum(grad_norm, 1e-12))
        # Keras' optimizer sums gradients across replicas once more; hand it equal shares.
        grads = [g * (clip / replicas) for g in grads]
        self.optimizer.apply(grads, self.variables)
        return grad_norm

    # ------------------------------------------------------------------ cross replica

    def _train_loop(self, iterator, num_steps):
        assert self.task is not None
        loss = tf.constant(0.0)
        sums = metrics_lib.zeros(self.task.sum_shapes())
        for _ in tf.range(num_steps):
            per_replica_loss, per_replica_sums = self.strategy.run(
                self._replica, args=(next(iterator), self.global_step.read_value()))
            loss = self.strategy.reduce(SUM, per_replica_loss, axis=None)
            step_sums = tf.nest.map_structure(
                lambda x: self.strategy.reduce(SUM, x, axis=None), per_replica_sums)
            sums = tf.nest.map_structure(tf.add, sums, step_sums)
            self.global_step.assign_add(1)
        return loss, sums

    def train(self, iterator, num_steps: int) -> tuple[tf.Tensor, dict]:
        """Runs `num_steps` optimizer steps; returns the last step's loss and summed metrics."""
        return self._train_fn(iterator, tf.constant(num_steps, tf.int32))

    def _eval_replica(self, batch):
        assert self.task is not None
        context = StepContext(seed=tf.constant(self.train_config.seed, tf.int64),
                              example_ids=tf.zeros([0], tf.int64), normalizers={},
                              training=False)
        out = self.task.eval_step(self.model, batch, context)
        return out.sums, out.examples

    def _eval_batch(self, batch):
        sums, examples = self.strategy.run(self._eval_replica, args=(batch,))
        sums = tf.nest.map_structure(lambda x: self.strategy.reduce(SUM, x, axis=None), sums)
        examples = tf.nest.map_structure(lambda x: self.strategy.gather(x, axis=0), examples)
        return sums, examples

    def evaluate(self, batches) -> tuple[dict, dict[str, np.ndarray]] | None:
        """Sums the metrics over distributed `batches`, and concatenates the per-example
        outputs (None when there are no batches)."""
        sums = None
        gathered: dict[str, list[np.ndarray]] = {}
        for batch in batches:
            batch_sums, examples = self._eval_fn(batch)
            sums = batch_sums if sums is None else tf.nest.map_structure(
                tf.add, sums, batch_sums)
            for name, value in examples.items():
                gathered.setdefault(name, []).append(value.numpy())
        if sums is None:
            return None
        return sums, {name: np.concatenate(parts) for name, parts in gathered.items()}
