"""The encoder's hand-fused pieces equal the textbook operations they replace, values and
gradients: exact GELU with a written-out derivative, and LayerNorm(x + residual) (XLA-compiled
in training, plain TensorFlow ops in inference)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.models.layers import add_layer_norm, gelu


def _values_and_grads(fn, *inputs):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = fn(*inputs)
        # A non-uniform upstream gradient, so a wrong derivative cannot cancel out.
        weights = tf.sin(tf.cast(tf.range(tf.size(out)), out.dtype))
        loss = tf.reduce_sum(out * tf.reshape(weights, tf.shape(out)))
    return out, tape.gradient(loss, inputs)


def test_gelu_is_exact_erf_gelu_with_matching_gradient():
    x = tf.constant(np.linspace(-6.0, 6.0, 1201), tf.float32)
    out, (grad,) = _values_and_grads(gelu, x)
    expected = [v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.numpy().tolist()]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    _, (reference_grad,) = _values_and_grads(lambda t: keras.ops.gelu(t, approximate=False), x)
    np.testing.assert_allclose(grad.numpy(), reference_grad.numpy(), atol=2e-6)
    # Not the tanh approximation: they differ by ~1e-3 around |x| = 2.
    tanh_form = keras.ops.gelu(x, approximate=True).numpy()
    assert np.max(np.abs(out.numpy() - tanh_form)) > 1e-4


def test_gelu_keeps_low_precision_dtype():
    x = tf.constant([-1.0, 0.5, 2.0], tf.bfloat16)
    out = gelu(x)
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(out.numpy().astype(np.float32),
                               gelu(tf.cast(x, tf.float32)).numpy(), rtol=1e-2)


@pytest.mark.parametrize("training", [True, False])
def test_add_layer_norm_matches_keras_layer_norm(training):
    rng = np.random.default_rng(0)
    hidden = 48
    layer = keras.layers.LayerNormalization(epsilon=1e-12)
    layer.build((None, hidden))
    layer.gamma.assign(rng.normal(1.0, 0.3, hidden).astype(np.float32))
    layer.beta.assign(rng.normal(0.0, 0.3, hidden).astype(np.float32))
    x = tf.constant(rng.normal(0, 2, (3, 5, hidden)), tf.float32)
    residual = tf.constant(rng.normal(1, 1, (3, 5, hidden)), tf.float32)

    ours, our_grads = _values_and_grads(
        lambda a, b: add_layer_norm(a, b, layer, training=training), x, residual)
    theirs, their_grads = _values_and_grads(lambda a, b: layer(a + b), x, residual)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=2e-5)
    for name, a, b in zip(("x", "residual"), our_grads, their_grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=name)
    # Gradients with respect to the layer's own variables.
    with tf.GradientTape(persistent=True) as tape:
        a = tf.reduce_sum(tf.square(add_layer_norm(x, residual, layer, training=training)))
        b = tf.reduce_sum(tf.square(layer(x + residual)))
    for variable in (layer.gamma, layer.beta):
        np.testing.assert_allclose(tape.gradient(a, variable).numpy(),
                                   tape.gradient(b, variable).numpy(), rtol=1e-4, atol=1e-3)


def test_add_layer_norm_under_mixed_precision_returns_input_dtype():
    layer = keras.layers.LayerNormalization(epsilon=1e-12)
    layer.build((None, 8))
    x = tf.random.stateless_normal((4, 8), (1, 2), dtype=tf.bfloat16)
    out = add_layer_norm(x, x, layer, training=True)
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(out.numpy().astype(np.float32),
                               layer(tf.cast(x + x, tf.float32)).numpy(), atol=5e-2)
