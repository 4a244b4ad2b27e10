"""Packed pretraining examples in TFRecord shards (written by pipelines/), read for the trainer.

A prepared directory holds GZIP-compressed TFRecord shards of `tf.train.Example`s with three
int64 features of length `seq_length` (``input_ids``, ``input_mask``, ``segment_ids``: packed,
not masked) and a ``metadata.json`` written last, only when the job succeeded. The metadata names
the shards, the sequence length, the vocabulary (its SHA-256) and tokenizer settings, the packing
settings and counts (documents, examples, tokens, cut lines). A directory without it is
incomplete and is refused.

`make_dataset` (``data.source: tfrecord``): `data.paths` lists prepared directories (or their
shards / globs of them). Every directory's metadata must agree with the run's config (sequence
length, vocabulary, lower-casing and accent stripping), else a `DataError` before training.
Shards are split between input pipelines by file (by example when there are fewer shards than
pipelines), read interleaved and shuffled (every example once per epoch, the order new each
epoch), repeated, and masked in `tf.data` with stateless seeds
that keep growing with the stream, so every epoch gets fresh masks (as for raw text).
Evaluation reads `data.eval_paths` (prepared the same way from held-out text) in order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import tensorflow as tf

from electra_tf.config import DataConfig, RunConfig
from electra_tf.data.errors import DataError
from electra_tf.data.masking import mask_tokens
from electra_tf.data.sources import expand_paths, graph_only, read_error

log = logging.getLogger(__name__)

METADATA = "metadata.json"
FORMAT = "electra-tf packed examples"
VERSION = 1
FEATURES = ("input_ids", "input_mask", "segment_ids")
SHARD_PREFIX = "examples"
SHARD_SUFFIX = ".tfrecord.gz"
COMPRESSION = "GZIP"
# Examples masked per call (the stream is cut into blocks; rebatch makes the batches).
_BLOCK = 256
_STAGE_MASK, _STAGE_SHUFFLE = 4, 5


def vocabulary_file(data: DataConfig) -> str | None:
    """The file that defines the token ids: the WordPiece vocab or the SentencePiece model."""
    return data.sentencepiece_model if data.tokenizer == "sentencepiece" else data.vocab_file


def file_sha256(path: str) -> str:
    """SHA-256 of a (local or gs://) file, as hex."""
    digest = hashlib.sha256()
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except tf.errors.OpError as e:
        raise DataError(f"cannot read {path}: {e.message}") from None
    return digest.hexdigest()


def tokenizer_settings(data: DataConfig) -> dict:
    """What decides the token ids besides the vocabulary file (metadata ``tokenizer``)."""
    settings = {"kind": data.tokenizer}
    if data.tokenizer == "wordpiece":
        settings.update(lower_case=data.lower_case, strip_accents=data.strip_accents)
    return settings


def make_metadata(data: DataConfig, *, inputs: list[str], shards: list[str], counts: dict,
                  seed: int) -> dict:
    """The metadata.json content for shards made with `data`'s settings."""
    vocab = vocabulary_file(data)
    return {
        "format": FORMAT, "version": VERSION, "compression": COMPRESSION,
        "features": list(FEATURES), "seq_length": data.seq_length,
        "vocab_file": vocab, "vocab_sha256": file_sha256(vocab),
        "tokenizer": tokenizer_settings(data),
        "packing": {"short_seq_prob": data.short_seq_prob,
                    "single_segment_prob": data.single_segment_prob,
                    "seed": seed, "seeding": "per document (packing.document_seeds)"},
        "layout": data.layout, "inputs": inputs, "shards": shards, "counts": counts,
    }


def write_metadata(directory: str, metadata: dict) -> str:
    """Writes metadata.json atomically (temporary name, then rename)."""
    path = os.path.join(directory, METADATA)
    tmp = path + ".tmp"
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except tf.errors.OpError as e:
        raise DataError(f"cannot write {path}: {e.message}") from None
    return path


def read_metadata(directory: str) -> dict:
    """The metadata of a prepared directory; a missing or unreadable one is a DataError."""
    path = os.path.join(directory, METADATA)
    if not tf.io.gfile.exists(path):
        raise DataError(f"{directory} has no {METADATA}: it is not prepared pretraining data, or "
                        "the job that wrote it did not finish; rerun python -m "
                        "pipelines.prepare_pretraining_data")
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            metadata = json.loads(f.read())
    except (tf.errors.OpError, ValueError) as e:
        raise DataError(f"cannot read {path}: {getattr(e, 'message', e)}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DataError(f"{path} is not the metadata of electra-tf packed examples")
    return metadata


def check_metadata(metadata: dict, data: DataConfig, where: str) -> None:
    """Refuses shards made for another sequence length, vocabulary or tokenizer settings."""
    if metadata.get("seq_length") != data.seq_length:
        raise DataError(f"{where} holds examples of seq_length {metadata.get('seq_length')} but "
                        f"data.seq_length is {data.seq_length}: set data.seq_length="
                        f"{metadata.get('seq_length')} or prepare the data again")
    vocab = vocabulary_file(data)
    if not vocab:
        raise DataError(f"data.source is 'tfrecord' but no vocabulary is set: set "
                        f"data.vocab_file to the one the shards in {where} were made with "
                        f"({metadata.get('vocab_file')})")
    if file_sha256(vocab) != metadata.get("vocab_sha256"):
        raise DataError(f"{where} was made with another vocabulary ({metadata.get('vocab_file')}, "
                        f"sha256 {str(metadata.get('vocab_sha256'))[:12]}...) than {vocab}: "
                        "use the same vocabulary, or prepare the data again with this one")
    settings = tokenizer_settings(data)
    if metadata.get("tokenizer") != settings:
        raise DataError(f"{where} was tokenized with {metadata.get('tokenizer')} but the config "
                        f"says {settings}: align data.lower_case / data.strip_accents / "
                        "data.tokenizer, or prepare the data again")


def resolve_shards(patterns: list[str], data: DataConfig, field: str) -> list[str]:
    """The shard files named by `patterns` (prepared directories, shards or globs), each checked
    against its directory's metadata, in sorted order."""
    if not patterns:
        raise DataError(f"{field} is empty: list the directories written by "
                        "pipelines.prepare_pretraining_data")
    shards: set[str] = set()
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            directories = {pattern: None}
        else:
            directories = {}
            for name in expand_paths([pattern], field):
                directories.setdefault(os.path.dirname(name), set()).add(os.path.basename(name))
        for directory, named in directories.items():
            metadata = read_metadata(directory)
            check_metadata(metadata, data, directory)
            listed = list(metadata.get("shards", []))
            if named is not None:
                named.discard(METADATA)
                stray = sorted(named - set(listed))
                if stray:
                    raise DataError(f"{field}: {os.path.join(directory, stray[0])} is not a "
                                    f"shard listed in {os.path.join(directory, METADATA)}")
                listed = sorted(named)
            for shard in listed:
                path = os.path.join(directory, shard)
                if not tf.io.gfile.exists(path):
                    raise DataError(f"{path} is listed in {directory}/{METADATA} but missing: "
                                    "the prepared data is incomplete; prepare it again")
                shards.add(path)
    if not shards:
        raise DataError(f"{field}: {patterns} hold no shard")
    return sorted(shards)


def _parse(serialized: tf.Tensor, seq_length: int) -> dict[str, tf.Tensor]:
    spec = {name: tf.io.FixedLenFeature([seq_length], tf.int64) for name in FEATURES}
    parsed = tf.io.parse_example(serialized, spec)
    return {name: tf.cast(value, tf.int32) for name, value in parsed.items()}


def _seed(data: DataConfig, split: str, pipeline_id: int, stage: int) -> int:
    return (((data.seed * 1_000_003 + pipeline_id) * 2 + (split == "eval")) * 8 + stage) % (1 << 62)


def make_dataset(config: RunConfig, special, *, split: str, batch_size: int,
                 input_context: tf.distribute.InputContext | None, repeat: bool
                 ) -> tf.data.Dataset:
    """Masked batches (the features of pipeline.make_dataset) read from prepared shards."""
    data = config.data
    training = split == "train"
    if training:
        shards = resolve_shards(data.paths, data, "data.paths")
    else:
        if not data.eval_paths:
            raise DataError("split='eval' with data.source=tfrecord needs data.eval_paths: "
                            "shards prepared from held-out text")
        shards = resolve_shards(data.eval_paths, data, "data.eval_paths")
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    by_file = pipelines > 1 and len(shards) >= pipelines
    if by_file:
        shards = shards[pipeline_id::pipelines]
    deterministic = bool(data.deterministic)
    shuffle_seed = _seed(data, split, pipeline_id, _STAGE_SHUFFLE)
    mask_base = _seed(data, split, pipeline_id, _STAGE_MASK)
    _check_readable(shards, data.seq_length, batch_size if not repeat else 1)

    # One epoch (every example once, in a new order each epoch), then repeated.
    files = tf.data.Dataset.from_tensor_slices(shards)
    if training:
        files = files.shuffle(len(shards), seed=shuffle_seed, reshuffle_each_iteration=True)
    records = files.interleave(
        graph_only(lambda name: tf.data.TFRecordDataset(name, COMPRESSION)),
        cycle_length=min(len(shards), 8) if training else 1, block_length=16,
        num_parallel_calls=tf.data.AUTOTUNE if training else None, deterministic=deterministic)
    if pipelines > 1 and not by_file:
        records = records.shard(pipelines, pipeline_id)
    if training:
        records = records.shuffle(data.shuffle_buffer, seed=shuffle_seed + 1,
                                  reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()
    max_predictions, objective = config.max_predictions, config.objective
    seq_length = data.seq_length

    @graph_only
    def parse_and_mask(index, serialized):
        examples = _parse(serialized, seq_length)
        masked = mask_tokens(examples["input_ids"], examples["input_mask"],
                             tf.stack([tf.constant(mask_base, tf.int64), index]),
                             special=special, mask_prob=objective.mask_prob,
                             max_predictions=max_predictions,
                             mask_token_fraction=objective.mask_token_fraction)
        return {"input_ids": masked["input_ids"], "input_mask": examples["input_mask"],
                "segment_ids": examples["segment_ids"],
                "masked_lm_positions": masked["masked_lm_positions"],
                "masked_lm_ids": masked["masked_lm_ids"],
                "masked_lm_weights": masked["masked_lm_weights"]}

    dataset = (records.batch(_BLOCK).enumerate()
               .map(parse_and_mask, num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=deterministic)
               .rebatch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def _check_readable(shards: list[str], seq_length: int, needed: int) -> None:
    """Reads the first `needed` examples now: a corrupt shard fails before training."""
    records = (tf.data.Dataset.from_tensor_slices(shards)
               .flat_map(graph_only(lambda name: tf.data.TFRecordDataset(name, COMPRESSION)))
               .take(needed).batch(needed))
    try:
        count = sum(int(tf.shape(_parse(batch, seq_length)["input_ids"])[0])
                    for batch in records)
    except tf.errors.OpError as e:
        raise read_error(f"the shards {shards[0]} ...", e) from None
    if count < needed:
        raise DataError(f"the shards {shards[0]} ... hold {count} examples, fewer than one batch "
                        f"of {needed} (batches drop the remainder): use a smaller batch")
