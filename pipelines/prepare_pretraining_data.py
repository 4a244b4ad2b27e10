"""Beam job: a text corpus -> packed ELECTRA examples in GZIP TFRecord shards + metadata.json.

    python -m pipelines.prepare_pretraining_data --config run.yaml --output DIR \\
        [--set data.paths=[corpus/*.txt]] [--num_shards 64] [--seed 0] \\
        [--runner local --direct_num_workers 2 | --runner DataflowRunner --project P ...]

The run config's data section gives the corpus (data.paths and data.layout, or a prepared
TFDS dataset: data.source=tfds, data.tfds_name, data.tfds_split), the vocabulary
(data.vocab_file, required) and tokenizer settings, data.seq_length and the packing
probabilities. DIR receives ``examples-SSSSS-of-NNNNN.tfrecord.gz`` and, last and only when the
job succeeded and made examples, ``metadata.json`` (electra_tf/data/tfrecord.py). Files of an
earlier run in DIR are removed first. Train from it with ``data.source: tfrecord`` and
``data.paths: [DIR]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

import tensorflow as tf

from electra_tf.data import tfrecord
from electra_tf.data.errors import DataError
from pipelines import options

log = logging.getLogger(__name__)
_STATS = "_stats"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.prepare_pretraining_data",
                                     description=__doc__.split("\n")[0])
    options.add_common_arguments(parser)
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="directory (local or gs://) for the shards and metadata.json")
    parser.add_argument("--num_shards", type=int, default=32,
                        help="output shards (0: let the runner decide); use at least as many as "
                             "the trainer has input pipelines (hosts)")
    parser.add_argument("--seed", type=int, default=0,
                        help="packing seed (each document's seed is derived from it and the "
                             "document's name)")
    parser.add_argument("--batch_documents", type=int, default=64,
                        help="documents tokenized per call")
    return parser


def build(pipeline, data, files: list[str], output: str, args) -> None:
    """Adds the job's transforms to `pipeline`."""
    import apache_beam as beam
    from apache_beam.io.filesystem import CompressionTypes

    from pipelines.documents import corpus_documents
    from pipelines.examples import STATS, TokenizeAndPack, sum_stats

    documents = corpus_documents(pipeline, data, args.invalid_utf8)
    packed = (documents
              | "Batch" >> beam.BatchElements(min_batch_size=1,
                                              max_batch_size=args.batch_documents)
              | "TokenizeAndPack" >> beam.ParDo(TokenizeAndPack(data, args.seed))
              .with_outputs(STATS, main="examples"))
    _ = packed.examples | "Write" >> beam.io.WriteToTFRecord(
        os.path.join(output, tfrecord.SHARD_PREFIX), file_name_suffix=tfrecord.SHARD_SUFFIX,
        num_shards=args.num_shards, compression_type=CompressionTypes.GZIP)
    _ = (packed[STATS]
         | "Count" >> beam.CombineGlobally(sum_stats)
         | "StatsJson" >> beam.Map(json.dumps)
         | "WriteStats" >> beam.io.WriteToText(os.path.join(output, _STATS),
                                               file_name_suffix=".json",
                                               shard_name_template=""))


def finish(data, files: list[str], output: str, args) -> dict:
    """After a successful run: checks the counts and shards, then writes metadata.json."""
    from pipelines.examples import STAT_NAMES

    stats_path = os.path.join(output, _STATS + ".json")
    try:
        with tf.io.gfile.GFile(stats_path) as f:
            counts = dict(zip(STAT_NAMES, json.loads(f.read()), strict=True))
        tf.io.gfile.remove(stats_path)
    except (tf.errors.OpError, ValueError) as e:
        raise DataError(f"the job finished but its counts {stats_path} cannot be read "
                        f"({getattr(e, 'message', e)}); run it again") from None
    shown = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
    if counts["examples"] == 0:
        raise DataError(f"the corpus {shown} gave no example ({counts['documents']} documents, "
                        f"{counts['text_tokens']} tokens): check the files, data.layout and the "
                        "vocabulary; no metadata.json was written")
    shards = sorted(os.path.basename(name) for name in tf.io.gfile.glob(
        os.path.join(output, f"{tfrecord.SHARD_PREFIX}-*-of-*{tfrecord.SHARD_SUFFIX}")))
    if args.num_shards and len(shards) != args.num_shards:
        raise DataError(f"{output} holds {len(shards)} shards, not the {args.num_shards} the job "
                        "wrote: another job writing there? No metadata.json was written")
    if data.source == "text":
        counts["files"] = len(files)
    metadata = tfrecord.make_metadata(data, inputs=files, shards=shards, counts=counts,
                                      seed=args.seed)
    path = tfrecord.write_metadata(output, metadata)
    log.info("wrote %d examples (%d documents, %d tokens) in %d shards; %s",
             counts["examples"], counts["documents"], counts["example_tokens"], len(shards), path)
    return metadata


def prepare(argv: list[str] | None = None) -> dict:
    """Runs the job; returns the metadata written. Raises DataError/ConfigError for bad input."""
    args, beam_args = build_parser().parse_known_args(argv)
    config = options.load_run_config(args)
    data = config.data
    if data.tokenizer == "wordpiece" and not data.vocab_file:
        raise DataError("data.vocab_file is not set: give the vocabulary to tokenize with (learn "
                        "one with python -m pipelines.build_vocab)")
    from electra_tf.data.tokenization import load_tokenizer

    load_tokenizer(data)   # a bad vocabulary fails here, not on every worker
    if args.seed < 0 or args.num_shards < 0 or args.batch_documents < 1:
        raise DataError("--seed and --num_shards must be >= 0, --batch_documents >= 1")
    from pipelines.documents import corpus_inputs

    files = corpus_inputs(data)
    output = args.output.rstrip("/")
    options.prepare_output_dir(output, [tfrecord.METADATA, tfrecord.METADATA + ".tmp",
                                        _STATS + ".json",
                                        f"{tfrecord.SHARD_PREFIX}-*{tfrecord.SHARD_SUFFIX}"])
    log.info("preparing %d files into %s (seq_length %d, runner %s)", len(files), output,
             data.seq_length, args.runner)
    pipeline = options.make_pipeline(args, beam_args)
    build(pipeline, data, files, output, args)
    options.run_pipeline(pipeline)
    return finish(data, files, output, args)


def main(argv: list[str] | None = None) -> int:
    return options.run_main(prepare, argv, "prepare_pretraining_data")


if __name__ == "__main__":
    raise SystemExit(main())
