"""The optimizer: AdamW against a hand-computed reference, weight-decay exclusions on the real
variable names, the warmup x linear-decay schedule, and global-norm clipping in the train step."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import TrainConfig, config_from_dict
from electra_tf.models import build_networks
from electra_tf.training.optimizer import create_optimizer

# The reference's constants (docs/electra-reference.md, "Optimizer"), not read from the code.
BETA1, BETA2, EPSILON, WEIGHT_DECAY = 0.9, 0.999, 1e-6, 0.01

# Gradient magnitudes from 1e-5 to 1: at the small end sqrt(v) is below epsilon, so the
# update depends on epsilon, not just on the sign of the gradient.
W0 = np.array([1.0, -0.5, 2.0, 0.25, -1.5], np.float32)
GRADS = [np.array([1e-5, -1e-4, 1e-3, 0.1, -1.0], np.float32),
         np.array([-2e-5, 3e-4, 1e-3, -0.05, 0.5], np.float32)]


def reference_adamw(w, grads, lrs, weight_decay, bias_correction):
    """The reference update, in float64: update = m / (sqrt(v) + eps) + wd * w; w -= lr * update."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, (g, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        g = g.astype(np.float64)
        m = BETA1 * m + (1 - BETA1) * g
        v = BETA2 * v + (1 - BETA2) * g * g
        m_hat, v_hat = m, v
        if bias_correction:
            m_hat, v_hat = m / (1 - BETA1 ** t), v / (1 - BETA2 ** t)
        w = w - lr * (m_hat / (np.sqrt(v_hat) + EPSILON) + weight_decay * w)
    return w


@pytest.mark.parametrize("bias_correction", [False, True])
def test_adamw_steps_match_the_reference_formula(bias_correction):
    train = {"learning_rate": 0.1, "steps": 10, "warmup_steps": 0}
    if bias_correction:
        train["bias_correction"] = True  # as a config file would set it
    config = config_from_dict({"train": train}).train
    assert config.bias_correction is bias_correction  # the default is the reference's: off
    kernel = keras.Variable(W0, name="kernel")
    bias = keras.Variable(W0, name="bias")
    optimizer = create_optimizer(config, [kernel, bias])
    for g in GRADS:
        optimizer.apply([tf.constant(g), tf.constant(g)], [kernel, bias])
    lrs = [0.1 * (1 - s / 10) for s in range(len(GRADS))]  # no warmup: linear decay only
    np.testing.assert_allclose(
        kernel.numpy(), reference_adamw(W0, GRADS, lrs, WEIGHT_DECAY, bias_correction),
        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        bias.numpy(), reference_adamw(W0, GRADS, lrs, 0.0, bias_correction),
        rtol=1e-5, atol=1e-6)


def _role(path):
    """What a variable is, from its path: the reference decays kernels and embeddings only."""
    last = path.rsplit("/", 1)[-1]
    if last in ("gamma", "beta"):
        assert "LayerNorm" in path, path
        return "layer_norm"
    if last in ("bias", "output_bias"):
        return "bias"
    if last == "kernel":
        return "kernel"
    if path.startswith("embeddings/") and last.endswith("_embeddings"):
        return "embedding"
    raise AssertionError(f"unexpected variable {path}: classify it for weight decay")


