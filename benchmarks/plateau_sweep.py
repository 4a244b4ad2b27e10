"""Sweep harness for the discriminator's context plateau (docs/plateau.md): time-to-AUC tables.

Two kinds of run, each variant in its own background process (`nice -n 10`, one intra-op and
one inter-op thread), at most `--jobs` at a time, one log per variant in `--out`:

* ``isolated``: the replaced-token task of `benchmarks/rtd_context.py` (masked positions hold
  unigram draws, so only context tells a replacement), the quickstart discriminator alone,
  Adam; every `--eval-every` steps the held-out AUC and, for layer 0, the attention mass each
  head puts on the previous / next token.
* ``full``: `electra-tf pretrain` on configs/quickstart.yaml with the variant's `--set`
  overrides; the held-out disc_auc comes from the run log.

A variant is ``name:spec`` where spec is `;`-separated items, each either a config override
(``data.seq_length=32``), an optimizer setting of the isolated task (``lr=3e-3``,
``warmup=200``), or a patch applied by monkeypatching before the networks are built (no library
edit): ``patch=alibi`` (fixed score bias -|i-j|/2^(h+1), per head, Press et al. 2022),
``patch=relbias`` (learned bias per head and clipped offset -8..8, init 0), ``patch=oracle``
(layer 0 heads forced onto the previous / next token), ``patch=pos_std=X`` (position table
init stddev X), ``patch=pos_sin=X`` (sinusoidal table with stddev X).

    python benchmarks/plateau_sweep.py isolated --steps 800 --out /tmp/plateau/iso \\
        base: alibi:patch=alibi seq32:data.seq_length=32
    python benchmarks/plateau_sweep.py table /tmp/plateau/iso
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

OPTIMIZER_KEYS = ("lr", "warmup", "batch")


def parse_spec(spec: str) -> tuple[list[str], list[str], dict[str, float]]:
    """(config overrides, patches, optimizer settings) of a variant spec."""
    overrides, patches, optim = [], [], {}
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        key, _, value = item.partition("=")
        if key == "patch":
            patches.append(value)
        elif key in OPTIMIZER_KEYS:
            optim[key] = float(value)
        else:
            overrides.append(item)
    return overrides, patches, optim


# ---------------------------------------------------------------------------------------------
# Patches (monkeypatching electra_tf in this process only)
# ---------------------------------------------------------------------------------------------

_MODE: dict = {"bias": None, "max_offset": 8}


def _score_bias(layer, length, heads):
    """[heads, s, s] float32 bias added to the attention scores, or None."""
    import tensorflow as tf

    mode = _MODE["bias"]
    i, j = tf.range(length)[:, None], tf.range(length)[None, :]
    if mode == "alibi":
        slopes = tf.constant([2.0 ** -(h + 1) for h in range(heads)], tf.float32)
        return -slopes[:, None, None] * tf.cast(tf.abs(i - j), tf.float32)[None]
    if mode == "relbias":
        k = _MODE["max_offset"]
        return tf.gather(layer.rel_bias, tf.clip_by_value(j - i, -k, k) + k, axis=1)
    if mode == "oracle" and layer.name.endswith("layer_0"):
        return tf.stack([tf.where(j - i == (-1 if h % 2 == 0 else 1), 0.0, -10000.0)
                         for h in range(heads)])
    return None


def _patched_call(self, x, attention_bias, training=None):
    """electra_tf's TransformerLayer.call plus `_score_bias`; keeps the last attention probs."""
    import tensorflow as tf

    from electra_tf.models import layers as L

    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    heads, head_size, dtype = self.num_heads, self.head_size, self.compute_dtype
    flat = tf.reshape(x, (-1, self.hidden_size))
    scale = 1.0 / math.sqrt(head_size)
    kernel = tf.concat([self.query.kernel * scale, self.key.kernel, self.value.kernel], 1)
    bias = tf.concat([self.query.bias * scale, self.key.bias, self.value.bias], 0)
    qkv = tf.nn.bias_add(tf.matmul(flat, tf.cast(kernel, dtype)), tf.cast(bias, dtype))
    qkv = tf.transpose(tf.reshape(qkv, (batch, length, 3, heads, head_size)), (2, 0, 3, 1, 4))
    q, k, v = tf.unstack(qkv, axis=0)
    scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32)
    extra = _score_bias(self, length, heads)
    if extra is not None:
        scores = scores + extra[None]
    probs = tf.nn.softmax(scores + tf.cast(attention_bias, tf.float32), axis=-1)
    if not tf.inside_function():
        self.last_probs = probs
    probs = self.attention_dropout(tf.cast(probs, dtype), training=training)
    context = tf.reshape(tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3)), (-1, self.hidden_size))
    attended = self._project(context, self.attention_output)
    flat = L.add_layer_norm(flat, self.dropout(attended, training=training),
                            self.attention_layer_norm, training)
    ffn = self._project(self._project(flat, self.intermediate, L.gelu), self.ffn_output)
    out = L.add_layer_norm(flat, self.dropout(ffn, training=training), self.output_layer_norm,
                           training)
    return tf.reshape(out, (batch, length, self.hidden_size))


