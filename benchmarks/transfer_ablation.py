"""Which part of a pretrained encoder helps or hurts a fine-tuning? Partial initialisation.

    python benchmarks/transfer_ablation.py runs/quickstart --out /tmp/ablation \
        --parts all embeddings layers none --seeds 0 1 2 [--set train.learning_rate=1e-3]

Each run fine-tunes the task of `--config` (default: the quickstart's short lexname
fine-tuning) with the library's `prepare_task` + `Trainer`. `--parts` says which weights come
from the pretrained encoder (`task.init`); the rest keep the random values the run's seed gave
them, so `none` is exactly the random-init control of `--compare-random` and `all` is the
plain fine-tuning:

    all          everything (the usual fine-tuning)
    embeddings   word / position / type embeddings and their LayerNorm only
    layers       the embedding projection and the transformer layers only
    none         nothing (random initialisation, the pretrained run's sizes and vocabulary)
    A+B          the parts named, out of embeddings (or its pieces word_embeddings,
                 position_embeddings, token_type_embeddings, embeddings_norm), projection,
                 layer_0, layer_1, ...

Reported per part: the best validation score (the task's main metric: accuracy for the
default lexname task, F1 for wordnet_tagging) over the run's per-epoch checkpoints, mean over
seeds and its range. Only the validation split is read: this is a diagnosis, not a score.

`--representations` fine-tunes nothing: for the pretrained encoder and a random one it prints,
after the embeddings and after each layer, the mean pairwise cosine of the [CLS] vectors and of
all token vectors of 256 validation examples (near 1: every token looks alike).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("all", "embeddings", "layers", "none")


# The pieces of the embedding layer; `embeddings` in --parts names all four.
EMBEDDING_PIECES = ("word_embeddings", "position_embeddings", "token_type_embeddings",
                    "embeddings_norm")


def encoder_parts(model) -> dict[str, list]:
    """The encoder's variables by part: the embedding pieces, projection (if any), layer_0 ..."""
    embeddings = model.embeddings
    parts = {"word_embeddings": [embeddings.word_embeddings],
             "position_embeddings": [embeddings.position_embeddings],
             "token_type_embeddings": [embeddings.token_type_embeddings],
             "embeddings_norm": list(embeddings.layer_norm.weights)}
    if sum(len(group) for group in parts.values()) != len(embeddings.weights):
        raise RuntimeError("the embedding layer has variables outside EMBEDDING_PIECES")
    if model.encoder.embeddings_project is not None:
        parts["projection"] = list(model.encoder.embeddings_project.weights)
    for i, layer in enumerate(model.encoder.layers):
        parts[f"layer_{i}"] = list(layer.weights)
    return parts


def pretrained_names(part: str, names) -> set[str]:
    """The parts `part` takes from pretraining: `layers` is everything past the embeddings;
    otherwise names joined by '+', where `embeddings` stands for its four pieces."""
    if part == "layers":
        return set(names) - set(EMBEDDING_PIECES)
    chosen: set[str] = set()
    for name in part.split("+"):
        chosen |= set(EMBEDDING_PIECES) if name == "embeddings" else {name}
    unknown = chosen - set(names)
    if unknown:
        raise SystemExit(f"--parts {part}: no part {sorted(unknown)}; the parts are "
                         f"{sorted(names)} and embeddings (joined with +), all, none or layers")
    return chosen


def random_variables(model, part: str) -> list:
    """The variables that keep their random values when only `part` is pretrained: `all`,
    `none`, `layers` (projection + every layer) or parts joined by '+' (embeddings+layer_0)."""
    parts = encoder_parts(model)
    if part == "all":
        return []
    if part == "none":
        return [v for group in parts.values() for v in group]
    pretrained = pretrained_names(part, parts)
    return [v for name, group in parts.items() if name not in pretrained for v in group]


def partial_warm_start(pretrained_start, part: str, word_norm: float | None = None):
    """A `warm_start(model, path, allow_partial)` that loads like `pretrained_start`, then
    puts back the random values of the variables outside `part`. With `word_norm`, every row
    of a pretrained word-embedding table is then rescaled to that L2 norm (directions kept)."""

    def warm_start(model, path, allow_partial):
        from electra_tf.finetune.init import rescale_rows

        keep = random_variables(model, part)
        values = [v.numpy() for v in keep]
        restored = pretrained_start(model, path, allow_partial)
        for variable, value in zip(keep, values, strict=True):
            variable.assign(value)
        table = model.embeddings.word_embeddings
        if word_norm is not None and all(table is not v for v in keep):
            rescale_rows(table, word_norm)
            restored += f", word rows rescaled to norm {word_norm:g}"
        return f"{restored} (pretrained part: {part})"

    return warm_start


