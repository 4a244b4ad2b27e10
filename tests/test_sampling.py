"""Gumbel-max sampling of replacements: the softmax distribution at any temperature, noise keyed
by example (not by how the batch is split), and noise that stays finite."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.sampling import example_uniform, gumbel_sample, unit_interval


def test_gumbel_sampling_matches_the_softmax_distribution():
    logits = tf.constant([[[0.0, 1.0, 2.0, -1.0]]] * 4000)
    samples = gumbel_sample(logits, tf.constant(9), tf.range(4000))
    freq = np.bincount(samples.numpy().ravel(), minlength=4) / 4000
    np.testing.assert_allclose(freq, tf.nn.softmax(logits[0, 0]).numpy(), atol=0.03)
    assert samples.dtype == tf.int32


def test_sampling_noise_is_keyed_by_example_not_by_batch_split():
    full = example_uniform(tf.constant(4), tf.range(8), (3, 7))
    halves = tf.concat([example_uniform(tf.constant(4), tf.range(4), (3, 7)),
                        example_uniform(tf.constant(4), tf.range(4, 8), (3, 7))], 0)
    np.testing.assert_array_equal(full.numpy(), halves.numpy())
    other_seed = example_uniform(tf.constant(5), tf.range(8), (3, 7))
    assert not np.array_equal(full.numpy(), other_seed.numpy())
    assert 0.0 < float(tf.reduce_min(full)) and float(tf.reduce_max(full)) < 1.0


def test_uniform_noise_never_reaches_0_or_1():
    # The extreme hash values map strictly inside (0, 1), so the Gumbel noise stays finite.
    # (A 24-bit version rounded 2^24 - 0.5 up to 1.0: +inf noise once per 2^24 elements.)
    bits = tf.constant([0, 1, 2**31, 2**32 - 512, 2**32 - 1], tf.uint32)
    u = unit_interval(bits).numpy()
    assert u.min() > 0.0 and u.max() < 1.0
    assert np.all(np.diff(u) >= 0)
    gumbel = -np.log(-np.log(u))
    assert np.all(np.isfinite(gumbel)) and gumbel.max() < 17.0


def test_a_dominant_logit_is_always_sampled():
    # Over ~10M noise draws (several times 2^24 / vocab per position): a logit 40 above the
    # rest wins every time, as it must when the noise is finite (at most ~16.6 apart).
    logits = tf.concat([tf.fill([64, 19, 1], 40.0), tf.zeros([64, 19, 8191])], axis=-1)
    for seed in range(2):
        samples = gumbel_sample(logits, tf.constant(seed), tf.range(64))
        assert int(tf.reduce_max(samples)) == 0


@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_gumbel_sampling_matches_the_tempered_softmax(temperature):
    logits = tf.constant([[[0.0, 1.0, 2.0, -1.0]]] * 4000)
    samples = gumbel_sample(logits, tf.constant(9), tf.range(4000), temperature=temperature)
    freq = np.bincount(samples.numpy().ravel(), minlength=4) / 4000
    expected = tf.nn.softmax(logits[0, 0] / temperature).numpy()
    untempered = tf.nn.softmax(logits[0, 0]).numpy()
    assert np.abs(expected - untempered).max() > 0.15     # the test can tell them apart
    np.testing.assert_allclose(freq, expected, atol=0.03)
