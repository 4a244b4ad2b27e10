"""Statistics of the dynamic masking op (reference objective, steps 1-4)."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.config import ObjectiveConfig
from electra_tf.data.masking import SpecialTokens, mask_tokens


def max_predictions_per_seq(mask_prob, seq_length):
    return ObjectiveConfig(mask_prob=mask_prob).max_predictions_for(seq_length)


SPECIAL = SpecialTokens(pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4)
L = 128
P = 0.15
N = max_predictions_per_seq(P, L)


def random_batch(rng, batch, seq=L, min_len=3):
    """Packed-looking sequences: [CLS] tokens [SEP] tokens [SEP], a few literal [MASK]s, pads."""
    ids = np.zeros([batch, seq], np.int32)
    mask = np.zeros([batch, seq], np.int32)
    for row in range(batch):
        n = int(rng.integers(min_len, seq + 1))
        ids[row, :n] = rng.integers(5, 1000, n)
        ids[row, 0] = SPECIAL.cls_id
        ids[row, n - 1] = SPECIAL.sep_id
        if n > 6:
            ids[row, int(rng.integers(1, n - 1))] = SPECIAL.sep_id
            ids[row, int(rng.integers(1, n - 1))] = SPECIAL.mask_id  # never a candidate
        mask[row, :n] = 1
    return ids, mask


def expected_count(ids, mask, prob=P, max_predictions=N):
    num_tokens = mask.sum(1).astype(np.float32)
    # float32 like the reference (TF1 computed num_tokens * mask_prob in float32).
    count = np.round(num_tokens * np.float32(prob)).astype(np.int32)
    count = np.maximum(1, np.minimum(max_predictions, count))
    candidates = (mask == 1) & ~np.isin(ids, [SPECIAL.cls_id, SPECIAL.sep_id, SPECIAL.mask_id,
                                              SPECIAL.pad_id])
    return np.minimum(count, candidates.sum(1)), candidates


def run(ids, mask, seed, **kwargs):
    out = mask_tokens(tf.constant(ids), tf.constant(mask), tf.constant(seed, tf.int64),
                      special=SPECIAL, mask_prob=kwargs.pop("mask_prob", P),
                      max_predictions=kwargs.pop("max_predictions", N), **kwargs)
    return {k: v.numpy() for k, v in out.items()}


def test_max_predictions_formula():
    assert max_predictions_per_seq(0.15, 128) == 19
    assert max_predictions_per_seq(0.15, 512) == 79
    assert max_predictions_per_seq(0.25, 512) == 130


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    ids, mask = random_batch(rng, 2048)
    return ids, mask, run(ids, mask, [3, 4])


def test_exact_counts_and_layout(samples):
    ids, mask, out = samples
    count, candidates = expected_count(ids, mask)
    weights = out["masked_lm_weights"]
    assert weights.shape == (len(ids), N) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights.sum(1).astype(np.int32), count)
    # Used slots first, unused slots: position 0, weight 0, id 0.
    for row in range(len(ids)):
        used = int(count[row])
        assert (weights[row, :used] == 1).all() and (weights[row, used:] == 0).all()
        assert (out["masked_lm_positions"][row, used:] == 0).all()
        assert (out["masked_lm_ids"][row, used:] == 0).all()
        positions = out["masked_lm_positions"][row, :used]
        assert len(set(positions.tolist())) == used                      # no duplicates
        assert candidates[row, positions].all()                          # never special/pad
        np.testing.assert_array_equal(out["masked_lm_ids"][row, :used], ids[row, positions])


def test_counts_include_cls_and_sep():
    # 10 real tokens incl. [CLS]/[SEP]: round(1.5) = 2; counting only the 8 inner ones gives 1.
    ids = np.array([[2, 10, 11, 12, 13, 14, 15, 16, 17, 3] + [0] * 6], np.int32)
    mask = (ids != 0).astype(np.int32)
    assert run(ids, mask, [1, 1], max_predictions=3)["masked_lm_weights"].sum() == 2
    # Tiny sequence: max(1, round(0.45)) = 1. Max predictions caps the count.
    small = np.array([[2, 10, 3, 0]], np.int32)
    assert run(small, (small != 0).astype(np.int32), [1, 1],
               max_predictions=2)["masked_lm_weights"].sum() == 1
    full = np.full([1, 64], 7, np.int32)
    out = run(full, np.ones_like(full), [1, 1], mask_prob=0.5, max_predictions=5)
    assert out["masked_lm_weights"].sum() == 5


def test_mask_token_split_and_only_chosen_positions_change(samples):
    ids, mask, out = samples
    changed = out["input_ids"] != ids
    chosen = np.zeros_like(changed)
    masked = kept = 0
    for row in range(len(ids)):
        used = int(out["masked_lm_weights"][row].sum())
        positions = out["masked_lm_positions"][row, :used]
        chosen[row, positions] = True
        became_mask = out["input_ids"][row, positions] == SPECIAL.mask_id
        masked += int(became_mask.sum())
        kept += int((out["input_ids"][row, positions] == ids[row, positions]).sum())
    assert not (changed & ~chosen).any()                 # nothing else is touched
    assert masked + kept == int(chosen.sum())            # no random replacement tokens
    fraction = masked / chosen.sum()
    assert abs(fraction - 0.85) < 0.015, fraction        # ~28k draws: sd ~0.002


def test_positions_uniform_among_candidates():
    # All rows identical: every candidate position should be chosen about equally often.
    rng = np.random.default_rng(1)
    ids, mask = random_batch(rng, 1, min_len=L)
    ids = np.repeat(ids, 4000, 0)
    mask = np.repeat(mask, 4000, 0)
    out = run(ids, mask, [9, 9])
    count, candidates = expected_count(ids[:1], mask[:1])
    hits = np.zeros(L)
    for row in range(len(ids)):
        np.add.at(hits, out["masked_lm_positions"][row, :count[0]], 1)
    expected = len(ids) * count[0] / candidates.sum()
    assert (hits[~candidates[0]] == 0).all()
    observed = hits[candidates[0]]
    assert np.abs(observed - expected).max() < 6 * np.sqrt(expected), (observed.min(),
                                                                     observed.max(), expected)


def test_seeds():
    rng = np.random.default_rng(2)
    ids, mask = random_batch(rng, 64)
    a, b, c = run(ids, mask, [1, 2]), run(ids, mask, [1, 2]), run(ids, mask, [1, 3])
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert (a["masked_lm_positions"] != c["masked_lm_positions"]).any()
    assert (a["input_ids"] != c["input_ids"]).any()


def test_single_example_and_static_shapes():
    ids, mask = random_batch(np.random.default_rng(3), 1)
    one = run(ids[0], mask[0], [5, 5])
    assert one["masked_lm_positions"].shape == (N,) and one["input_ids"].shape == (L,)
    with pytest.raises(ValueError, match="max_predictions"):
        run(ids[:, :8], mask[:, :8], [1, 1], max_predictions=9)


def test_inside_xla_compiled_function():
    rng = np.random.default_rng(4)
    ids, mask = random_batch(rng, 256)

    @tf.function(jit_compile=True)
    def compiled(ids, mask, seed):
        return mask_tokens(ids, mask, seed, special=SPECIAL, mask_prob=P, max_predictions=N)

    seed = tf.constant([7, 8], tf.int64)
    first = {k: v.numpy() for k, v in compiled(tf.constant(ids), tf.constant(mask), seed).items()}
    again = {k: v.numpy() for k, v in compiled(tf.constant(ids), tf.constant(mask), seed).items()}
    other = compiled(tf.constant(ids), tf.constant(mask), tf.constant([7, 9], tf.int64))
    for key in first:  # only compare within one mode: XLA's RNG differs from the CPU kernel
        np.testing.assert_array_equal(first[key], again[key])
    assert (first["masked_lm_positions"] != other["masked_lm_positions"].numpy()).any()
    count, candidates = expected_count(ids, mask)
    np.testing.assert_array_equal(first["masked_lm_weights"].sum(1).astype(np.int32), count)
    for row in range(len(ids)):
        assert candidates[row, first["masked_lm_positions"][row, :count[row]]].all()
