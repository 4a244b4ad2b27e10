"""Pretraining as a task of the training loop: ELECTRA (replaced token detection) or MLM.

    task = PretrainingTask(load_config("configs/quickstart.yaml"))
    result = Trainer(task).train()

The objective itself is in `objective.py`, its metrics in `training/metrics.py`; this module
connects them, the networks, the input pipeline and the warm start to the loop's `Task` seam.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from electra_tf.config import RunConfig, read_saved_config
from electra_tf.models import ElectraNetworks, build_networks
from electra_tf.objective import (
    electra_objective,
    loss_normalizers,
    scatter_at_positions,
    total_loss_from_ratios,
)
from electra_tf.training import metrics as metrics_lib
from electra_tf.training.checkpoints import is_run_checkpoint, model_checkpoint, restore_networks
from electra_tf.training.run_tokenizer import resolve_tokenizer
from electra_tf.training.summaries import LOOP_TAGS, render_replacements
from electra_tf.training.task import DatasetFn, EvalOutput, StepContext, StepOutput, Task

log = logging.getLogger(__name__)

# Below this held-out AUC at or after this step, the run log warns that the discriminator is
# stalled: a published ELECTRA-Small log reaches 0.68 by step 5,000, and the quickstart's
# tiny model reaches 0.69 by step 3,000 (docs/quickstart-demo.md).
STALLED_AUC, STALLED_AUC_STEP = 0.55, 5000

# The scalar tags an ELECTRA pretraining run writes (tests check they are all present).
TRAIN_TAGS = (metrics_lib.ELECTRA_RATIOS + ("disc_auc",) + LOOP_TAGS)


def resume_problems(saved: RunConfig, new: RunConfig) -> list[str]:
    """Fields that must not change when a run resumes: they change the variables, or the shapes
    of the batches held in the checkpointed state of the data pipeline."""
    problems = []
    if saved.model != new.model:
        problems.append("model (network sizes)")
    if saved.objective.kind != new.objective.kind:
        problems.append("objective.kind")
    for name in ("seq_length", "tokenizer", "lower_case", "strip_accents"):
        if getattr(saved.data, name) != getattr(new.data, name):
            problems.append(f"data.{name}")
    if saved.train.batch_size != new.train.batch_size:
        problems.append(f"train.batch_size ({saved.train.batch_size}, now "
                        f"{new.train.batch_size})")
    if saved.max_predictions != new.max_predictions:
        problems.append(f"objective.max_predictions ({saved.max_predictions}, now "
                        f"{new.max_predictions}; unless set, it follows objective.mask_prob)")
    if saved.train.precision != new.train.precision and "mixed_float16" in (
            saved.train.precision, new.train.precision):
        problems.append("train.precision (to or from mixed_float16, which adds a loss scale)")
    return problems


class PretrainingTask(Task):
    """ELECTRA or MLM pretraining of `config` (a validated RunConfig).

    `train_dataset_fn` / `eval_dataset_fn` replace the configured corpus (tests and benchmarks
    feed synthetic batches); `tokenizer` replaces the run's (then `config` must be resolved).
    """

    log_keys = ("loss", "masked_lm_loss", "masked_lm_accuracy", "disc_loss", "disc_auc",
                "disc_recall", "tokens_per_second")

    def __init__(self, config: RunConfig, *, train_dataset_fn: DatasetFn | None = None,
                 eval_dataset_fn: DatasetFn | None = None, tokenizer=None):
        self.config = config
        self.tokenizer = tokenizer
        self._dataset_fns = {"train": train_dataset_fn, "eval": eval_dataset_fn}
        self._given_data = train_dataset_fn is not None

    def prepare(self) -> None:
        """Resolves the vocabulary (building one into the run directory if needed)."""
        if self._given_data or self.tokenizer is not None:
            return
        self.config, self.tokenizer = resolve_tokenizer(self.config)

    # ------------------------------------------------------------------ networks

    def build_model(self, precision: str) -> ElectraNetworks:
        return _networks(self.config, precision)

    def checkpoint_weights(self, model: ElectraNetworks) -> tf.train.Checkpoint:
        return model_checkpoint(model)

    def warm_start(self, model: ElectraNetworks, path: str, allow_partial: bool) -> str:
        """Weights from a run dir (or its checkpoints/ dir or one of its checkpoints), an HF
        directory or a TF1 checkpoint."""
        if is_run_checkpoint(path):
            return restore_networks(path, model, allow_partial=allow_partial)
        from electra_tf.interop import load_pretrained

        load_pretrained(model, path, allow_partial=allow_partial)
        return path

    # ------------------------------------------------------------------ data

    def dataset_fn(self, split: str) -> DatasetFn | None:
        if self._given_data:
            return self._dataset_fns[split]
        from electra_tf.data import dataset_fn, has_eval_split

        if split == "eval" and not has_eval_split(self.config.data):
            log.info("no held-out data (data.eval_documents is 0 and no data.eval_paths): "
                     "evaluation is skipped")
            return None
        return dataset_fn(self.config, self.tokenizer, split, self.config.train.batch_size)

    @property
    def tokens_per_example(self) -> int:
        return self.config.data.seq_length

    # ------------------------------------------------------------------ inside the step

    def loss_normalizers(self, batch) -> dict[str, tf.Tensor]:
        return loss_normalizers(batch)

    def train_step(self, model, batch, context: StepContext) -> StepOutput:
        out = electra_objective(model, batch, config=self.config.objective, seed=context.seed,
                                example_ids=context.example_ids,
                                normalizers=context.normalizers, training=True)
        return StepOutput(out.loss, metrics_lib.replica_sums(out))

    def eval_step(self, model, batch, context: StepContext) -> EvalOutput:
        out = electra_objective(model, batch, config=self.config.objective, seed=context.seed,
                                training=False)
        return EvalOutput(metrics_lib.replica_sums(out))

    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        return metrics_lib.sum_shapes(self.config.objective.kind)

    # ------------------------------------------------------------------ on the host

    def metrics(self, sums: dict[str, np.ndarray],
                examples: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        values = metrics_lib.finalize(sums, self.config.objective.kind)
        values["loss"] = float(total_loss_from_ratios(values, self.config.objective))
        return values

    def text_summary(self, model: ElectraNetworks, batch) -> str | None:
        """The first example of `batch` with the generator's replacements and the
        discriminator's verdicts marked."""
        if self.tokenizer is None or model.discriminator is None:
            return None
        out = electra_objective(model, batch, config=self.config.objective,
                                seed=tf.constant(self.config.train.seed, tf.int64),
                                training=False)
        original = scatter_at_positions(batch["input_ids"], batch["masked_lm_positions"],
                                        batch["masked_lm_ids"], batch["masked_lm_weights"])
        length = int(tf.reduce_sum(batch["input_mask"][0]))

        def to_text(ids) -> list[str]:
            tokens = self.tokenizer.id_to_token(ids[0][:length]).numpy()
            return [t.decode("utf-8", "replace") for t in tokens]

        return render_replacements(to_text(out.extras["corrupted_ids"]), to_text(original),
                                   out.extras["disc_probs"][0].numpy(), length)

    def progress_warning(self, step: int, eval_values: dict[str, float]) -> str | None:
        """Held-out AUC still at chance long after the reference curve leaves it
        (docs/quickstart-demo.md has the measured curves)."""
        auc = eval_values.get("disc_auc")
        if auc is None or step < STALLED_AUC_STEP or auc >= STALLED_AUC:
            return None
        return (f"held-out disc_auc is {auc:.3f} at step {step}, still near chance (0.5): "
                f"healthy ELECTRA runs pass {STALLED_AUC} well before step {STALLED_AUC_STEP} "
                "(a published ELECTRA-Small log is at 0.68 by step 5,000). Check "
                "train.learning_rate and train.warmup_steps, the corpus (enough real text?), "
                "and model.generator_fraction; docs/plateau.md describes the plateau of tiny "
                "models")

    def resume_problems(self, saved_config: RunConfig) -> list[str]:
        return resume_problems(saved_config, self.config)

    def read_config(self, path: str) -> RunConfig:
        return read_saved_config(path)


def _networks(config: RunConfig, precision: str) -> ElectraNetworks:
    """The run's networks, the discriminator's output bias as objective.disc_bias_init says."""
    networks = build_networks(config.model, config.objective.kind, precision)
    if networks.discriminator is not None:
        init_disc_bias(networks.discriminator, config.objective)
    return networks


def init_disc_bias(discriminator, objective) -> None:
    """Sets a freshly built discriminator's output bias as objective.disc_bias_init says."""
    if objective.disc_bias_init != "zero":
        discriminator.head_output.bias.assign([objective.disc_initial_bias()])