def _patch_token_shift(L) -> None:
    """Encoder input += Dense(embedding of token i-1) + Dense(embedding of token i+1): a
    width-3 convolution beside attention (Glorot init), so the first block sees its neighbours
    without having to learn to attend to them."""
    import keras
    import tensorflow as tf

    build = L.Encoder.build

    def build_with_shift(self, input_shape=None):
        build(self, input_shape)
        if not hasattr(self, "shift_prev"):
            self.shift_prev = keras.layers.Dense(self.hidden_size, use_bias=False,
                                                 name="shift_prev")
            self.shift_next = keras.layers.Dense(self.hidden_size, use_bias=False,
                                                 name="shift_next")
            self.shift_prev.build((None, None, self.embedding_size))
            self.shift_next.build((None, None, self.embedding_size))

    def call_with_shift(self, embedded, input_mask, training=None):
        mask = tf.cast(input_mask, embedded.dtype)[:, :, None]
        e = embedded * mask
        prev = tf.pad(e[:, :-1], [[0, 0], [1, 0], [0, 0]])
        nxt = tf.pad(e[:, 1:], [[0, 0], [0, 1], [0, 0]])
        x = self.shift_prev(prev) + self.shift_next(nxt)
        x += self.embeddings_project(embedded) if self.embeddings_project is not None else embedded
        bias = (1.0 - tf.cast(input_mask, tf.float32)[:, None, None, :]) * -10000.0
        for layer in self.layers:
            x = layer(x, bias, training=training)
        return x

    L.Encoder.build, L.Encoder.call = build_with_shift, call_with_shift


