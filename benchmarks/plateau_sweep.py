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
edit): ``patch=oracle`` (layer 0 heads forced onto the previous / next token), ``patch=preln``
and the others listed in `benchmarks/plateau_patches.py`.

    python benchmarks/plateau_sweep.py isolated --steps 800 --out /tmp/plateau/iso \\
        base: alibi:patch=alibi seq32:data.seq_length=32
    python benchmarks/plateau_sweep.py table /tmp/plateau/iso
"""

from __future__ import annotations

import argparse
import glob
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

from plateau_patches import apply_patch  # noqa: E402

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
    if any(patch.startswith("genlr=") for patch in patches):
        raise SystemExit(f"{spec!r}: genlr=X needs a full run (the isolated task trains the "
                         "discriminator alone): use `plateau_sweep.py full`")
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
    if code == 0 and args.finetune:   # both encoders built with the same patches
        cli.main(["finetune", "--config", os.path.join(REPO, "configs", "finetune",
                                                       "quickstart.yaml"),
                  "--set", f"task.init={run_dir}", "--set", f"train.run_dir={run_dir}-finetune",
                  "--set", "model.dropout=0.1", "--set", "model.attention_dropout=0.1",
                  "--compare-random"])


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
                   "--work-dir", args.work_dir] + (["--demo"] if args.demo else []) \
                + (["--finetune"] if args.finetune else [])
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
        p.add_argument("--finetune", action="store_true",
                       help="full: the quickstart fine-tuning against random init (dropout 0.1)")
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
