"""Times the full ELECTRA pretraining step as users run it, against the peer baselines.

    .venv/bin/python benchmarks/train_step.py                          # Small, fp32, no XLA
    .venv/bin/python benchmarks/train_step.py --precision float32 mixed_bfloat16 --xla-both
    .venv/bin/python benchmarks/train_step.py --peers /tmp/peers/bin/python --rounds 3
    .venv/bin/python benchmarks/train_step.py --pipeline

What is timed: the project's own `TrainStep.train` (generator, Gumbel sampling, discriminator,
both losses, gradients, global-norm clipping, AdamW) under the default strategy, reading
already-masked synthetic batches from an in-memory `tf.data` repeat. One call runs
`--steps-per-execution` optimizer steps; step time = call time / steps, median over the timed
calls after the warm-up calls.

Model FLOP utilisation (MFU) = analytic training FLOPs per step / step time / matmul peak, where
the peak is measured here by timing an N x N x N matmul (N = --matmul-size) in the run's compute
dtype (float32, or bfloat16/float16 under the mixed policies). Training FLOPs per step =
3 x forward matmul FLOPs (forward + backward), counting a multiply-add as 2 FLOPs:

    per encoder (T = batch*seq tokens, hidden H, FFN I, L layers, embedding E):
        L * (2*T*(4*H*H + 2*H*I)       Q, K, V, attention output; FFN in and out
             + 2 * 2*batch*seq*seq*H)   scores Q.K^T and probabilities . V
        + 2*T*E*H                       embeddings_project (only when E != H)
    discriminator head: 2*T*(H*H + H)
    generator head at the P = batch * max_predictions gathered positions:
        2*P*(Hg*E + E*V)                Dense(E) and the tied output layer over the vocabulary

Peers (`--peers PYTHON`): ../shared/bench/peer_tfm.py (XLA off and on) and peer_hf_torch.py
(plain and --gather) run as subprocesses with that interpreter at the same batch and sequence
length, alternating with our step: ours, peer A, ours, peer B, ... for `--rounds` rounds.
Figures are medians over rounds; each peer is compared by its faster variant.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from electra_tf.config import RunConfig, TrainConfig, model_preset  # noqa: E402
from electra_tf.data.masking import SpecialTokens, mask_tokens  # noqa: E402
from electra_tf.models import build_networks  # noqa: E402
from electra_tf.pretraining import PretrainingTask  # noqa: E402
from electra_tf.training.optimizer import create_optimizer  # noqa: E402
from electra_tf.training.step import TrainStep  # noqa: E402

# The peer baselines live in shared/bench beside the repository (../shared/bench).
PEER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
PEERS = {  # label -> (script, extra args); grouped by system for the "best of" comparison
    "model_garden": [("peer_tfm.py", []), ("peer_tfm.py", ["--xla"])],
    "transformers": [("peer_hf_torch.py", []), ("peer_hf_torch.py", ["--gather"])],
}
SPECIAL = SpecialTokens(pad_id=0, unk_id=100, cls_id=101, sep_id=102, mask_id=103)
COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16",
                 "mixed_float16": "float16"}


# ---------------------------------------------------------------------------------- FLOPs, peak

def encoder_flops(batch: int, seq: int, embedding: int, hidden: int, ffn: int,
                  layers: int) -> float:
    tokens = batch * seq
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    per_layer += 2 * 2 * batch * seq * seq * hidden
    project = 2 * tokens * embedding * hidden if embedding != hidden else 0
    return layers * per_layer + project


def training_flops(config: RunConfig, batch: int) -> float:
    """Analytic training FLOPs of one step: 3 x the forward matmul FLOPs (see module doc)."""
    m, seq = config.model, config.data.seq_length
    gen_h = m.generator_hidden_size
    forward = encoder_flops(batch, seq, m.embedding_size, gen_h, m.generator_intermediate_size,
                            m.num_layers)
    forward += 2 * batch * config.max_predictions * (gen_h * m.embedding_size
                                                     + m.embedding_size * m.vocab_size)
    if config.objective.kind == "electra":
        forward += encoder_flops(batch, seq, m.embedding_size, m.hidden_size,
                                 m.intermediate_size, m.num_layers)
        forward += 2 * batch * seq * (m.hidden_size * m.hidden_size + m.hidden_size)
    return 3.0 * forward


def matmul_peak(dtype: str, n: int, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matmul in `dtype` (best of `repeats`, 4 chained products)."""
    a = tf.random.normal((n, n), dtype=tf.float32, seed=1)
    a = tf.cast(a / np.sqrt(n), dtype)
    b = tf.cast(tf.random.normal((n, n), dtype=tf.float32, seed=2) / np.sqrt(n), dtype)

    @tf.function
    def run(x, y):
        for _ in range(4):
            x = tf.matmul(x, y)
        return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

    run(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 4 * 2.0 * n ** 3 / min(times)


# ---------------------------------------------------------------------------------- our step

def synthetic_batches(config: RunConfig, batch: int, examples: int = 0,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Full-length random sequences [CLS] A [SEP] B [SEP], masked like the pipeline does."""
    seq, vocab = config.data.seq_length, config.model.vocab_size
    num = examples or 4 * batch
    rng = np.random.default_rng(seed)
    ids = rng.integers(min(1000, vocab // 2), vocab, size=(num, seq)).astype(np.int32)
    ids[:, 0], ids[:, seq // 2], ids[:, -1] = SPECIAL.cls_id, SPECIAL.sep_id, SPECIAL.sep_id
    mask = np.ones((num, seq), np.int32)
    segments = np.zeros((num, seq), np.int32)
    segments[:, seq // 2 + 1:] = 1
    masked = mask_tokens(ids, mask, tf.constant([seed, 7]), special=SPECIAL,
                         mask_prob=config.objective.mask_prob,
                         max_predictions=config.max_predictions)
    out = {k: v.numpy() for k, v in masked.items()}
    out.update(input_mask=mask, segment_ids=segments)
    return out


def run_config(model: str, batch: int, seq: int, precision: str, xla: bool,
               steps_per_execution: int) -> RunConfig:
    config = RunConfig(model=model_preset(model))
    config.data.seq_length = seq
    config.train = TrainConfig(batch_size=batch, precision=precision, jit_compile=xla,
                               steps_per_execution=steps_per_execution, strategy="default",
                               steps=1_000_000, warmup_steps=10_000)
    return config.validate()


class OurStep:
    """One configuration of the project's train step, built once, timed in blocks."""

    def __init__(self, config: RunConfig):
        self.config = config
        train = config.train
        strategy = tf.distribute.get_strategy()
        keras.utils.set_random_seed(train.seed)
        self.networks = build_networks(config.model, config.objective.kind, train.precision)
        optimizer = create_optimizer(train, self.networks.trainable_variables, train.precision)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.step_fn = TrainStep(strategy, PretrainingTask(config), self.networks, optimizer,
                                 train, step)
        examples = synthetic_batches(config, train.batch_size)

        def dataset(context):
            ds = tf.data.Dataset.from_tensor_slices(examples).repeat()
            return ds.batch(train.batch_size, drop_remainder=True).prefetch(2)

        self.iterator = iter(strategy.distribute_datasets_from_function(dataset))
        self.calls = 0
        self.loss = float("nan")

    def time_steps(self, steps: int, warmup: int = 0) -> list[float]:
        """Seconds per optimizer step of each timed call (after `warmup` untimed calls)."""
        spe = self.config.train.steps_per_execution
        times = []
        for i in range(warmup + max(1, steps // spe)):
            start = time.perf_counter()
            loss, _ = self.step_fn.train(self.iterator, spe)
            self.loss = float(loss)
            if i >= warmup:
                times.append((time.perf_counter() - start) / spe)
        self.calls += 1
        return times


def label(config: RunConfig) -> str:
    xla = "xla" if config.train.jit_compile else "no-xla"
    return f"ours {config.train.precision} {xla}"


# ---------------------------------------------------------------------------------- peers

def run_peer(python: str, script: str, extra: list[str], batch: int, seq: int,
             steps: int) -> float:
    cmd = [python, os.path.join(PEER_DIR, script), "--batch", str(batch), "--seq", str(seq),
           "--steps", str(steps), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = re.findall(r"tokens_per_s=([0-9.]+)", out.stdout)
    if out.returncode or not found:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-2000:])
        raise RuntimeError(f"peer {' '.join(cmd)} failed (exit {out.returncode})")
    return float(found[-1])


# ---------------------------------------------------------------------------------- pipeline

def pipeline_tokens_per_s(model_config, batch: int, seq: int, batches: int) -> float | None:
    """batch*seq tokens per second of `electra_tf.data.make_dataset` (default corpus, training
    split, cached tokenization as configured by default), read batch by batch in Python."""
    try:
        from electra_tf.data import build_vocab, load_tokenizer
        from electra_tf.data.pipeline import make_dataset
    except ImportError as e:
        print(f"pipeline: electra_tf.data.pipeline.make_dataset not available ({e})")
        return None
    config = RunConfig(model=copy.deepcopy(model_config))
    vocab = os.path.join("/tmp", "electra_tf_bench", f"vocab_{config.model.vocab_size}.txt")
    if not os.path.exists(vocab):
        build_vocab(config.data, vocab, config.model.vocab_size)
    config.data.vocab_file = vocab
    config.data.seq_length = seq
    config.validate()
    tokenizer = load_tokenizer(config.data)
    iterator = iter(make_dataset(config, tokenizer, split="train", batch_size=batch))
    for _ in range(20):  # fill shuffle buffers and the tokenization cache
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)["input_ids"].numpy()
    return batches * batch * seq / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------- main

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["tiny", "small", "base"], default="small")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--precision", nargs="+", default=["float32"],
                   choices=["float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False,
                   help="XLA-compile the step (train.jit_compile)")
    p.add_argument("--xla-both", action="store_true", help="time with XLA on and off")
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before the first round")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--peers", metavar="PYTHON", help="interpreter with the peers' packages")
    p.add_argument("--peer-steps", type=int, default=10)
    p.add_argument("--matmul-size", type=int, default=4096)
    p.add_argument("--pipeline", action="store_true", help="time electra_tf.data's pipeline")
    p.add_argument("--pipeline-batches", type=int, default=200)
    a = p.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs, model {a.model}, batch {a.batch}, seq {a.seq}")
    tokens = a.batch * a.seq
    peaks = {}
    for precision in a.precision:
        dtype = COMPUTE_DTYPE[precision]
        if dtype not in peaks:
            peaks[dtype] = matmul_peak(dtype, a.matmul_size)
            print(f"matmul peak {a.matmul_size}^3 {dtype}: {peaks[dtype] / 1e9:.1f} GFLOP/s")

    ours = []
    for precision in a.precision:
        for xla in ([a.xla] if not a.xla_both else [True, False]):
            config = run_config(a.model, a.batch, a.seq, precision, xla, a.steps_per_execution)
            step = OurStep(config)
            step.time_steps(0, warmup=a.warmup)
            ours.append(step)
    flops = training_flops(ours[0].config, a.batch)
    print(f"training FLOPs per step (analytic): {flops / 1e9:.1f} GFLOP")

    peer_runs = [(system, script, extra) for system, variants in PEERS.items()
                 for script, extra in variants] if a.peers else []
    times = {label(s.config): [] for s in ours}
    peer_tps = {f"{script} {' '.join(extra)}".strip(): [] for _, script, extra in peer_runs}
    for round_index in range(a.rounds):
        slots = peer_runs or [None]
        for slot in slots:
            for step in ours:
                times[label(step.config)].append(statistics.median(step.time_steps(a.steps)))
            if slot is not None:
                _, script, extra = slot
                name = f"{script} {' '.join(extra)}".strip()
                peer_tps[name].append(run_peer(a.peers, script, extra, a.batch, a.seq,
                                               a.peer_steps))
                print(f"  round {round_index + 1}: {name}: {peer_tps[name][-1]:.0f} tokens/s")
        for step in ours:
            name = label(step.config)
            print(f"  round {round_index + 1}: {name}: {tokens / times[name][-1]:.0f} tokens/s"
                  f" (loss {step.loss:.3f})")

    print(f"\n{'configuration':34s} {'tokens/s':>9s} {'step ms':>8s} {'MFU':>6s}")
    ours_tps = {}
    for step in ours:
        name = label(step.config)
        seconds = statistics.median(times[name])
        ours_tps[name] = tokens / seconds
        peak = peaks[COMPUTE_DTYPE[step.config.train.precision]]
        mfu = flops / seconds / peak
        print(f"{name:34s} {tokens / seconds:9.0f} {seconds * 1e3:8.1f} {mfu:6.1%}"
              f"   ({flops / seconds / 1e9:.0f} GFLOP/s)")
    best_peer = {}
    for name, values in peer_tps.items():
        tps = statistics.median(values)
        print(f"{'peer ' + name:34s} {tps:9.0f} {tokens / tps * 1e3:8.1f} "
              f"{flops / (tokens / tps) / peaks.get('float32', float('nan')):6.1%}")
        system = "model_garden" if "tfm" in name else "transformers"
        if tps > best_peer.get(system, ("", 0.0))[1]:
            best_peer[system] = (name, tps)
    for system, (peer_name, tps) in best_peer.items():
        for name, value in ours_tps.items():
            print(f"ratio {name} / {system} (best: {peer_name}): {value / tps:.2f}x")

    if a.pipeline:
        pipe = pipeline_tokens_per_s(ours[0].config.model, a.batch, a.seq, a.pipeline_batches)
        if pipe is not None:
            fastest = max(ours_tps.values())
            print(f"pipeline: {pipe:.0f} tokens/s = {pipe / fastest:.1f}x the fastest train step")


if __name__ == "__main__":
    main()