def apply_patch(spec: str) -> None:
    import numpy as np

    from electra_tf.models import layers as L

    L.TransformerLayer.call = _patched_call
    if spec in ("alibi", "relbias", "oracle"):
        _MODE["bias"] = spec
    if spec == "relbias":
        build = L.TransformerLayer.build

        def build_with_bias(self, input_shape=None):
            build(self, input_shape)
            if not hasattr(self, "rel_bias"):
                self.rel_bias = self.add_weight(
                    name="rel_bias", shape=(self.num_heads, 2 * _MODE["max_offset"] + 1),
                    initializer="zeros")

        L.TransformerLayer.build = build_with_bias
    elif spec == "shift":
        _patch_token_shift(L)
    elif spec in ("glorot", "relu"):
        import keras
        import tensorflow as tf

        from electra_tf.models import networks
        if spec == "glorot":      # every truncated-normal kernel/table -> Glorot uniform
            L.truncated_normal = networks.truncated_normal = (
                lambda stddev: keras.initializers.GlorotUniform())
        else:                     # ReLU in the FFNs and the heads instead of the exact GELU
            L.gelu = networks.gelu = tf.nn.relu
    elif spec.startswith(("pos_std=", "pos_sin=")):
        std = float(spec.split("=", 1)[1])
        build_embeddings = L.Embeddings.build

        def build_positions(self, input_shape=None):
            build_embeddings(self, input_shape)
            n, e = self.max_positions, self.embedding_size
            if spec.startswith("pos_sin="):
                angle = np.arange(n)[:, None] / 10000.0 ** (2 * np.arange(e // 2)[None] / e)
                table = np.concatenate([np.sin(angle), np.cos(angle)], 1) * std * math.sqrt(2)
            else:
                table = np.clip(np.random.default_rng(0).normal(0, std, (n, e)), -2 * std,
                                2 * std)
            self.position_embeddings.assign(table.astype(np.float32))

        L.Embeddings.build = build_positions
    elif spec not in ("alibi", "relbias", "oracle", "none", "shift", "glorot", "relu"):
        raise SystemExit(f"unknown patch {spec!r}")


# ---------------------------------------------------------------------------------------------
# Workers (one variant, in this process)
# ---------------------------------------------------------------------------------------------

def _threads() -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _neighbour_attention(disc, batch) -> list[float]:
    """Layer 0: mean attention mass on the previous and the next token, per head."""
    import numpy as np

    ids, mask, segments = batch[:3]
    disc(ids, mask, segments, training=False)
    probs = disc.encoder.layers[0].last_probs.numpy()              # [b, h, s, s]
    real = mask[:, 1:-1] > 0
    out = []
    for h in range(probs.shape[1]):
        prev = np.diagonal(probs[:, h], offset=-1, axis1=1, axis2=2)[:, :-1]
        nxt = np.diagonal(probs[:, h], offset=1, axis1=1, axis2=2)[:, 1:]
        out += [float(prev[real].mean()), float(nxt[real].mean())]
    return out


def run_isolated(args, spec: str) -> None:
    """Trains the quickstart discriminator alone on the unigram-replacement task."""
    _threads()
    overrides, patches, optim = parse_spec(spec)
    for patch in patches or ["none"]:
        apply_patch(patch)
    import numpy as np
    import rtd_context
    import tensorflow as tf

    from electra_tf.config import load_config
    from electra_tf.models import build_networks
    from electra_tf.pretraining import init_disc_bias

    config = load_config(os.path.join(REPO, "configs", "quickstart.yaml"), overrides)
    data_args = argparse.Namespace(seq_length=config.data.seq_length, work_dir=args.work_dir,
                                   batch_size=int(optim.get("batch", 32)), steps=args.steps,
                                   seed=args.seed)
    cache = os.path.join(args.work_dir, "batches_seq{seq_length}_b{batch_size}_n{steps}_s{seed}"
                         ".npz".format(**vars(data_args)))
    if os.path.exists(cache):
        stored = np.load(cache)
        vocab_size = int(stored["vocab_size"])
        batches = list(zip(*(stored[k] for k in ("ids", "mask", "segments", "labels")),
                           strict=True))
    else:
        batches, vocab_size = rtd_context.unigram_batches(data_args)
        tmp = cache + f".{os.getpid()}.npz"
        np.savez(tmp, vocab_size=vocab_size,
                 **{k: np.stack([b[i] for b in batches])
                    for i, k in enumerate(("ids", "mask", "segments", "labels"))})
        os.replace(tmp, cache)
    held_out, train = batches[:rtd_context.EVAL_BATCHES], batches[rtd_context.EVAL_BATCHES:]
    real = np.concatenate([b[1] for b in held_out]) > 0
    labels = np.concatenate([b[3] for b in held_out])[real]
    keras_seed = args.seed
    tf.keras.utils.set_random_seed(keras_seed)
    model_config = load_config(os.path.join(REPO, "configs", "quickstart.yaml"),
                               overrides + [f"model.vocab_size={vocab_size}"]).model
    disc = build_networks(model_config).discriminator
    init_disc_bias(disc, config.objective)          # as PretrainingTask.build_model does
    peak, warmup = optim.get("lr", 1e-3), int(optim.get("warmup", 0))
    step_var = tf.Variable(0.0)
    optimizer = tf.keras.optimizers.Adam(
        lambda: peak * tf.minimum(1.0, (step_var + 1.0) / max(1, warmup)))
    variables = disc.trainable_variables

    def loss_fn(ids, mask, segments, labels, training):
        logits = disc(ids, mask, segments, training=training)
        w = tf.cast(mask, tf.float32)
        return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits) * w) \
            / tf.reduce_sum(w)

    @tf.function
    def train_step(*batch):
        with tf.GradientTape() as tape:
            loss = loss_fn(*batch, True)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        step_var.assign_add(1.0)

    def grad_norms(batch):
        watched = {"position": disc.embeddings.position_embeddings,
                   "q0": disc.encoder.layers[0].query.kernel,
                   "k0": disc.encoder.layers[0].key.kernel}
        with tf.GradientTape() as tape:
            loss = loss_fn(*batch, False)
        grads = tape.gradient(loss, list(watched.values()))
        return {k: float(tf.norm(g)) for k, g in zip(watched, grads, strict=True)}

    print(f"variant {args.name!r} spec {spec!r} seq {config.data.seq_length} lr {peak} "
          f"warmup {warmup}", flush=True)
    start = time.time()
    for step, batch in enumerate(train, 1):
        train_step(*batch)
        if step % args.eval_every == 0 or step == len(train):
            probs = np.concatenate([tf.sigmoid(disc(*b[:3], training=False)).numpy()
                                    for b in held_out])[real]
            attention = " ".join(f"{a:.2f}" for a in _neighbour_attention(disc, held_out[0]))
            grads = " ".join(f"{k}={v:.2e}" for k, v in grad_norms(held_out[0]).items())
            print(f"step {step} auc {rtd_context.auc(probs, labels):.3f} "
                  f"time {time.time() - start:.0f} attn_prev_next {attention} grad {grads}",
                  flush=True)


