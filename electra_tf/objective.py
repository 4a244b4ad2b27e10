"""The ELECTRA pretraining objective, in one place (Clark et al., 2020, section 2).

    "We train two neural networks, a generator G and a discriminator D. [...] The generator is
    trained to perform masked language modeling. [...] The discriminator is trained to
    distinguish tokens in the data from tokens that have been replaced by generator samples.
    [...] We minimize the combined loss  L_MLM(x, theta_G) + lambda * L_Disc(x, theta_D).
    [...] we don't back-propagate the discriminator loss through the generator."

The batch arrives already masked (see `data/masking.py`): `input_ids` holds [MASK] (or the kept
original) at `masked_lm_positions`, whose original tokens are `masked_lm_ids`.

Losses are means over the *global* batch: the trainer passes `normalizers`, the token counts of
the whole batch across replicas and micro-batches (see `loss_normalizers`), so the per-replica,
per-micro-batch losses add up to exactly the loss of one big batch. Metrics are returned as
(numerator, denominator) sums for the same reason. Sampling noise is keyed by example
(`sampling.py`), so the split of the batch does not change the samples either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tensorflow as tf

from electra_tf.config import ObjectiveConfig
from electra_tf.models import ElectraNetworks
from electra_tf.sampling import gumbel_sample

Batch = dict[str, tf.Tensor]
Ratio = tuple[tf.Tensor, tf.Tensor]  # (numerator, denominator), summed over tokens

# The metrics `electra_objective` returns as ratios, by objective kind (the one list of them).
MLM_RATIOS = ("masked_lm_loss", "masked_lm_accuracy")
RATIO_NAMES = {
    "mlm": MLM_RATIOS,
    "electra": MLM_RATIOS + ("sampled_masked_lm_accuracy", "disc_loss", "disc_accuracy",
                             "disc_precision", "disc_recall"),
}


@dataclass
class ObjectiveOutput:
    loss: tf.Tensor                       # the total loss to minimise (this replica's share)
    ratios: dict[str, Ratio]              # metric name -> (numerator, denominator)
    extras: dict[str, tf.Tensor] = field(default_factory=dict)  # tensors for AUC and summaries


def scatter_at_positions(ids: tf.Tensor, positions: tf.Tensor, values: tf.Tensor,
                         weights: tf.Tensor) -> tf.Tensor:
    """Writes `values` [B, N] into `ids` [B, L] at `positions` where `weights` > 0."""
    seq_length = ids.shape[1] or tf.shape(ids)[1]
    hits = tf.one_hot(positions, seq_length, dtype=tf.int32) * tf.cast(
        weights > 0, tf.int32)[:, :, None]                                    # [B, N, L]
    written = tf.reduce_max(hits, axis=1) > 0                                 # [B, L]
    new_values = tf.reduce_sum(hits * values[:, :, None], axis=1)             # [B, L]
    return tf.where(written, new_values, ids)


def loss_normalizers(batch: Batch) -> dict[str, tf.Tensor]:
    """The denominators of the two losses: masked tokens (MLM) and real tokens (discriminator)."""
    return {"mlm": tf.reduce_sum(tf.cast(batch["masked_lm_weights"], tf.float32)),
            "disc": tf.reduce_sum(tf.cast(batch["input_mask"], tf.float32))}


def _weighted_mean(values: tf.Tensor, weights: tf.Tensor, normalizer: tf.Tensor
                   ) -> tuple[tf.Tensor, Ratio]:
    numerator = tf.reduce_sum(values * weights)
    return numerator / (normalizer + 1e-6), (numerator, tf.reduce_sum(weights))


def electra_objective(networks: ElectraNetworks, batch: Batch, *, config: ObjectiveConfig,
                      seed: tf.Tensor, example_ids: tf.Tensor | None = None,
                      normalizers: dict[str, tf.Tensor] | None = None,
                      training: bool = True) -> ObjectiveOutput:
    """One forward pass of the ELECTRA objective (or of plain MLM for `config.kind == "mlm"`).

    seed: int scalar for this step's sampling; example_ids: int [batch], each example's index in
    the global stream (default 0..batch-1); normalizers: see `loss_normalizers` (default: this
    batch's own counts).
    """
    ids, input_mask, segment_ids = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
    if normalizers is None:
        normalizers = loss_normalizers(batch)
    if example_ids is None:
        example_ids = tf.range(tf.shape(ids)[0])
    positions, weights = batch["masked_lm_positions"], batch["masked_lm_weights"]
    targets = batch["masked_lm_ids"]
    weights = tf.cast(weights, tf.float32)

    # 1. The generator predicts the original tokens at the masked positions (MLM loss).
    mlm_logits = networks.generator(ids, input_mask, segment_ids, positions, training=training)
    mlm_per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, mlm_logits)
    mlm_loss, mlm_ratio = _weighted_mean(mlm_per_token, weights, normalizers["mlm"])
    predicted = tf.argmax(mlm_logits, axis=-1, output_type=tf.int32)
    ratios = {
        "masked_lm_loss": mlm_ratio,
        "masked_lm_accuracy": (tf.reduce_sum(tf.cast(predicted == targets, tf.float32) * weights),
                               mlm_ratio[1]),
    }
    if config.kind == "mlm":
        return ObjectiveOutput(loss=config.mlm_weight * mlm_loss, ratios=ratios)

    # 2. Replace the masked-out tokens with samples from the generator (no gradient flows back).
    sampled = gumbel_sample(mlm_logits, seed, example_ids, config.temperature)
    ratios["sampled_masked_lm_accuracy"] = (
        tf.reduce_sum(tf.cast(sampled == targets, tf.float32) * weights), mlm_ratio[1])
    original = scatter_at_positions(ids, positions, targets, weights)
    corrupted = scatter_at_positions(original, positions, sampled, weights)

    # 3. The discriminator predicts, for every token, whether it was replaced. A sample equal
    #    to the original token counts as original. The loss covers every non-pad token.
    real = tf.cast(input_mask, tf.float32)
    labels = tf.cast(tf.not_equal(corrupted, original), tf.float32) * real
    assert networks.discriminator is not None  # electra networks have one
    disc_logits = networks.discriminator(corrupted, input_mask, segment_ids, training=training)
    disc_per_token = tf.nn.sigmoid_cross_entropy_with_logits(labels, disc_logits)
    disc_loss, disc_ratio = _weighted_mean(disc_per_token, real, normalizers["disc"])

    flagged = tf.cast(disc_logits > 0.0, tf.float32) * real
    true_positives = tf.reduce_sum(flagged * labels)
    ratios.update({
        "disc_loss": disc_ratio,
        "disc_accuracy": (tf.reduce_sum(tf.cast(tf.equal(flagged, labels), tf.float32) * real),
                          disc_ratio[1]),
        "disc_precision": (true_positives, tf.reduce_sum(flagged)),
        "disc_recall": (true_positives, tf.reduce_sum(labels)),
    })

    # 4. The combined loss: L_MLM + lambda * L_Disc, lambda = 50.
    loss = config.mlm_weight * mlm_loss + config.disc_weight * disc_loss
    extras = {"disc_probs": tf.sigmoid(disc_logits), "disc_labels": labels,
              "disc_weights": real, "corrupted_ids": corrupted, "sampled_ids": sampled}
    return ObjectiveOutput(loss=loss, ratios=ratios, extras=extras)


def total_loss_from_ratios(ratios: dict[str, tf.Tensor], config: ObjectiveConfig) -> tf.Tensor:
    """The total loss computed from reduced metric values (for logging)."""
    loss = config.mlm_weight * ratios["masked_lm_loss"]
    if config.kind == "electra":
        loss += config.disc_weight * ratios["disc_loss"]
    return loss
