"""The compiled train step: clipping by the global norm (before the optimizer sees the
gradients), and the step seed."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import TrainConfig
from electra_tf.training.step import TrainStep, step_seed


def test_step_seed_depends_on_the_run_seed_and_the_step_only():
    seeds = {int(step_seed(run, tf.constant(step))) for run in (0, 1) for step in (0, 1, 2)}
    assert len(seeds) == 6
    assert int(step_seed(3, tf.constant(5))) == int(step_seed(3, tf.constant(5, tf.int64)))


G1, G2 = np.array([1.0, 2.0, 2.0], np.float32), np.array([[4.0]], np.float32)


@pytest.mark.parametrize("scale, clip_norm, expected_factor", [
    (1.0, 1.0, 1.0 / 5.0),
    (1.0, 2.0, 2.0 / 5.0),   # clips at train.clip_norm, not a hard-coded 1.0
    (0.1, 1.0, 1.0),         # a norm of 0.5 is left alone
    (1.0, 10.0, 1.0),
])
def test_train_step_clips_by_global_norm(scale, clip_norm, expected_factor):
    # Plain SGD with lr 1 applies the clipped gradient as is (Adam would hide its scale).
    w1 = keras.Variable(np.zeros(3, np.float32), name="w1")
    w2 = keras.Variable(np.zeros((1, 1), np.float32), name="w2")
    step = TrainStep(tf.distribute.get_strategy(), None,
                     SimpleNamespace(trainable_variables=[w1, w2]),
                     keras.optimizers.SGD(learning_rate=1.0), TrainConfig(clip_norm=clip_norm),
                     tf.Variable(0, dtype=tf.int64))
    grad_norm = step._update([tf.constant(G1 * scale), tf.constant(G2 * scale)])
    assert float(grad_norm) == pytest.approx(5.0 * scale, rel=1e-6)  # reported before clipping
    np.testing.assert_allclose(w1.numpy(), -G1 * scale * expected_factor, rtol=1e-6)
    np.testing.assert_allclose(w2.numpy(), -G2 * scale * expected_factor, rtol=1e-6)
