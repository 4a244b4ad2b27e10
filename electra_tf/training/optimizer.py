"""The reference optimizer: AdamW (no bias correction), decoupled weight decay that skips
LayerNorm and bias variables, linear warmup times linear decay to zero; for fine-tuning, an
optional learning-rate multiplier per variable (layer-wise decay)."""

from __future__ import annotations

import re

import keras
import tensorflow as tf
from keras import ops

from electra_tf.config import TrainConfig

# The reference's rule, applied to variable paths ("…/LayerNorm/gamma", "…/output_bias").
NO_DECAY_PATTERN = re.compile(r"LayerNorm|layer_norm|bias")


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * max(0, 1 - step / total) * min(1, step / warmup)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = self.peak * ops.maximum(0.0, 1.0 - step / float(self.total_steps))
        if self.warmup_steps:
            lr = lr * ops.minimum(1.0, step / float(self.warmup_steps))
        return lr

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


class ElectraAdamW(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay, as in BERT/ELECTRA: by default *without* bias
    correction. Weight decay (Keras' decoupled form, var -= lr * wd * var) is applied by the
    base class to every variable not excluded with `exclude_from_weight_decay`.

    With `multipliers` (one factor per variable, in the order `build` receives them), each
    variable's whole step, decay included, uses learning_rate * its factor, as the reference's
    layer-wise decay does: var -= lr * factor * (m / (sqrt(v) + eps) + wd * var). The decay
    then moves into `update_step` (the base class would apply the unscaled rate), for the
    variables whose entry in `decays` (aligned with `multipliers`) is True.
    """

    def __init__(self, learning_rate, weight_decay: float = 0.01, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-6, bias_correction: bool = False,
                 name: str = "adamw", multipliers: list[float] | None = None,
                 decays: list[bool] | None = None, **kwargs):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=None if multipliers is not None else weight_decay,
                         name=name, **kwargs)
        self.multipliers = multipliers
        self.own_weight_decay = weight_decay if multipliers is not None else 0.0
        self.decays = decays
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.bias_correction = bias_correction

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        if self.multipliers is not None and len(self.multipliers) != len(variables):
            raise ValueError(f"{len(self.multipliers)} learning-rate multipliers for "
                             f"{len(variables)} variables")
        self._m = [self.add_variable_from_reference(v, "m") for v in variables]
        self._v = [self.add_variable_from_reference(v, "v") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        gradient = ops.cast(tf.convert_to_tensor(gradient), variable.dtype)
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1.0 - self.beta_2))
        m_hat, v_hat = m, v
        if self.bias_correction:
            t = ops.cast(self.iterations + 1, variable.dtype)
            m_hat = m / (1.0 - ops.power(self.beta_1, t))
            v_hat = v / (1.0 - ops.power(self.beta_2, t))
        update = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        if self.multipliers is not None:
            lr = lr * self.multipliers[index]
            if self.own_weight_decay and self.decays and self.decays[index]:
                update = update + self.own_weight_decay * variable
        self.assign_sub(variable, lr * update)

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      bias_correction=self.bias_correction)
        return config


def decay_exempt(variables) -> list:
    """Variables the reference does not decay: LayerNorm scales/offsets and all biases."""
    return [v for v in variables if NO_DECAY_PATTERN.search(v.path)]


def create_optimizer(config: TrainConfig, variables, precision: str = "float32",
                     multipliers: list[float] | None = None) -> keras.optimizers.Optimizer:
    """The optimizer for `variables` (built, so its slots exist before checkpoint restore),
    with optional per-variable learning-rate `multipliers`."""
    schedule = WarmupLinearDecay(config.learning_rate, config.steps, config.warmup_steps)
    exempt = decay_exempt(variables)
    decays = [not NO_DECAY_PATTERN.search(v.path) for v in variables]
    optimizer = ElectraAdamW(schedule, weight_decay=config.weight_decay,
                             beta_1=config.adam_beta1, beta_2=config.adam_beta2,
                             epsilon=config.adam_epsilon, bias_correction=config.bias_correction,
                             multipliers=multipliers, decays=decays)
    if multipliers is None:
        optimizer.exclude_from_weight_decay(var_list=exempt)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(variables)
    return optimizer
