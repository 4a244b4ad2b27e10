"""Does pretraining pay? ELECTRA vs MLM vs a random-init encoder at equal pretraining FLOPs.

    python benchmarks/pretraining_value.py --budgets 21.8 65.5 196.5 --seeds 3 --out docs/

For each budget (in TFLOPs of training compute, counted analytically with the generator
included: benchmarks/pretraining_flops.py), the quickstart config (configs/quickstart.yaml) is
pretrained once per encoder of `--objectives` (ENCODERS: `electra`, the reference's zero
discriminator bias; `electra_prior`, `objective.disc_bias_init: prior`; `mlm`), each for the
number of steps whose FLOPs are closest to the budget (a multiple of steps_per_execution). Each
encoder, and a random-init encoder of the same `tiny` sizes and vocabulary (`task.init: none`),
is then fine-tuned on the two offline tasks (configs/finetune/wordnet_lexname.yaml,
wordnet_tagging.yaml) with `--seeds` fine-tuning seeds. The fine-tuning run keeps the
checkpoint with the best validation score (task.main_metric); that checkpoint's test score is
what is reported, as the mean over seeds with a 95% t-interval. The splits are the tasks' fixed
hash-based splits; nothing is chosen on test.

Runs go through the library the CLI uses (`Trainer(PretrainingTask)`, `prepare_task`,
`load_finetuned(...).evaluate`); finished runs are found in --work-dir and not redone, so a
stopped benchmark resumes. Results accumulate in OUT/results.json; OUT/results.md gets the
table between its `<!-- results:begin -->` / `<!-- results:end -->` markers, and OUT/results.png
the plot (if matplotlib is importable). The table also gives each pretrained encoder's mean
word-embedding row norm (`word_row_norm`; a random row's is about 0.02 x sqrt(64) = 0.16 for
`tiny`), the size `--word-norm` rescales.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# results.json keys that are not a budget (or "random") holding {encoder: {task: {seed: scores}}}
RUN_FACTS = ("plans", "setting", "word_rows")


def _load_flops():
    """benchmarks/pretraining_flops.py, loaded by path (benchmarks/ stays off sys.path, where
    benchmarks/pipelines.py would shadow the pipelines package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pretraining_flops", os.path.join(ROOT, "benchmarks", "pretraining_flops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_flops = _load_flops()
mean_interval, minutes_equivalent = _flops.mean_interval, _flops.minutes_equivalent
step_flops, steps_for_budget = _flops.step_flops, _flops.steps_for_budget
PRETRAIN_CONFIG = os.path.join(ROOT, "configs", "quickstart.yaml")
TASKS = {"wordnet_lexname": "accuracy", "wordnet_tagging": "f1"}
# Measured quickstart throughput on this 2-core CPU, unloaded (issue #15: 16.5-19k tokens/s for
# ELECTRA): used only to state a budget in minutes.
ELECTRA_TOKENS_PER_SECOND = 17500.0
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The pretrained encoders: name -> (objective.kind, which sets the FLOPs per step; the other
# overrides). Each sets every option that differs between them, so a row means the same run
# whatever configs/quickstart.yaml defaults to.
ENCODERS = {
    "electra": ("electra", ["objective.disc_bias_init=zero"]),
    "electra_prior": ("electra", ["objective.disc_bias_init=prior"]),
    "mlm": ("mlm", []),   # disc_bias_init does nothing without a discriminator
}


def pretrain_plan(budget_tflops: float) -> dict[str, dict]:
    """{encoder: {steps, flops, flops_per_step}, "minutes": ...} for one budget, from the
    quickstart config's sizes."""
    from electra_tf.config import load_config

    config = load_config(PRETRAIN_CONFIG, [])
    model = config.model
    if getattr(config.data, "vocab_file", None) is None and config.data.vocab_size:
        # The run builds its vocabulary (data.vocab_size entries) and sizes the model by it.
        model = dataclasses.replace(model, vocab_size=config.data.vocab_size)
    batch, seq = config.train.batch_size, config.data.seq_length
    max_predictions = config.objective.max_predictions_for(seq)
    plan = {}
    for name, (kind, _) in ENCODERS.items():
        per_step = step_flops(model, kind, batch, seq, max_predictions)
        steps = steps_for_budget(budget_tflops * 1e12, per_step, config.train.steps_per_execution)
        plan[name] = {"steps": steps, "flops": steps * per_step, "flops_per_step": per_step}
    plan["minutes"] = minutes_equivalent(budget_tflops * 1e12, plan["electra"]["flops_per_step"],
                                         batch * seq, ELECTRA_TOKENS_PER_SECOND)
    return plan


def pretrain(run_dir: str, encoder: str, steps: int) -> None:
    from electra_tf.config import load_config
    from electra_tf.pretraining import PretrainingTask
    from electra_tf.training.trainer import Trainer

    if os.path.exists(os.path.join(run_dir, "done.json")):
        return
    warmup = max(1, min(200, steps // 4))   # the quickstart's 200 of 800, capped for short runs
    kind, extra = ENCODERS[encoder]
    overrides = [f"objective.kind={kind}", *extra, f"train.run_dir={run_dir}",
                 f"train.steps={steps}", f"train.warmup_steps={warmup}",
                 f"train.checkpoint_every={steps}", f"train.eval_every={steps}"]
    result = Trainer(PretrainingTask(load_config(PRETRAIN_CONFIG, overrides))).train()
    if result.status != "completed":
        raise SystemExit(f"pretraining {run_dir} ended {result.status}")
    with open(os.path.join(run_dir, "done.json"), "w") as f:
        json.dump({"steps": steps, "eval": result.eval_metrics}, f, default=float)


def word_row_norm(run_dir: str) -> float:
    """The mean L2 norm of the rows of the word-embedding table in `run_dir`'s latest
    checkpoint."""
    import numpy as np

    from electra_tf.export import load_run

    _, networks, _ = load_run(run_dir)
    rows = networks.encoder_network.embeddings.word_embeddings.numpy()
    return float(np.linalg.norm(rows, axis=1).mean())


def finetune_overrides(run_dir: str, init: str, vocab: str, seed: int, args) -> list[str]:
    """The `--set` overrides of one fine-tuning run (the task's config file holds the rest)."""
    overrides = [f"train.run_dir={run_dir}", f"train.seed={seed}", f"task.epochs={args.epochs}",
                 f"task.init={init}"]
    if init == "none":
        overrides += ["model.preset=tiny", f"task.vocab_file={vocab}"]
    if args.max_examples:
        overrides.append(f"data.max_examples={args.max_examples}")
    if args.learning_rate:
        overrides.append(f"train.learning_rate={args.learning_rate:g}")
    if args.word_norm and init != "none":  # a random table has nothing to rescale
        overrides.append(f"task.word_norm={args.word_norm:g}")
    return overrides


def finetune(run_dir: str, task: str, init: str, vocab: str, seed: int, args) -> dict:
    """Fine-tunes one encoder on one task; returns the best-on-validation checkpoint's scores."""
    from electra_tf.finetune.config import load_spec
    from electra_tf.finetune.inference import load_finetuned
    from electra_tf.finetune.setup import prepare_task
    from electra_tf.training.trainer import Trainer

    done = os.path.join(run_dir, "scores.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    overrides = finetune_overrides(run_dir, init, vocab, seed, args)
    config_path = os.path.join(ROOT, "configs", "finetune", f"{task}.yaml")
    result = Trainer(prepare_task(load_spec(config_path, overrides))).train()
    if result.status != "completed":
        raise SystemExit(f"fine-tuning {run_dir} ended {result.status}")
    run = load_finetuned(run_dir, "best")
    metric = TASKS[task]
    scores = {"validation": float(run.evaluate("validation")[metric]),
              "test": float(run.evaluate("test")[metric]), "checkpoint": str(run.checkpoint)}
    with open(done, "w") as f:
        json.dump(scores, f)
    return scores


def finetune_setting(args) -> str:
    """Names the fine-tuning setting: results of different settings never share a directory."""
    setting = f"max{args.max_examples or 'all'}_epochs{args.epochs:g}"
    if args.learning_rate:
        setting += f"_lr{args.learning_rate:g}"
    if args.word_norm:
        setting += f"_wordnorm{args.word_norm:g}"
    return setting


def run_encoder(name: str, init: str, vocab: str, args, results: dict, key: str) -> None:
    setting = finetune_setting(args)
    for task in args.tasks:
        for seed in range(args.seeds):
            run_dir = os.path.join(args.work_dir, "finetune", setting, key, name, task,
                                   f"seed{seed}")
            scores = finetune(run_dir, task, init, vocab, seed, args)
            results.setdefault(key, {}).setdefault(name, {}).setdefault(task, {})[
                str(seed)] = scores
            save(results, args.out)


def save(results: dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


def summarize(results: dict) -> list[dict]:
    """One row per (budget, encoder, task): mean and 95% half-width of the test score."""
    rows = []
    for key, encoders in results.items():
        if key in RUN_FACTS:
            continue
        for name, tasks in encoders.items():
            for task, seeds in tasks.items():
                test = [100 * s["test"] for s in seeds.values()]
                val = [100 * s["validation"] for s in seeds.values()]
                mean, half = mean_interval(test)
                rows.append({"budget": key, "encoder": name, "task": task, "n": len(test),
                             "test": mean, "half": half, "validation": sum(val) / len(val)})
    return rows


def table(results: dict) -> str:
    plans, norms = results.get("plans", {}), results.get("word_rows", {})
    lines = ["| budget (TFLOP) | ~min unloaded | encoder | pretrain steps | word-row norm | task "
             "| seeds | validation | test (95% CI) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(summarize(results), key=lambda r: (_budget(r["budget"]), r["task"],
                                                         r["encoder"])):
        plan = plans.get(row["budget"], {})
        steps = plan.get(row["encoder"], {}).get("steps", 0)
        minutes = f"{plan['minutes']:.1f}" if plan else "0"
        norm = norms.get(row["budget"], {}).get(row["encoder"])
        shown = "" if norm is None else f"{norm:.3f}"
        lines.append(f"| {row['budget']} | {minutes} | {row['encoder']} | {steps} | {shown} "
                     f"| {row['task']} | {row['n']} | {row['validation']:.1f} | {row['test']:.1f} "
                     f"[{row['test'] - row['half']:.1f}, {row['test'] + row['half']:.1f}] |")
    return "\n".join(lines)


def _budget(key: str) -> float:
    return 0.0 if key == "random" else float(key)


def write_markdown(results: dict, out: str) -> None:
    path = os.path.join(out, "results.md")
    block = f"{BEGIN}\n{table(results)}\n{END}"
    text = open(path).read() if os.path.exists(path) else f"# Results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    with open(path, "w") as f:
        f.write(head + block + rest.split(END, 1)[1])


def plot(results: dict, out: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no %s/results.png", out)
        return False
    rows = summarize(results)
    tasks = [task for task in TASKS if any(r["task"] == task for r in rows)]  # one panel each
    if not tasks:
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for name, color in (("electra", "tab:blue"), ("electra_prior", "tab:green"),
                            ("mlm", "tab:orange")):
            pts = sorted((_budget(r["budget"]), r["test"], r["half"]) for r in rows
                         if r["task"] == task and r["encoder"] == name)
            if pts:
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name, color=color)
        for r in rows:
            if r["task"] == task and r["encoder"] == "random":
                ax.axhline(r["test"], color="gray", linestyle="--", label="random init")
                ax.axhspan(r["test"] - r["half"], r["test"] + r["half"], color="gray",
                           alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("pretraining compute (TFLOP)")
        ax.set_ylabel(f"test {TASKS[task]} (%)")
        ax.set_title(task)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "results.png"), dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[21.8, 65.5, 196.5],
                        help="pretraining budgets in TFLOPs (about 5, 15, 45 unloaded minutes)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=3.0, help="fine-tuning epochs")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="cap every split of the fine-tuning tasks (data.max_examples)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="fine-tuning peak learning rate (default: the recipe's, 3e-4 for "
                             "tiny and small)")
    parser.add_argument("--word-norm", type=float, default=None,
                        help="task.word_norm for the pretrained encoders' fine-tunings (not in "
                             "the recipe; random init is run without it)")
    parser.add_argument("--objectives", nargs="+", default=list(ENCODERS),
                        choices=list(ENCODERS), help="pretrained encoders to run")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS),
                        help="downstream tasks to fine-tune on")
    parser.add_argument("--no-random", action="store_true",
                        help="skip the random-init encoder (e.g. a second process runs it)")
    parser.add_argument("--work-dir", default="runs/pretraining_value")
    parser.add_argument("--out", default="docs/")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plot from OUT/results.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    path = os.path.join(args.out, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    if not args.report_only:
        setting = finetune_setting(args)
        if results.setdefault("setting", setting) != setting:
            raise SystemExit(f"{path} holds results of fine-tuning setting {results['setting']}, "
                             f"not {setting}: use another --out")
        vocab = None
        for budget in args.budgets:
            key = f"{budget:g}"
            plan = pretrain_plan(budget)
            results.setdefault("plans", {})[key] = plan
            for objective in args.objectives:
                run_dir = os.path.join(args.work_dir, "pretrain", key, objective)
                pretrain(run_dir, objective, plan[objective]["steps"])
                results.setdefault("word_rows", {}).setdefault(key, {})[objective] = (
                    word_row_norm(run_dir))
                vocab = vocab or os.path.join(run_dir, "vocab.txt")
                if "random" not in results and not args.no_random:  # the same at every budget
                    run_encoder("random", "none", vocab, args, results, "random")
                run_encoder(objective, run_dir, vocab, args, results, key)
    save(results, args.out)
    write_markdown(results, args.out)
    plot(results, args.out)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