def run_full(args, spec: str) -> None:
    """`electra-tf pretrain` (and export --demo) on the quickstart config with the overrides."""
    _threads()
    overrides, patches, _ = parse_spec(spec)
    for patch in patches or ["none"]:
        apply_patch(patch)
    from electra_tf import cli

    run_dir = os.path.join(args.out, args.name)
    sets = [a for o in overrides + [f"train.run_dir={run_dir}", f"train.steps={args.steps}"]
            for a in ("--set", o)]
    start = time.time()
    code = cli.main(["pretrain", "--config", os.path.join(REPO, "configs", "quickstart.yaml")]
                    + sets)
    print(f"pretrain exit {code} wall {time.time() - start:.0f} s", flush=True)
    if code == 0 and args.demo:
        cli.main(["export", "--run-dir", run_dir, "--out", run_dir + "/export", "--demo"])


# ---------------------------------------------------------------------------------------------
# Launcher and table
# ---------------------------------------------------------------------------------------------

def launch(args) -> None:
    """Runs each `name:spec` variant as a niced background process, `--jobs` at a time."""
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    pending, running = list(args.variants), []
    while pending or running:
        running = [p for p in running if p.poll() is None]
        while pending and len(running) < args.jobs:
            name, _, spec = pending.pop(0).partition(":")
            with open(os.path.join(args.out, f"{name}.spec"), "w") as f:
                f.write(spec + "\n")
            log = open(os.path.join(args.out, f"{name}.log"), "w")
            cmd = ["nice", "-n", "10", sys.executable, os.path.abspath(__file__), "worker",
                   args.kind, name, spec, "--steps", str(args.steps), "--out", args.out,
                   "--eval-every", str(args.eval_every), "--seed", str(args.seed),
                   "--work-dir", args.work_dir] + (["--demo"] if args.demo else [])
            running.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
            print(f"started {name} (pid {running[-1].pid})", flush=True)
        time.sleep(5)


_ISOLATED = re.compile(r"^step (\d+) auc ([\d.]+) time (\d+) attn_prev_next ([\d. ]+) grad")
_FULL_EVAL = re.compile(r"eval step (\d+): .*disc_auc=([\d.]+)")
_FULL_STEP = re.compile(r"(\d\d):(\d\d):(\d\d),\d+ INFO .*step (\d+)/\d+")
_DEMO = re.compile(r"flag", re.I)


def table(args) -> None:
    """Prints a markdown table of every variant log in `args.out`."""
    print("| variant | spec | steps | wall (s) | AUC at checkpoints | notes |")
    print("|---|---|---|---|---|---|")
    for log in sorted(glob.glob(os.path.join(args.out, "*.log"))):
        name = os.path.basename(log)[:-4]
        spec_path = log[:-4] + ".spec"
        spec = open(spec_path).read().strip() if os.path.exists(spec_path) else ""
        text = open(log, errors="replace").read().splitlines()
        points, wall, notes, last = [], "", "", 0
        for line in text:
            m = _ISOLATED.match(line)
            if m:
                last, wall = int(m[1]), m[3]
                points.append(f"{m[2]} ({m[1]})")
                notes = "attn L0 prev/next " + m[4].strip()
            m = _FULL_EVAL.search(line)
            if m:
                last = int(m[1])
                points.append(f"{m[2][:5]} ({m[1]})")
            if line.startswith("pretrain exit"):
                wall = line.split()[-2]
            if "of 6" in line or _DEMO.search(line) and "demo" in line.lower():
                notes = line.strip()
        print(f"| {name} | `{spec or 'as shipped'}` | {last} | {wall} | "
              f"{', '.join(points[-6:])} | {notes} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("isolated", "full"):
        p = sub.add_parser(name)
        p.add_argument("variants", nargs="+", help="name:spec (see the module docstring)")
        p.add_argument("--jobs", type=int, default=1)
        p.set_defaults(kind=name)
    w = sub.add_parser("worker")
    w.add_argument("kind", choices=["isolated", "full"])
    w.add_argument("name")
    w.add_argument("spec")
    t = sub.add_parser("table")
    t.add_argument("out")
    for p in (sub.choices["isolated"], sub.choices["full"], w):
        p.add_argument("--steps", type=int, default=800)
        p.add_argument("--eval-every", type=int, default=100)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--demo", action="store_true", help="full: export and run the demo")
        p.add_argument("--work-dir", default="/tmp/electra_tf_rtd_context")
        if p is not w:
            p.add_argument("--out", required=True)
        else:
            p.add_argument("--out", default="/tmp/plateau")
    args = parser.parse_args()
    if args.command == "table":
        table(args)
    elif args.command == "worker":
        (run_isolated if args.kind == "isolated" else run_full)(args, args.spec)
    else:
        launch(args)


if __name__ == "__main__":
    main()
