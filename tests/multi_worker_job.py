"""One worker of the two-process MultiWorkerMirroredStrategy test (run by test_multi_worker.py).

Usage: python multi_worker_job.py RUN_DIR   (TF_CONFIG set by the caller)
Prints `DIGEST <hex>` with the final weights' digest.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))

import tensorflow as tf  # noqa: E402
from synthetic import dataset_fn, synthetic_examples  # noqa: E402

from electra_tf.config import config_from_dict  # noqa: E402
from electra_tf.pretraining import PretrainingTask  # noqa: E402
from electra_tf.training.trainer import Trainer  # noqa: E402


def main(run_dir: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    config = config_from_dict({
        "model": {"preset": "tiny", "vocab_size": 256, "num_layers": 1},
        "data": {"seq_length": 32},
        "train": {"run_dir": run_dir, "strategy": "multi_worker", "batch_size": 16,
                  "steps": 6, "log_every": 3, "checkpoint_every": 3, "warmup_steps": 2,
                  "steps_per_execution": 3, "text_summary_every": 0},
    })
    examples = synthetic_examples(64, 32, 256, max_predictions=4)
    trainer = Trainer(PretrainingTask(config, train_dataset_fn=dataset_fn(examples, 16)),
                      strategy=strategy)
    result = trainer.train()
    print(f"DIGEST {result.weights_digest} STEP {result.step}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
