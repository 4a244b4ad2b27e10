"""Sampling replacement tokens from the generator (docs/algorithm.md, objective step 6).

Gumbel-max: argmax(logits / temperature + g) with g = -log(-log(u)), u ~ Uniform(0, 1), which
draws exactly from softmax(logits / temperature). It runs in float32 and under stop_gradient.

The uniform noise is a counter-based hash of (step seed, example index, position, vocab id), so
every example draws the same sample no matter how the global batch is split across replicas or
micro-batches: MirroredStrategy, TPU and gradient accumulation give the same results as one
device with one big batch, and a resumed run draws what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import tensorflow as tf

_U32 = tf.uint32


def _mix32(h: tf.Tensor) -> tf.Tensor:
    """A 32-bit avalanche mixer (MurmurHash3's finaliser)."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, _U32)))
    h = h * tf.constant(0x85EBCA6B, _U32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(13, _U32)))
    h = h * tf.constant(0xC2B2AE35, _U32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, _U32)))


def example_uniform(seed: tf.Tensor, example_ids: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    """Uniform(0, 1) float32 noise of shape [batch, *shape], a pure function of
    (seed, example id, element index).

    seed: int scalar (e.g. derived from the run seed and the step); example_ids: int [batch],
    the examples' indices in the global batch stream.

    The hash is XLA-compiled even when the surrounding step is not: as separate TensorFlow ops
    it makes ~20 passes over the [batch, n, vocab] tensor (the largest in the step), fused it
    makes one. The values are the same either way (integer arithmetic and exact conversions).
    """
    return _example_uniform_xla(tf.convert_to_tensor(seed), tf.convert_to_tensor(example_ids),
                                tuple(int(d) for d in shape))


def _example_uniform(seed: tf.Tensor, example_ids: tf.Tensor, shape: tuple[int, int]
                     ) -> tf.Tensor:
    count = shape[0] * shape[1]
    seed = tf.cast(tf.cast(seed, tf.int64) % (2**32), _U32)
    example_key = _mix32(_mix32(tf.cast(tf.cast(example_ids, tf.int64) % (2**32), _U32)
                                + tf.constant(0x9E3779B9, _U32)) ^ seed)           # [batch]
    counter = tf.cast(tf.range(count), _U32)                                        # [n * v]
    h = _mix32(_mix32(counter[None, :] ^ example_key[:, None]) + example_key[:, None])
    return tf.reshape(unit_interval(h), (-1, shape[0], shape[1]))


def unit_interval(bits: tf.Tensor) -> tf.Tensor:
    """uint32 hash values -> float32 in (0, 1), never exactly 0 or 1: (k + 0.5) / 2^23 for the
    23 high bits k. (With 24 bits, (2^24 - 1) + 0.5 is not a float32 and rounds up to 2^24:
    u = 1 and an infinite Gumbel noise for one element in 2^24.) The extremes are 2^-24 and
    1 - 2^-24, so the Gumbel noise stays within [-2.8, 16.6]."""
    k = tf.bitwise.right_shift(bits, tf.constant(9, _U32))
    return (tf.cast(k, tf.float32) + 0.5) / 2.0**23


_example_uniform_xla = tf.function(_example_uniform, jit_compile=True)


def gumbel_sample(logits: tf.Tensor, seed: tf.Tensor, example_ids: tf.Tensor,
                  temperature: float = 1.0) -> tf.Tensor:
    """Samples [batch, n] token ids from softmax(logits / temperature); logits [batch, n, v]."""
    logits = tf.stop_gradient(tf.cast(logits, tf.float32)) / temperature
    uniform = example_uniform(seed, example_ids, (logits.shape[1], logits.shape[2]))
    # The logarithms stay TensorFlow ops when the step is not compiled: XLA's CPU backend
    # evaluates them element by element, several times slower than TensorFlow's vectorised
    # kernels (docs/performance.md).
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.stop_gradient(tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32))
