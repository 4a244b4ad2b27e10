"""Beam job: word counts over the whole corpus, then a WordPiece vocabulary learned from them.

    python -m pipelines.build_vocab --config run.yaml --out vocab.txt [--size 30522] \\
        [--runner local --direct_num_workers 2 | --runner DataflowRunner ...]

Counting runs on Beam (pipelines/counting.py, the normalisation of the in-graph tokenizer); the
counts are written beside the vocabulary as ``OUT.counts-SSSSS-of-NNNNN.tsv`` (word TAB count)
and read back by this process, which learns the vocabulary with
`electra_tf.data.vocab.learn_vocab`, the code ``electra-tf build-vocab`` uses, with its settings
(the most frequent max(size + 10000, 20000) words enter the learner). Counts are given to the
learner most frequent first, ties in word order, so the result does not depend on the runner;
``electra-tf build-vocab`` gives its counts in first-seen order, so the two vocabularies are
equal unless words tie at the learner's input cut (on a corpus with fewer distinct words than
the cut they always are). Unlike build-vocab, every word of the corpus is counted.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os

import tensorflow as tf

from electra_tf.data.errors import DataError
from electra_tf.data.tokenization import SPECIAL_TOKENS
from pipelines import options

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.build_vocab",
                                     description=__doc__.split("\n")[0])
    options.add_common_arguments(parser)
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="where to write vocab.txt (local or gs://)")
    parser.add_argument("--size", type=int, default=None,
                        help="vocabulary size (default: data.vocab_size)")
    return parser


def read_counts(prefix: str) -> collections.Counter:
    """The counts written by the job (all shards of `prefix`)."""
    counts: collections.Counter = collections.Counter()
    try:
        for name in sorted(tf.io.gfile.glob(prefix + "-*-of-*.tsv")):
            with tf.io.gfile.GFile(name, "rb") as f:
                for line in f.read().decode("utf-8").splitlines():
                    word, count = line.rsplit("\t", 1)
                    counts[word] += int(count)
    except tf.errors.OpError as e:
        raise DataError(f"cannot read the word counts {prefix}-*.tsv: {e.message}") from None
    return counts


def write_vocab(vocab: list[str], out_path: str) -> None:
    tmp = f"{out_path}.tmp"
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write("\n".join(vocab) + "\n")
        tf.io.gfile.rename(tmp, out_path, overwrite=True)
    except tf.errors.OpError as e:
        raise DataError(f"cannot write the vocabulary to {out_path}: {e.message}") from None


def count_corpus(argv: list[str] | None = None) -> tuple[collections.Counter, str, int]:
    """Runs the counting job; returns (counts, the --out path, the vocabulary size)."""
    import apache_beam as beam

    from pipelines.counting import word_counts
    from pipelines.documents import corpus_documents, corpus_inputs

    args, beam_args = build_parser().parse_known_args(argv)
    config = options.load_run_config(args)
    data = config.data
    size = args.size if args.size is not None else data.vocab_size
    if size <= len(SPECIAL_TOKENS):
        raise DataError(f"--size must be above {len(SPECIAL_TOKENS)}, got {size}")
    out = args.out
    if tf.io.gfile.isdir(out):
        raise DataError(f"cannot write the vocabulary to {out}: it is a directory; give a file "
                        "path such as vocab.txt")
    files = corpus_inputs(data)
    directory = os.path.dirname(out) or "."
    prefix = out + ".counts"
    options.prepare_output_dir(directory, [os.path.basename(prefix) + "-*-of-*.tsv"])
    pipeline = options.make_pipeline(args, beam_args)
    documents = corpus_documents(pipeline, data, args.invalid_utf8)
    _ = (word_counts(documents, data)
         | "Format" >> beam.MapTuple(lambda word, count: f"{word}\t{count}")
         | "WriteCounts" >> beam.io.WriteToText(prefix, file_name_suffix=".tsv"))
    options.run_pipeline(pipeline)
    counts = read_counts(prefix)
    if not counts:
        shown = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
        raise DataError(f"cannot build a vocabulary: the corpus {shown} has no words")
    return counts, out, size


def build_vocab(argv: list[str] | None = None) -> str:
    """Counts with Beam, learns the vocabulary, writes it; returns its path."""
    from electra_tf.data.vocab import learn_vocab

    counts, out, size = count_corpus(argv)
    log.info("vocab: %d words (%d distinct) counted", sum(counts.values()), len(counts))
    ordered = collections.Counter(dict(sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))))
    vocab = learn_vocab(ordered, size, max_input_words=max(size + 10_000, 20_000))
    write_vocab(vocab, out)
    log.info("vocab: wrote %d tokens to %s", len(vocab), out)
    return out


def main(argv: list[str] | None = None) -> int:
    return options.run_main(build_vocab, argv, "build_vocab")


if __name__ == "__main__":
    raise SystemExit(main())
