"""The FLOP accounting of benchmarks/pretraining_value.py (no training: milliseconds)."""

import importlib.util
import os

import pytest

from electra_tf.config import model_preset

# Loaded by path, not through sys.path (benchmarks/pipelines.py would shadow the pipelines
# package for test modules collected later).
_spec = importlib.util.spec_from_file_location("pretraining_flops", os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks", "pretraining_flops.py"))
_flops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_flops)
encoder_forward_flops, mean_interval = _flops.encoder_forward_flops, _flops.mean_interval
mlm_head_forward_flops, step_flops = _flops.mlm_head_forward_flops, _flops.step_flops
steps_for_budget = _flops.steps_for_budget

BATCH, SEQ, PRED = 32, 128, 19


@pytest.fixture
def tiny():
    return model_preset("tiny", vocab_size=8192)


def test_encoder_flops_by_hand():
    # 1 layer, T = 2*4 = 8 tokens, H = 2, I = 4, E = 3 (projection counted since E != H).
    per_layer = 2 * 8 * (4 * 2 * 2 + 2 * 2 * 4) + 2 * 2 * 2 * 4 * 4 * 2
    assert encoder_forward_flops(2, 4, 2, 4, 1, 3) == per_layer + 2 * 8 * 3 * 2
    assert encoder_forward_flops(2, 4, 2, 4, 1, 2) == per_layer  # E == H: no projection


def test_electra_counts_the_generator(tiny):
    gen = encoder_forward_flops(BATCH, SEQ, 64, 256, 2, 64)  # tiny generator: hidden 64, FFN 256
    gen_head = mlm_head_forward_flops(BATCH * PRED, 64, 64, 8192)
    disc = encoder_forward_flops(BATCH, SEQ, 128, 512, 2, 64)
    disc_head = 2 * BATCH * SEQ * (128 * 128 + 128)
    assert step_flops(tiny, "electra", BATCH, SEQ, PRED) == 3 * (gen + gen_head + disc + disc_head)
    mlm = 3 * (disc + mlm_head_forward_flops(BATCH * PRED, 128, 64, 8192))
    assert step_flops(tiny, "mlm", BATCH, SEQ, PRED) == mlm
    # ELECTRA costs more per step than MLM: the generator outweighs the smaller MLM head.
    assert step_flops(tiny, "electra", BATCH, SEQ, PRED) > mlm


def test_mlm_gets_the_steps_of_the_electra_budget(tiny):
    electra = step_flops(tiny, "electra", BATCH, SEQ, PRED)
    mlm = step_flops(tiny, "mlm", BATCH, SEQ, PRED)
    budget = 800 * electra
    assert steps_for_budget(budget, electra) == 800
    mlm_steps = steps_for_budget(budget, mlm)
    assert mlm_steps > 800
    assert abs(mlm_steps * mlm - budget) <= mlm / 2  # the closest whole number of steps
    rounded = steps_for_budget(budget, mlm, multiple=25)
    assert rounded % 25 == 0 and abs(rounded * mlm - budget) <= 25 * mlm / 2
    assert steps_for_budget(1.0, mlm, multiple=25) == 25  # never zero steps


def test_mean_interval_is_a_t_interval():
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / 3 ** 0.5)
    with pytest.raises(ValueError):
        step_flops(model_preset("tiny"), "bert", BATCH, SEQ, PRED)


@pytest.fixture(scope="module")
def value():
    """benchmarks/pretraining_value.py, loaded by path."""
    spec = importlib.util.spec_from_file_location("pretraining_value", os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "benchmarks", "pretraining_value.py"))
    value = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(value)
    return value


def test_the_benchmark_plans_equal_flops_for_each_encoder(value):
    plan = value.pretrain_plan(21.8)
    assert set(value.ENCODERS) <= set(plan)
    # the steps docs/results.md reports; the prior bias changes no FLOP
    assert plan["electra"]["steps"] == plan["electra_prior"]["steps"] == 1275
    assert plan["mlm"]["steps"] == 1625
    assert value.ENCODERS["electra"][1] == ["objective.disc_bias_init=zero"]


def test_a_fine_tuning_learning_rate_gets_its_own_setting(value):
    parse = value.argparse.Namespace
    recipe = parse(max_examples=3000, epochs=3.0, learning_rate=None, word_norm=None)
    assert value.finetune_setting(recipe) == "max3000_epochs3"  # the directories results.md used
    faster = parse(max_examples=3000, epochs=3.0, learning_rate=1e-3, word_norm=None)
    assert value.finetune_setting(faster) == "max3000_epochs3_lr0.001"
    assert "train.learning_rate=0.001" in value.finetune_overrides("d", "none", "v", 0, faster)
    assert not any(o.startswith("train.learning_rate")
                   for o in value.finetune_overrides("d", "run", "v", 0, recipe))


def test_word_norm_gets_its_own_setting_and_reaches_only_pretrained_encoders(value):
    rescaled = value.argparse.Namespace(max_examples=3000, epochs=3.0, learning_rate=1e-3,
                                        word_norm=0.16)
    assert value.finetune_setting(rescaled) == "max3000_epochs3_lr0.001_wordnorm0.16"
    assert "task.word_norm=0.16" in value.finetune_overrides("d", "run", "v", 0, rescaled)
    assert not any(o.startswith("task.word_norm")
                   for o in value.finetune_overrides("d", "none", "v", 0, rescaled))


def test_the_plot_has_one_panel_per_task_that_was_run(value, tmp_path):
    """A one-task run (e.g. --tasks wordnet_tagging) gets no empty panel for the other task."""
    import matplotlib.image  # the test extra installs it, like the bench extra

    seeds = {str(i): {"validation": 0.2 + i / 100, "test": 0.21 + i / 100} for i in range(3)}
    results = {"random": {"random": {"wordnet_tagging": seeds}},
               "196.5": {"electra_prior": {"wordnet_tagging": seeds}}}
    assert value.plot(results, str(tmp_path))
    one = matplotlib.image.imread(str(tmp_path / "results.png"))
    results["random"]["random"]["wordnet_lexname"] = seeds
    assert value.plot(results, str(tmp_path))
    two = matplotlib.image.imread(str(tmp_path / "results.png"))
    assert one.shape[1] * 2 == two.shape[1]   # 5 inches per panel at the same dpi
    assert not value.plot({"setting": "x"}, str(tmp_path))


def test_word_row_norm_reads_the_latest_checkpoint(value, random_run):
    import numpy as np

    config, networks, _ = random_run
    rows = networks.encoder_network.embeddings.word_embeddings.numpy()  # the step-7 weights
    assert value.word_row_norm(config.train.run_dir) == pytest.approx(
        float(np.linalg.norm(rows, axis=1).mean()), rel=1e-6)


def test_the_table_shows_each_encoders_word_row_norm(value):
    seeds = {str(i): {"validation": 0.2, "test": 0.2 + i / 100} for i in range(3)}
    results = {"random": {"random": {"wordnet_tagging": seeds}},
               "21.8": {"mlm": {"wordnet_tagging": seeds}},
               "word_rows": {"21.8": {"mlm": 0.41371}}}
    rows = value.table(results).splitlines()
    assert "word-row norm" in rows[0] and len(rows) == 4   # header, rule, two encoders
    assert "| random | 0 |  | wordnet_tagging |" in rows[2]
    assert "| mlm | 0 | 0.414 | wordnet_tagging |" in rows[3]
