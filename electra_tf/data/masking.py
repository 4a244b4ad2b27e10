"""Dynamic masking for ELECTRA / BERT pretraining (reference objective, steps 1-4).

Pure TensorFlow with static output shapes and stateless randomness, so the same op runs inside
`tf.data` (fresh masks every epoch) and inside a compiled train step:

1. Candidates: every real token except [CLS], [SEP], [MASK] and padding.
2. Count per sequence: n = max(1, min(N, round(num_tokens * mask_prob))), where num_tokens counts
   [CLS]/[SEP] and N = max_predictions (never more than the number of candidates; its default,
   `ObjectiveConfig.max_predictions_for`, is int((mask_prob + 0.005) * seq_length)).
3. Positions drawn uniformly among the candidates; unused slots get position 0 and weight 0.
4. Of the chosen positions, `mask_token_fraction` (85%) become [MASK], the rest keep their token.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

# The stateless random algorithm of the whole input pipeline (masking and packing), named
# explicitly: the default algorithm differs between XLA and CPU kernels.
RNG_ALG = tf.random.Algorithm.PHILOX


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens in the vocabulary."""

    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int


def mask_tokens(input_ids: tf.Tensor, input_mask: tf.Tensor, seed: tf.Tensor, *,
                special: SpecialTokens, mask_prob: float, max_predictions: int,
                mask_token_fraction: float = 0.85) -> dict[str, tf.Tensor]:
    """Chooses and masks positions in a batch of packed sequences.

    Args:
      input_ids: int32 [batch, seq] original token ids (a single [seq] example is accepted).
      input_mask: int [batch, seq], 1 for real tokens (including [CLS]/[SEP]), 0 for padding.
      seed: int32/int64 [2], the stateless seed; the same seed gives the same masks.

    Returns a dict with `input_ids` (masked), `masked_lm_positions` [batch, N] int32,
    `masked_lm_ids` [batch, N] int32 (the original tokens) and `masked_lm_weights` [batch, N]
    float32 (1 for used slots, 0 for padding slots at position 0).
    """
    input_ids = tf.convert_to_tensor(input_ids)
    single = input_ids.shape.rank == 1
    if single:
        input_ids, input_mask = input_ids[None], tf.convert_to_tensor(input_mask)[None]
    input_ids = tf.cast(input_ids, tf.int32)
    real = tf.cast(input_mask, tf.bool)
    seq_length = input_ids.shape[1]
    if seq_length is None:
        raise ValueError("mask_tokens needs a static sequence length; pad examples first")
    if max_predictions > seq_length:
        raise ValueError(f"max_predictions ({max_predictions}) exceeds the sequence length "
                         f"({seq_length})")
    seed = tf.cast(seed, tf.int64)
    position_seed, keep_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2, alg=RNG_ALG))

    # 1. Candidates.
    candidates = real
    for token in (special.cls_id, special.sep_id, special.mask_id, special.pad_id):
        candidates &= tf.not_equal(input_ids, token)

    # 2. How many to predict in each sequence.
    num_tokens = tf.reduce_sum(tf.cast(real, tf.float32), axis=1)
    num_candidates = tf.reduce_sum(tf.cast(candidates, tf.int32), axis=1)
    count = tf.cast(tf.round(num_tokens * mask_prob), tf.int32)
    count = tf.maximum(1, tf.minimum(max_predictions, count))
    count = tf.minimum(count, num_candidates)

    # 3. Uniform positions among the candidates: the top-N of random scores.
    scores = tf.random.stateless_uniform(tf.shape(input_ids), position_seed, alg=RNG_ALG)
    scores = tf.where(candidates, scores, -1.0)
    _, top_positions = tf.math.top_k(scores, k=max_predictions, sorted=True)
    used = tf.range(max_predictions)[None, :] < count[:, None]
    positions = tf.where(used, top_positions, 0)
    weights = tf.cast(used, tf.float32)
    original = tf.where(used, tf.gather(input_ids, positions, batch_dims=1), 0)

    # 4. 85% of the chosen positions become [MASK]; the other 15% keep the original token.
    to_mask = used & (tf.random.stateless_uniform(tf.shape(positions), keep_seed, alg=RNG_ALG)
                      < mask_token_fraction)
    hit = tf.reduce_any(tf.one_hot(positions, seq_length, on_value=True, off_value=False,
                                   dtype=tf.bool) & to_mask[:, :, None], axis=1)
    masked_ids = tf.where(hit, special.mask_id, input_ids)

    out = {
        "input_ids": masked_ids,
        "masked_lm_positions": positions,
        "masked_lm_ids": original,
        "masked_lm_weights": weights,
    }
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out
