"""How long a finished run takes to let go of its input pipeline, with and without tf.data's
autotuning (`train.input_autotune`), and what the setting does to throughput.

Each round trains the quickstart config for `--steps` steps in a fresh subprocess per setting
(alternating off/on), then times dropping the Trainer (its iterators with it). Prints one line
per run and the medians:

    python benchmarks/input_teardown.py --steps 200 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(steps: int, autotune: bool, run_dir: str) -> dict:
    """Runs in the child process: trains, then times `del trainer`."""
    import gc
    import time

    from electra_tf.config import load_config
    from electra_tf.pretraining import PretrainingTask
    from electra_tf.training.trainer import Trainer

    config = load_config(os.path.join(REPO, "configs", "quickstart.yaml"), [
        f"train.steps={steps}", f"train.run_dir={run_dir}", f"train.input_autotune={autotune}",
        "train.eval_every=0", "train.text_summary_every=0", f"train.checkpoint_every={steps}"])
    trainer = Trainer(PretrainingTask(config))
    start = time.perf_counter()
    result = trainer.train()
    trained = time.perf_counter()
    del trainer
    gc.collect()
    return {"train_s": trained - start, "teardown_s": time.perf_counter() - trained,
            "tokens_per_second": result.metrics.get("tokens_per_second", float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("AUTOTUNE", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.steps, args.child[0] == "on", args.child[1])))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rows: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for setting in ("off", "on"):
                run_dir = os.path.join(tmp, f"{setting}{round_}")
                out = subprocess.run(
                    [sys.executable, __file__, "--steps", str(args.steps), "--child", setting,
                     run_dir], capture_output=True, text=True, env=env, check=True, cwd=REPO)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows[setting].append(row)
                print(f"round {round_} autotune {setting}: train {row['train_s']:.1f} s, "
                      f"{row['tokens_per_second']:.0f} tokens/s, "
                      f"teardown {row['teardown_s']:.1f} s", flush=True)
    for setting, found in rows.items():
        teardown = statistics.median(r["teardown_s"] for r in found)
        rate = statistics.median(r["tokens_per_second"] for r in found)
        print(f"autotune {setting}: median teardown {teardown:.1f} s, "
              f"median {rate:.0f} tokens/s ({len(found)} runs)")


if __name__ == "__main__":
    main()
