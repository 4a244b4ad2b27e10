"""Input pipeline throughput on the default corpus, against HuggingFace `tokenizers`.

Times the whole pipeline of `electra_tf.data.make_dataset` (read documents, tokenize in the graph,
pack, mask, shuffle, batch) and HuggingFace `tokenizers` (Rust WordPiece, the same vocab.txt)
batch-encoding the same training text, alternating A B A B in one process because shared machines
are noisy, and prints medians and their ratio.

Tokens counted for the pipeline: text tokens that reach the model, i.e. non-pad positions minus
[CLS]/[SEP] (tokens cut off by truncation do not count). For `tokenizers`: the word pieces
`encode_batch` returns for every sentence (no special tokens). Batches are consumed inside the
graph (`Dataset.reduce`), as a training step consumes them; `--python-loop` iterates in Python
instead.

Two pipeline figures: uncached (every epoch tokenizes again) and cached (data.cache_tokenized:
documents tokenized once and kept in memory; packing and masking stay fresh every epoch; the
default for the default corpus). The CPU seconds used are printed too.

`--determinism` instead compares data.deterministic on and off (the quickstart's pipeline:
default corpus, cached), alternating rounds, in examples/s, against the consumption rate of a
train step of `--step-ms` milliseconds per batch.

Usage: python benchmarks/input_pipeline.py [--batch 32] [--seq 128] [--rounds 3]
       [--vocab vocab.txt] [--vocab-size 30522] [--python-loop] [--determinism [--step-ms 50]]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Once TensorFlow is loaded, `tokenizers` stays on one thread unless told otherwise: let it use
# every core, as it would on its own.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from electra_tf.config import RunConfig  # noqa: E402
from electra_tf.data import build_vocab, load_tokenizer, make_dataset  # noqa: E402
from electra_tf.data.sources import default_corpus_split  # noqa: E402


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def time_pipeline(dataset: tf.data.Dataset, batches: int, special, python_loop: bool
                  ) -> tuple[float, float, int]:
    """(seconds, cpu seconds, text tokens) for `batches` batches, after a warm-up."""
    def text_tokens(batch):
        mask = batch["input_mask"]
        # Masked [CLS]/[SEP] never happen (never candidates), so counting them is exact.
        specials = tf.reduce_sum(tf.cast(
            (batch["input_ids"] == special.cls_id) | (batch["input_ids"] == special.sep_id),
            tf.int64))
        return tf.reduce_sum(tf.cast(mask, tf.int64)) - specials

    iterator = iter(dataset)
    for _ in range(20):
        next(iterator)
    started, cpu = time.perf_counter(), cpu_seconds()
    if python_loop:
        total = 0
        for _ in range(batches):
            total += int(text_tokens(next(iterator)))
    else:
        count = tf.function(lambda: dataset.take(batches).reduce(
            tf.constant(0, tf.int64), lambda n, b: n + text_tokens(b)))
        count.get_concrete_function()
        started, cpu = time.perf_counter(), cpu_seconds()
        total = int(count())
    return time.perf_counter() - started, cpu_seconds() - cpu, total


def hf_tokenizer(vocab: str):
    """`tokenizers.Tokenizer` set up as BertWordPieceTokenizer (uncased) from the vocab.txt."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece.from_file(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=True, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def time_hf(tokenizer, sentences: list[str]) -> tuple[float, float, int]:
    # encode_batch_fast (tokenizers >= 0.20) skips offsets: the fastest batch API.
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    started, cpu = time.perf_counter(), cpu_seconds()
    encodings = encode(sentences, add_special_tokens=False)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return seconds, cpu, sum(len(e.ids) for e in encodings)