def test_weight_decay_skips_layer_norm_and_biases_of_the_real_model(tiny_model_config):
    keras.utils.set_random_seed(0)
    variables = build_networks(tiny_model_config).trainable_variables
    paths = [v.path for v in variables]
    assert "generator/output_bias" in paths
    assert "embeddings/LayerNorm/gamma" in paths
    # Ones everywhere (zero-initialised biases would hide decay) and zero gradients: Adam's
    # m / (sqrt(v) + eps) is then 0, so a variable moves only if the optimizer decays it.
    for v in variables:
        v.assign(tf.ones_like(v))
    optimizer = create_optimizer(
        TrainConfig(learning_rate=0.1, steps=10, warmup_steps=0, weight_decay=0.5), variables)
    optimizer.apply([tf.zeros_like(v) for v in variables], variables)
    decayed = {v.path: not np.all(v.numpy() == 1.0) for v in variables}
    for v in variables:
        if decayed[v.path]:
            np.testing.assert_allclose(v.numpy(), 1.0 - 0.1 * 0.5, rtol=1e-6, err_msg=v.path)
    roles = {path: _role(path) for path in paths}
    wrong = sorted(path for path, role in roles.items()
                   if decayed[path] != (role in ("kernel", "embedding")))
    assert not wrong, f"wrong weight-decay decision for {wrong}"
    assert set(roles.values()) == {"layer_norm", "bias", "kernel", "embedding"}


PEAK, TOTAL, WARMUP = 5e-4, 1000, 100


@pytest.mark.parametrize("step, expected", [
    (0, 0.0),
    (1, PEAK * 0.01 * 0.999),
    (50, PEAK * 0.5 * 0.95),       # warmup multiplies the decay, it does not replace it
    (99, PEAK * 0.99 * 0.901),
    (100, PEAK * 0.9),             # warmup boundary
    (101, PEAK * 0.899),
    (500, PEAK * 0.5),
    (999, PEAK * 0.001),
    (1000, 0.0),
    (1500, 0.0),                   # past the end: zero, not negative
])
def test_learning_rate_schedule(step, expected):
    assert expected == pytest.approx(
        PEAK * min(1.0, step / WARMUP) * max(0.0, 1.0 - step / TOTAL), abs=1e-12)
    w = keras.Variable(np.zeros(2, np.float32), name="kernel")
    optimizer = create_optimizer(
        TrainConfig(learning_rate=PEAK, steps=TOTAL, warmup_steps=WARMUP), [w])
    optimizer.iterations.assign(step)
    # float32: 1 - 999/1000 keeps only ~5 significant digits.
    assert float(optimizer.learning_rate) == pytest.approx(expected, rel=1e-4, abs=1e-12)


# Two tensors with global norm 5 (3 and 4): clipping each tensor on its own would differ.


def test_learning_rate_multipliers_scale_the_whole_update_decay_included():
    # Layer-wise decay: var -= lr * factor * (m / (sqrt(v) + eps) + wd * var), decay skipped
    # for LayerNorm/bias variables, no bias correction (the reference's AdamW).
    kernel = keras.Variable(np.ones((2, 2), np.float32), name="kernel")
    bias = keras.Variable(np.ones(2, np.float32), name="bias")
    train = TrainConfig(learning_rate=0.1, steps=1000, warmup_steps=0, weight_decay=0.01)
    optimizer = create_optimizer(train, [kernel, bias], multipliers=[0.5, 0.25])
    grads = [np.full((2, 2), 0.3, np.float32), np.full(2, -0.2, np.float32)]
    expected = [kernel.numpy().astype(np.float64), bias.numpy().astype(np.float64)]
    m = [np.zeros_like(e) for e in expected]
    v = [np.zeros_like(e) for e in expected]
    for step in range(2):
        lr = 0.1 * (1 - step / 1000)
        optimizer.apply([tf.constant(g) for g in grads], [kernel, bias])
        settings = zip(grads, (0.5, 0.25), (True, False), strict=True)
        for i, (g, factor, decays) in enumerate(settings):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            update = m[i] / (np.sqrt(v[i]) + 1e-6) + (0.01 * expected[i] if decays else 0.0)
            expected[i] = expected[i] - lr * factor * update
    np.testing.assert_allclose(kernel.numpy(), expected[0], rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), expected[1], rtol=1e-5)


def test_one_multiplier_per_variable_is_required():
    w = keras.Variable(np.ones(2, np.float32), name="w")
    with pytest.raises(ValueError, match="2 learning-rate multipliers for 1 variables"):
        create_optimizer(TrainConfig(), [w], multipliers=[1.0, 0.5])