def finetune(init: str, part: str, seed: int, run_dir: str, args) -> float:
    from electra_tf.finetune.config import load_spec
    from electra_tf.finetune.inference import load_finetuned
    from electra_tf.finetune.setup import prepare_task
    from electra_tf.training.trainer import Trainer

    overrides = [f"task.init={init}", f"train.run_dir={run_dir}", f"train.seed={seed}",
                 *args.set]
    task = prepare_task(load_spec(args.config, overrides))
    task.warm_start = partial_warm_start(task.warm_start, part, args.word_norm)
    result = Trainer(task).train()
    if result.status != "completed":
        raise SystemExit(f"{run_dir} ended {result.status}")
    metric = task.main_metric   # accuracy for classification, f1 for tagging
    return float(load_finetuned(run_dir, "best").evaluate("validation")[metric])


def _frozen_features():
    """benchmarks/frozen_features.py, loaded by path (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "frozen_features", os.path.join(ROOT, "benchmarks", "frozen_features.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layer_cosines(model, batch) -> list[tuple[str, float, float]]:
    """[(after what, [CLS] mean cosine, token mean cosine)] through the encoder's layers."""
    import tensorflow as tf

    mean_cosine = _frozen_features().mean_cosine
    mask = tf.cast(batch["input_mask"], tf.float32)
    x = model.embeddings(batch["input_ids"], batch["segment_ids"], training=False)
    if model.encoder.embeddings_project is not None:
        x = model.encoder.embeddings_project(x)
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    real = mask.numpy() > 0
    rows = []
    for name, layer in [("embeddings", None)] + [
            (f"layer_{i}", layer) for i, layer in enumerate(model.encoder.layers)]:
        if layer is not None:
            x = layer(x, bias, training=False)
        tokens = x.numpy()[real][:: max(1, int(real.sum()) // 2000)]
        rows.append((name, mean_cosine(x.numpy()[:, 0]), mean_cosine(tokens)))
    return rows


def print_representations(init: str, args) -> None:
    from electra_tf.finetune.config import load_spec
    from electra_tf.finetune.init import load_encoder
    from electra_tf.finetune.setup import prepare_task

    overrides = [f"task.init={init}", f"train.run_dir={os.path.join(args.out, 'probe')}",
                 *args.set]
    task = prepare_task(load_spec(args.config, overrides))
    batch = next(iter(task.features(task.examples("validation").take(256), 256,
                                    training=False)))
    print("| encoder | after | [CLS] mean cosine | token mean cosine |\n|---|---|---|---|")
    for name in ("pretrained", "random"):
        model = task.build_model("float32")
        if name == "pretrained":
            load_encoder(model, init)
        for after, cls, tokens in layer_cosines(model, batch):
            print(f"| {name} | {after} | {cls:.3f} | {tokens:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("init", help="a pretraining run directory (task.init)")
    parser.add_argument("--out", required=True, help="work directory; results.json is kept here")
    parser.add_argument("--config", default=os.path.join(ROOT, "configs/finetune/quickstart.yaml"))
    parser.add_argument("--parts", nargs="+", default=list(PARTS),
                        help="all, none, embeddings, layers, or parts joined by '+' "
                             "(embeddings or its pieces, projection, layer_0, ...)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="fine-tuning override")
    parser.add_argument("--name", default="", help="label of this setting in results.json")
    parser.add_argument("--word-norm", type=float, default=None,
                        help="rescale each pretrained word-embedding row to this L2 norm "
                             "(a random row's is about initializer_range * sqrt(embedding size))")
    parser.add_argument("--representations", action="store_true",
                        help="print per-layer cosines of the pretrained and a random encoder")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if args.representations:
        print_representations(args.init, args)
        return 0
    path = os.path.join(args.out, "results.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    for part in args.parts:
        key = f"{args.name or 'default'}/{part}"
        if args.word_norm is not None:
            key += f"/word_norm{args.word_norm:g}"
        for seed in args.seeds:
            if str(seed) in results.get(key, {}):
                continue
            run_dir = os.path.join(args.out, key.replace("/", "-") + f"-s{seed}")
            score = finetune(args.init, part, seed, run_dir, args)
            results.setdefault(key, {})[str(seed)] = score
            os.makedirs(args.out, exist_ok=True)
            with open(path, "w") as f:
                json.dump(results, f, indent=1)
            print(f"{key} seed {seed}: validation score {100 * score:.1f}%", flush=True)
    print("\n| setting / pretrained part | seeds | validation score (mean, min-max) |")
    print("|---|---|---|")
    for key, scores in results.items():
        values = 100 * np.array(list(scores.values()))
        print(f"| {key} | {len(values)} | {values.mean():.1f} ({values.min():.1f}-"
              f"{values.max():.1f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
