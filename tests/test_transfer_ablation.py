"""benchmarks/transfer_ablation.py's partial initialisation, on a tiny fine-tuning model."""

import importlib.util
import os

import numpy as np
import pytest

# Loaded by path, like tests/test_frozen_features.py (benchmarks/ must not go on sys.path).
_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks",
                     "transfer_ablation.py")
_spec = importlib.util.spec_from_file_location("transfer_ablation", _PATH)
transfer_ablation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(transfer_ablation)


@pytest.fixture(scope="module")
def model(tiny_model_config):
    from electra_tf.finetune.model import build_model

    return build_model(tiny_model_config, "classification", 3)


def _pretend_pretrained(model, path, allow_partial):
    """Stands in for load_encoder: every embedding and encoder variable becomes 7."""
    for variable in model.embeddings.weights + model.encoder.weights:
        variable.assign(np.full(variable.shape, 7.0, "float32"))
    return path


def _is_seven(variable) -> bool:
    return bool(np.all(variable.numpy() == 7.0))


@pytest.mark.parametrize("part", transfer_ablation.PARTS)
def test_only_the_named_part_comes_from_the_pretrained_encoder(model, part):
    from electra_tf.finetune.model import build_model

    fresh = build_model(model.config, "classification", 3)
    before = {v.path: v.numpy() for v in fresh.weights}
    transfer_ablation.partial_warm_start(_pretend_pretrained, part)(fresh, "ckpt", False)
    embeddings = [_is_seven(v) for v in fresh.embeddings.weights]
    layers = [_is_seven(v) for v in fresh.encoder.weights]
    assert all(embeddings) == (part in ("all", "embeddings"))
    assert not any(embeddings) == (part in ("layers", "none"))
    assert all(layers) == (part in ("all", "layers"))
    assert not any(layers) == (part in ("embeddings", "none"))
    for variable in fresh.weights:  # what stays random keeps its own values; the head always
        if not _is_seven(variable):
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])
    assert not any(_is_seven(v) for v in fresh.head.weights)


def test_parts_join_with_plus_and_an_unknown_part_is_named(model):
    parts = transfer_ablation.encoder_parts(model)
    pieces = set(transfer_ablation.EMBEDDING_PIECES)
    assert set(parts) == pieces | {"projection"} | {
        f"layer_{i}" for i in range(model.config.num_layers)}
    kept = transfer_ablation.random_variables(model, "embeddings+layer_0")
    expected = [v for name, group in parts.items() if name not in pieces | {"layer_0"}
                for v in group]
    assert [v.path for v in kept] == [v.path for v in expected]
    with pytest.raises(SystemExit, match="no part \\['layer_9'\\]"):
        transfer_ablation.random_variables(model, "embeddings+layer_9")


def test_one_piece_of_the_embeddings_can_stay_random(model):
    """Naming every part but the position table leaves just that table random."""
    from electra_tf.finetune.model import build_model

    fresh = build_model(model.config, "classification", 3)
    part = "+".join(["word_embeddings", "token_type_embeddings", "embeddings_norm",
                     "projection"] + [f"layer_{i}" for i in range(model.config.num_layers)])
    transfer_ablation.partial_warm_start(_pretend_pretrained, part)(fresh, "ckpt", False)
    embeddings = fresh.embeddings
    assert not _is_seven(embeddings.position_embeddings)
    assert _is_seven(embeddings.word_embeddings) and _is_seven(embeddings.token_type_embeddings)
    assert all(_is_seven(v) for v in embeddings.layer_norm.weights + fresh.encoder.weights)


def test_layer_cosines_follow_the_encoder_layer_by_layer(model):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    ids = rng.integers(5, model.config.vocab_size, (8, 16)).astype(np.int32)
    ids[:, 0] = 2  # every example starts with the same token, so [CLS] vectors start equal
    batch = {"input_ids": tf.constant(ids), "input_mask": tf.ones((8, 16), tf.int32),
             "segment_ids": tf.zeros((8, 16), tf.int32)}
    rows = transfer_ablation.layer_cosines(model, batch)
    assert [name for name, _, _ in rows] == ["embeddings"] + [
        f"layer_{i}" for i in range(model.config.num_layers)]
    assert rows[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= tokens < 0.99 for _, _, tokens in rows)  # random tokens differ


def test_a_tagging_run_is_scored_by_its_main_metric(random_run, tmp_path):
    """The ablation reports the task's main metric (F1 for tagging), not token accuracy."""
    import argparse

    import yaml

    from electra_tf.finetune.inference import load_finetuned
    from electra_tf.finetune.synthetic import write_synthetic_task

    init = os.path.dirname(random_run[0].data.vocab_file)
    data = write_synthetic_task("tagging", str(tmp_path / "data"), train=64, validation=32,
                                test=8)
    config = {"task": {"kind": "tagging"},
              "data": {"source": data.source, "train_path": data.train_path,
                       "validation_path": data.validation_path, "test_path": data.test_path,
                       "seq_length": 16},
              "train": {"batch_size": 8, "steps": 8, "warmup_steps": 2, "log_every": 4}}
    path = tmp_path / "tagging.yaml"
    path.write_text(yaml.safe_dump(config))
    args = argparse.Namespace(config=str(path), set=[], word_norm=None)
    run_dir = str(tmp_path / "run")
    score = transfer_ablation.finetune(init, "embeddings", 0, run_dir, args)
    metrics = load_finetuned(run_dir, "best").evaluate("validation")
    assert score == pytest.approx(metrics["f1"])
    assert metrics["f1"] != metrics["accuracy"]


def test_word_norm_rescales_only_a_pretrained_word_table(model):
    from electra_tf.finetune.model import build_model

    fresh = build_model(model.config, "classification", 3)
    transfer_ablation.partial_warm_start(_pretend_pretrained, "all", 0.5)(fresh, "ckpt", False)
    rows = fresh.embeddings.word_embeddings.numpy()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 0.5, rtol=1e-5)
    np.testing.assert_allclose(rows, rows[0, 0])   # 7s in every direction: the direction kept
    assert _is_seven(fresh.embeddings.position_embeddings)
    random_table = build_model(model.config, "classification", 3)
    before = random_table.embeddings.word_embeddings.numpy()
    transfer_ablation.partial_warm_start(_pretend_pretrained, "layers", 0.5)(
        random_table, "ckpt", False)   # the word table stays random: not rescaled
    np.testing.assert_array_equal(random_table.embeddings.word_embeddings.numpy(), before)
