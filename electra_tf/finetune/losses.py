"""The fine-tuning losses, as weighted sums over a micro-batch (divided by the global count).

Every loss here returns the *sum* of per-example (per-token for tagging) losses times their
weights; the task divides by the global batch's total weight (`Task.loss_normalizers`,
all-reduced by the loop), so micro-batch and replica shares add up to the global-batch mean.
Padding examples (weight 0) and, in tagging, non-first sub-tokens, [CLS], [SEP] and padding
(label weight 0) contribute nothing.
"""

from __future__ import annotations

import tensorflow as tf


def classification_loss(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Summed weighted softmax cross-entropy; logits [..., N], labels int [...]."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(losses * tf.cast(weights, tf.float32))


def regression_loss(predictions: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor
                    ) -> tf.Tensor:
    """Summed weighted squared error; predictions [B] (the single output), targets [B]."""
    error = tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)
    return tf.reduce_sum(tf.square(error) * tf.cast(weights, tf.float32))


def correct_count(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Summed weights of the positions whose argmax is the label."""
    hit = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.cast(labels, tf.int32))
    return tf.reduce_sum(tf.cast(hit, tf.float32) * tf.cast(weights, tf.float32))
