"""Small synthetic, already-masked batches for trainer tests (no tokenizer needed)."""

import numpy as np
import tensorflow as tf

from electra_tf.data.masking import SpecialTokens, mask_tokens

SPECIAL = SpecialTokens(pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4)


def synthetic_examples(num: int, seq_length: int, vocab_size: int, max_predictions: int,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """`num` masked examples with a learnable pattern (token i+1 follows token i)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((num, seq_length), np.int32)
    mask = np.zeros((num, seq_length), np.int32)
    segments = np.zeros((num, seq_length), np.int32)
    for row in range(num):
        length = int(rng.integers(seq_length // 2, seq_length + 1))
        start = int(rng.integers(5, vocab_size - seq_length))
        ids[row, :length] = np.arange(start, start + length)
        ids[row, 0], ids[row, length - 1] = SPECIAL.cls_id, SPECIAL.sep_id
        mask[row, :length] = 1
        segments[row, length // 2:length] = 1
    masked = mask_tokens(ids, mask, tf.constant([seed, 7]), special=SPECIAL, mask_prob=0.15,
                         max_predictions=max_predictions)
    out = {k: v.numpy() for k, v in masked.items()}
    out.update(input_mask=mask, segment_ids=segments)
    return out


def dataset_fn(examples: dict[str, np.ndarray], global_batch: int):
    """A `distribute_datasets_from_function` input: the examples in order, repeated."""

    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch)
        ds = tf.data.Dataset.from_tensor_slices(examples).repeat()
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        return ds.batch(batch, drop_remainder=True)

    return make


def tiny_config(run_dir, seq_length: int, vocab_size: int, **train):
    """A one-layer `tiny` pretraining RunConfig for these batches, with `train` settings."""
    from electra_tf.config import config_from_dict

    return config_from_dict({
        "model": {"preset": "tiny", "vocab_size": vocab_size, "num_layers": 1},
        "data": {"seq_length": seq_length},
        "train": {"run_dir": str(run_dir), **train},
    })
