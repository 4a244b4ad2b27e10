"""Tokens/s of the Beam job (1 and 2 local workers) and of the trainer's in-graph pipeline.

    /work/venv-beam/bin/python benchmarks/pipelines.py [--documents 1500] [--files 8] \\
        [--seq 128] [--vocab 8192]

The corpus is the default one (WordNet glosses, the first --documents documents), written as
--files sentence-per-line text files; a vocabulary is learned from it first (not timed). Timed:

* ``beam 1 worker`` / ``beam 2 workers``: python -m pipelines.prepare_pretraining_data, local
  FnApiRunner, --direct_num_workers 1 / 2 (processes), everything from reading the files to
  the GZIP shards and metadata.json, pipeline start-up included (measured once with a tiny
  corpus and reported separately, so the steady rate can be read too);
* ``in-graph``: electra_tf.data.make_dataset over the same files, one pass (read, tokenize,
  pack, mask, batch), as the trainer feeds itself.

Tokens are WordPiece tokens of the text (metadata counts.text_tokens), the same number for all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tensorflow as tf  # noqa: E402

from electra_tf.config import load_config  # noqa: E402
from electra_tf.data import load_default_corpus, load_tokenizer, make_dataset  # noqa: E402
from electra_tf.data.vocab import build_vocab  # noqa: E402
from pipelines.prepare_pretraining_data import prepare  # noqa: E402


def write_corpus(directory: str, documents, files: int) -> list[str]:
    paths = []
    for f in range(files):
        path = os.path.join(directory, f"part-{f:03d}.txt")
        with open(path, "w", encoding="utf-8") as out:
            out.write("\n\n".join("\n".join(doc) for doc in documents[f::files]) + "\n")
        paths.append(path)
    return paths


def sets(directory: str, vocab: str, seq: int) -> list[str]:
    return ["data.source=text", f"data.paths=[{directory}/part-*.txt]",
            f"data.vocab_file={vocab}", f"data.seq_length={seq}", "data.eval_documents=0"]


def beam_run(directory, vocab, seq, workers, output, pattern=None) -> tuple[float, dict]:
    args = ["--output", output, "--num_shards", "4", "--direct_num_workers", str(workers)]
    overrides = sets(directory, vocab, seq)
    if pattern:
        overrides[1] = f"data.paths=[{pattern}]"
    for s in overrides:
        args += ["--set", s]
    started = time.perf_counter()
    metadata = prepare(args)
    return time.perf_counter() - started, metadata


def in_graph_run(directory, vocab, seq) -> float:
    config = load_config(None, [*sets(directory, vocab, seq), "model.vocab_size=100000"])
    tokenizer = load_tokenizer(config.data)
    started = time.perf_counter()
    dataset = make_dataset(config, tokenizer, batch_size=32, repeat=False)
    for _ in dataset:
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=1500)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=8192)
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    documents = load_default_corpus()[:args.documents]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_corpus(tmp, documents, args.files)
        vocab = os.path.join(tmp, "vocab.txt")
        data = load_config(None, sets(tmp, vocab, args.seq)[:2]).data
        build_vocab(data, vocab, args.vocab)
        size = sum(os.path.getsize(p) for p in paths)
        tiny = os.path.join(tmp, "tiny.txt")
        with open(tiny, "w") as f:
            f.write("One short document.\n")
        print(f"corpus: {len(documents)} documents, {args.files} files, {size / 1e6:.1f} MB, "
              f"seq_length {args.seq}, cpu cores {os.cpu_count()}")
        rows = []
        for workers in (1, 2):
            overhead, _ = beam_run(tmp, vocab, args.seq, workers, os.path.join(tmp, "t"), tiny)
            seconds, metadata = beam_run(tmp, vocab, args.seq, workers,
                                         os.path.join(tmp, f"out{workers}"))
            tokens = metadata["counts"]["text_tokens"]
            steady = seconds - overhead
            rows.append((f"beam {workers} worker{'s' if workers > 1 else ''}", seconds, tokens,
                         f"start-up {overhead:.1f}s, steady {tokens / max(steady, 1e-9):,.0f} "
                         "tokens/s"))
        seconds = in_graph_run(tmp, vocab, args.seq)
        rows.append(("in-graph (tf.data)", seconds, tokens, "read+tokenize+pack+mask"))
        for name, seconds, tokens, note in rows:
            print(f"{name:22s} {tokens:>10,d} tokens {seconds:7.1f}s "
                  f"{tokens / seconds:>10,.0f} tokens/s   ({note})")
        print(f"(TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