def compare_determinism(config: RunConfig, tokenizer, args) -> None:
    """Examples/s with data.deterministic on and off, alternating rounds; medians."""
    batches = args.batches or 200
    datasets = {}
    for deterministic in (True, False):
        data = dataclasses.replace(config.data, deterministic=deterministic)
        datasets[deterministic] = make_dataset(dataclasses.replace(config, data=data), tokenizer,
                                               batch_size=args.batch)
        time_pipeline(datasets[deterministic], batches, tokenizer.special, args.python_loop)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(args.rounds):
        for deterministic in (True, False):
            seconds, _, _ = time_pipeline(datasets[deterministic], batches, tokenizer.special,
                                          args.python_loop)
            rates[deterministic].append(batches * args.batch / seconds)
        print(f"round {round_ + 1}: deterministic {rates[True][-1]:,.0f} examples/s, "
              f"non-deterministic {rates[False][-1]:,.0f} examples/s", flush=True)
    step_rate = args.batch / (args.step_ms / 1000)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"\nbatch {args.batch}, seq {args.seq}, default corpus (cached), {batches} batches per "
          f"timing, medians of {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"data.deterministic: true  {on:12,.0f} examples/s  ({on / step_rate:.0f}x a "
          f"{args.step_ms:g} ms step's {step_rate:,.0f} examples/s)")
    print(f"data.deterministic: false {off:12,.0f} examples/s  ({off / step_rate:.0f}x)")
    print(f"cost of determinism: {1 - on / off:+.1%} of the pipeline's throughput")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=0,
                        help="batches per timing (default: about one epoch of the corpus)")
    parser.add_argument("--vocab", default=None, help="vocab.txt (default: build one, cached)")
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--python-loop", action="store_true")
    parser.add_argument("--determinism", action="store_true",
                        help="compare data.deterministic on and off")
    parser.add_argument("--step-ms", type=float, default=50.0,
                        help="train step time per batch the pipeline must keep up with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    vocab = args.vocab
    if vocab is None:
        vocab = os.path.join("/tmp", "electra_tf_bench", f"vocab_{args.vocab_size}.txt")
        if not os.path.exists(vocab):
            build_vocab(RunConfig().data, vocab, args.vocab_size)
    config = RunConfig()
    config.data.vocab_file = vocab
    config.data.seq_length = args.seq
    config.model.vocab_size = max(config.model.vocab_size, args.vocab_size)
    config.validate()
    tokenizer = load_tokenizer(config.data)
    if args.determinism:
        compare_determinism(config, tokenizer, args)
        return

    sentences = [s for doc in default_corpus_split("train", config.data.eval_documents)
                 for s in doc]
    words = sum(len(s.split()) for s in sentences)
    batches = args.batches or max(50, int(words * 1.25 / (args.batch * args.seq * 0.9)))

    datasets = {}
    for name, cache in (("uncached", False), ("cached", True)):
        config.data.cache_tokenized = cache
        datasets[name] = make_dataset(config, tokenizer, batch_size=args.batch)
    # Fill the cache (one full epoch) before timing the cached pipeline.
    time_pipeline(datasets["cached"], batches, tokenizer.special, args.python_loop)

    hf = hf_tokenizer(vocab)
    time_hf(hf, sentences[:1000])
    # Same text, same vocab, same normalization: both must give the same token count.
    ours = int(tf.size(tokenizer.tokenize(tf.constant(sentences)).flat_values))
    theirs = time_hf(hf, sentences)[2]
    print(f"token count check: electra_tf {ours:,}, tokenizers {theirs:,}")
    results: dict[str, list[tuple[float, float, int]]] = {
        "uncached": [], "cached": [], "tokenizers": []}
    for round_ in range(args.rounds):
        for name in ("uncached", "cached"):
            results[name].append(time_pipeline(datasets[name], batches, tokenizer.special,
                                               args.python_loop))
        results["tokenizers"].append(time_hf(hf, sentences))
        line = ", ".join(f"{name} {r[-1][2] / r[-1][0]:,.0f} tok/s" for name, r in results.items())
        print(f"round {round_ + 1}: {line}", flush=True)

    def rate(name):
        return statistics.median(total / seconds for seconds, _, total in results[name])

    def cpu_rate(name):
        return statistics.median(total / max(cpu, 1e-9) for _, cpu, total in results[name])

    print(f"\ndefault corpus (WordNet glosses, train split): {len(sentences):,} sentences, "
          f"{words:,} words; batch {args.batch}, seq {args.seq}, {batches} batches per timing; "
          f"{os.cpu_count()} CPUs; medians of {args.rounds} alternating rounds")
    print("tokens = text tokens reaching the model (non-pad minus [CLS]/[SEP]) for the "
          "pipeline; word pieces returned for tokenizers (TOKENIZERS_PARALLELISM="
          f"{os.environ['TOKENIZERS_PARALLELISM']})")
    hf_rate = rate("tokenizers")
    for name, label in (("uncached", "pipeline, uncached (tokenizes every epoch)"),
                        ("cached", "pipeline, cached tokenized documents (default corpus)"),
                        ("tokenizers", "HF tokenizers encode_batch_fast, tokenize only")):
        ratio = "" if name == "tokenizers" else (
            f"  ratio vs tokenizers {rate(name) / hf_rate:.2f}x "
            f"(per CPU-second {cpu_rate(name) / cpu_rate('tokenizers'):.2f}x)")
        print(f"{label:55s} {rate(name):>12,.0f} tokens/s  "
              f"({cpu_rate(name):,.0f} per CPU-second){ratio}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.1f} (other processes on the machine slow all figures)")


if __name__ == "__main__":
    main()
