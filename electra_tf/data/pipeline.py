"""The pretraining input pipeline: documents -> tokens -> packed examples -> masked batches.

    open_documents (sources.py)            documents, sharded per input pipeline
    shuffle (training) / repeat            documents (strings)
    batch + tokenizer.tokenize             [docs, (sentences), (tokens)], in the graph
      (cache: tokenize once, then reshuffle the cached batches every epoch)
    pack_documents (packing.py)            [examples, L] input_ids / input_mask / segment_ids
      + mask_tokens (masking.py)           fresh masks for every example, every epoch
      + shuffle of the call's examples     (training)
    rebatch(drop_remainder=True)           [B, L] (per replica)
    prefetch

All randomness is stateless and seeded from (data.seed, split, input pipeline id, running index
of the packing call), so with `data.deterministic` the stream is reproducible, while masks and
packing differ between epochs (the index keeps growing under `repeat`) and between input
pipelines. Masks are drawn where examples are made (a few hundred at a time), not per batch:
the same distribution, fewer op launches.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from electra_tf.config import DataConfig, RunConfig
from electra_tf.data.documents import graph_only, read_error
from electra_tf.data.errors import DataError
from electra_tf.data.masking import SpecialTokens, mask_tokens
from electra_tf.data.packing import pack_documents
from electra_tf.data.sources import open_documents
from electra_tf.data.tokenization import Tokenizer

# Documents per tokenizer and packing call (bigger batches amortise op overhead).
DOCUMENTS_PER_CALL = 256
_STAGE_PACK, _STAGE_MASK, _STAGE_SHUFFLE = 1, 2, 3
FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights")


def _seed_base(data_seed: int, split: str, pipeline_id: int, stage: int) -> int:
    value = ((data_seed * 1_000_003 + pipeline_id) * 2 + (split == "eval")) * 8 + stage
    return value % (1 << 62)


def _stateless_seed(base: int, index: tf.Tensor) -> tf.Tensor:
    return tf.stack([tf.constant(base, tf.int64), tf.cast(index, tf.int64)])


def tokenize_documents(tokenizer: Tokenizer, documents: tf.RaggedTensor) -> tf.RaggedTensor:
    """string [docs, (sentences)] -> int32 [docs, (sentences), (tokens)]."""
    ids = tokenizer.tokenize(documents.flat_values)
    return tf.RaggedTensor.from_row_splits(ids, tf.cast(documents.row_splits, ids.row_splits.dtype),
                                           validate=False)


def make_dataset(config: RunConfig, tokenizer: Tokenizer, *, split: str = "train",
                 batch_size: int, input_context: tf.distribute.InputContext | None = None,
                 repeat: bool = True) -> tf.data.Dataset:
    """Masked pretraining batches of `batch_size` (per replica) examples.

    Elements: dict of int32 input_ids (masked) / input_mask / segment_ids [B, L] and
    masked_lm_positions / masked_lm_ids int32, masked_lm_weights float32 [B, N], with
    L = data.seq_length and N = config.max_predictions. Training data is shuffled; evaluation data
    is read in order. Raises `DataError` (eagerly) for missing or empty inputs.

    The stages: documents (sources.py) -> `tokenized_stream` -> `examples_of` with
    `pack_and_mask_fn` -> `batched`.
    """
    data = config.data
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if tokenizer.vocab_size > config.model.vocab_size:
        raise DataError(f"the tokenizer's vocabulary ({tokenizer.vocab_path}) has "
                        f"{tokenizer.vocab_size} tokens but model.vocab_size is "
                        f"{config.model.vocab_size}; set model.vocab_size={tokenizer.vocab_size}")
    if data.source == "tfrecord":    # prepared shards: packed already, masked here
        from electra_tf.data import tfrecord
        return tfrecord.make_dataset(config, tokenizer.special, split=split,
                                     batch_size=batch_size, input_context=input_context,
                                     repeat=repeat)
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    deterministic = bool(data.deterministic)
    documents = open_documents(data, split, input_context)

    # Fail now, not deep in training (and never loop forever on an empty repeated dataset).
    _check_has_tokens(tokenized_batches(documents.dataset, tokenizer, deterministic),
                      documents.description)
    if not repeat:
        pack = pack_and_mask_fn(config, tokenizer.special, split, pipeline_id, mask=False)
        _check_examples(examples_of(tokenized_batches(documents.dataset, tokenizer,
                                                      deterministic), pack, deterministic),
                        documents.description, batch_size)

    tokenized = tokenized_stream(documents.dataset, tokenizer, data, split=split,
                                 pipeline_id=pipeline_id, repeat=repeat)
    examples = examples_of(tokenized, pack_and_mask_fn(config, tokenizer.special, split,
                                                       pipeline_id), deterministic)
    return batched(examples, batch_size, deterministic)


def tokenized_batches(docs: tf.data.Dataset, tokenizer: Tokenizer,
                      deterministic: bool) -> tf.data.Dataset:
    """Documents -> batches of DOCUMENTS_PER_CALL tokenized documents [docs, (sent), (tok)]."""
    tokenize = graph_only(lambda batch: tokenize_documents(tokenizer, batch))
    return docs.batch(DOCUMENTS_PER_CALL).map(
        tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def tokenized_stream(docs: tf.data.Dataset, tokenizer: Tokenizer, data: DataConfig, *,
                     split: str, pipeline_id: int, repeat: bool) -> tf.data.Dataset:
    """Documents shuffled (training), tokenized, cached (data.cache_tokenized) and repeated."""
    training = split == "train"
    deterministic = bool(data.deterministic)
    shuffle_base = _seed_base(data.seed, split, pipeline_id, _STAGE_SHUFFLE)
    if training:
        docs = docs.shuffle(data.shuffle_buffer, seed=shuffle_base, reshuffle_each_iteration=True)
    cache = data.cache_tokenized if data.cache_tokenized is not None else data.source == "default"
    if not cache:
        return tokenized_batches(docs.repeat() if repeat else docs, tokenizer, deterministic)
    # Tokenize once; later epochs reshuffle the cached batches of documents (which documents
    # share a packing call does not change any example, only stream order).
    tokenized = tokenized_batches(docs, tokenizer, deterministic).cache()
    if training:
        tokenized = tokenized.shuffle(64, seed=shuffle_base + 1, reshuffle_each_iteration=True)
    return tokenized.repeat() if repeat else tokenized


def pack_and_mask_fn(config: RunConfig, special: SpecialTokens, split: str, pipeline_id: int,
                     *, mask: bool = True) -> Callable[[tf.Tensor, tf.RaggedTensor], dict]:
    """The graph function (call index, tokenized documents) -> a block of examples.

    Packs (packing.py), then with `mask` draws the masks (masking.py) and, for training, shuffles
    the block's examples. Without `mask`: the packed examples only (for the eager checks).
    """
    data, objective = config.data, config.objective
    pack_base = _seed_base(data.seed, split, pipeline_id, _STAGE_PACK)
    mask_base = _seed_base(data.seed, split, pipeline_id, _STAGE_MASK)
    shuffle_base = _seed_base(data.seed, split, pipeline_id, _STAGE_SHUFFLE)
    training = split == "train"

    def pack(index, docs):
        return pack_documents(docs, _stateless_seed(pack_base, index),
                              seq_length=data.seq_length, special=special,
                              short_seq_prob=data.short_seq_prob,
                              single_segment_prob=data.single_segment_prob)

    def pack_and_mask(index, docs):
        # Masks are drawn per packing call (hundreds of examples at once, cheaper than per
        # batch); the index keeps growing under repeat, so every epoch gets fresh masks.
        examples = pack(index, docs)
        masked = mask_tokens(examples["input_ids"], examples["input_mask"],
                             _stateless_seed(mask_base, index), special=special,
                             mask_prob=objective.mask_prob,
                             max_predictions=config.max_predictions,
                             mask_token_fraction=objective.mask_token_fraction)
        out = {"input_ids": masked["input_ids"], "input_mask": examples["input_mask"],
               "segment_ids": examples["segment_ids"],
               "masked_lm_positions": masked["masked_lm_positions"],
               "masked_lm_ids": masked["masked_lm_ids"],
               "masked_lm_weights": masked["masked_lm_weights"]}
        if training:
            # Shuffle the examples of this call (they come from DOCUMENTS_PER_CALL documents
            # drawn from the shuffled document stream): cheaper than a per-example buffer.
            keys = tf.random.stateless_uniform(tf.shape(out["input_mask"])[:1],
                                               _stateless_seed(shuffle_base, index))
            order = tf.argsort(keys)
            out = {name: tf.gather(value, order) for name, value in out.items()}
        return out

    return graph_only(pack_and_mask if mask else pack)


def examples_of(tokenized: tf.data.Dataset, fn, deterministic: bool) -> tf.data.Dataset:
    """Blocks of [examples, L] of varying size, one per tokenized batch (fn: index, docs)."""
    return tokenized.enumerate().map(fn, num_parallel_calls=tf.data.AUTOTUNE,
                                     deterministic=deterministic)


def batched(examples: tf.data.Dataset, batch_size: int, deterministic: bool) -> tf.data.Dataset:
    """Blocks of examples cut into [batch_size, ...] batches (remainder dropped), prefetched."""
    dataset = examples.rebatch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def _check_has_tokens(tokenized: tf.data.Dataset, description: str) -> None:
    """Reads up to the first tokenized documents that hold any token."""
    first = (tokenized.map(graph_only(lambda docs: tf.size(docs.flat_values, tf.int64)))
             .filter(graph_only(lambda n: n > 0)).take(1))
    try:
        found = int(first.reduce(tf.constant(0, tf.int64), graph_only(lambda total, n: total + n)))
    except tf.errors.OpError as e:
        raise read_error(description, e) from None
    if found == 0:
        raise DataError(f"{description} has no text to train on: no document with a token "
                        "(empty files, only blank lines, or only characters the tokenizer drops). "
                        "Check the files, data.layout and data.source")


def _check_examples(examples: tf.data.Dataset, description: str, needed: int) -> None:
    """Without repeat, the split must fill at least one batch (batches drop the remainder)."""
    count = int(examples.unbatch().take(needed).reduce(tf.constant(0, tf.int64),
                                                       graph_only(lambda n, _: n + 1)))
    if count < needed:
        raise DataError(f"{description} gives only {count} examples, fewer than one batch of "
                        f"{needed} (batches drop the remainder): use a smaller batch, more "
                        "documents (data.eval_documents for the eval split) or repeat=True")


def dataset_fn(config: RunConfig, tokenizer: Tokenizer, split: str = "train",
               global_batch_size: int | None = None, repeat: bool | None = None
               ) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """For `strategy.distribute_datasets_from_function`: one pipeline per input context, with
    the per-replica batch of `global_batch_size` (default train.batch_size). `repeat` defaults to
    True for training and False for evaluation."""
    global_batch_size = global_batch_size or config.train.batch_size
    repeat = split == "train" if repeat is None else repeat

    def fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
        return make_dataset(config, tokenizer, split=split, batch_size=batch_size,
                            input_context=input_context, repeat=repeat)

    return fn
