"""Export to / import from HuggingFace transformers directories."""

import ast
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch  # the test extra installs it: when missing, these tests fail, never skip
import transformers

from electra_tf.config import model_preset
from electra_tf.interop import (
    CheckpointMismatchError,
    export_huggingface,
    is_huggingface_dir,
    load_huggingface,
    load_pretrained,
    model_config_from_pretrained,
    read_huggingface_model_config,
    tf1_variables,
)
from electra_tf.interop import huggingface as hf_module
from electra_tf.models import build_networks
from electra_tf.models.names import hf_names, hf_to_tf1, tf1_to_hf

WORDS = ["the", "quick", "brown", "fox", "jump", "##s", "over", "lazy", "dog", "hello", "world"]


@pytest.fixture(scope="module")
def config():
    # Different generator sizes from the discriminator, and E != H on both sides.
    return model_preset("tiny", vocab_size=512, generator_fraction=0.25, dropout=0.0,
                        attention_dropout=0.0)


def write_vocab(path: Path, size: int) -> Path:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokens += [f"[unused{i}]" for i in range(size - len(tokens))]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def randomize(networks, seed=0):
    """Every variable random (LayerNorms and biases too), so any mix-up changes outputs."""
    rng = np.random.default_rng(seed)
    for variable in tf1_variables(networks).values():
        variable.assign(variable.numpy() + 0.1 * rng.standard_normal(variable.shape))


@pytest.fixture(scope="module")
def exported(config, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_export")
    networks = build_networks(config)
    randomize(networks)
    vocab = write_vocab(root / "vocab.txt", config.vocab_size)
    dirs = export_huggingface(networks, config, str(root / "model"), str(vocab))
    return networks, root / "model", dirs


def batch(config):
    rng = np.random.default_rng(3)
    ids = rng.integers(5, config.vocab_size, size=(2, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    ids[1, 8:] = 0
    segments = np.zeros_like(ids)
    segments[:, 5:] = 1
    segments[1, 8:] = 0
    positions = np.array([[1, 4, 6], [2, 3, 7]], np.int32)
    return ids, mask, segments, positions


def torch_inputs(ids, mask, segments):
    return dict(input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                token_type_ids=torch.tensor(segments, dtype=torch.long))


def test_export_layout(exported, config):
    _, root, dirs = exported
    assert set(dirs) == {"discriminator", "generator"}
    for role, cls in (("discriminator", "ElectraForPreTraining"),
                      ("generator", "ElectraForMaskedLM")):
        files = {p.name for p in (root / role).iterdir()}
        assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                "special_tokens_map.json"} <= files
        hf_config = json.loads((root / role / "config.json").read_text())
        assert hf_config["architectures"] == [cls]
        assert hf_config["model_type"] == "electra" and hf_config["hidden_act"] == "gelu"
        assert hf_config["pad_token_id"] == 0 and hf_config["layer_norm_eps"] == 1e-12
    gen_config = json.loads((root / "generator" / "config.json").read_text())
    assert gen_config["hidden_size"] == config.generator_hidden_size == 32
    assert gen_config["intermediate_size"] == 128 and gen_config["num_attention_heads"] == 1


def test_transformers_loads_export_and_matches(exported, config):
    networks, root, _ = exported
    ids, mask, segments, positions = batch(config)
    real = mask.astype(bool)
    disc = transformers.ElectraForPreTraining.from_pretrained(
        root / "discriminator", attn_implementation="eager").eval()
    gen = transformers.ElectraForMaskedLM.from_pretrained(
        root / "generator", attn_implementation="eager").eval()
    assert gen.generator_lm_head.weight is gen.electra.embeddings.word_embeddings.weight
    with torch.no_grad():
        disc_logits = disc(**torch_inputs(ids, mask, segments)).logits.numpy()
        gen_logits = gen(**torch_inputs(ids, mask, segments)).logits.numpy()
    ours = networks.discriminator(ids, mask, segments, training=False).numpy()
    assert np.max(np.abs(ours[real] - disc_logits[real])) <= 1e-4
    ours = networks.generator(ids, mask, segments, positions, training=False).numpy()
    theirs = np.take_along_axis(gen_logits, positions[:, :, None], axis=1)
    assert np.std(theirs) > 0.1
    assert np.max(np.abs(ours - theirs)) <= 1e-4


@pytest.mark.parametrize("role", ["discriminator", "generator"])
def test_tokenizer_loads_offline(exported, role):
    _, root, _ = exported
    for cls in (transformers.AutoTokenizer, transformers.ElectraTokenizerFast):
        tokenizer = cls.from_pretrained(root / role)
        encoded = tokenizer("The quick FOX jumps", "hello world")
        # [CLS] the quick fox jump ##s [SEP] hello world [SEP]
        assert encoded["input_ids"] == [2, 5, 6, 8, 9, 10, 3, 14, 15, 3]
        assert encoded["token_type_ids"] == [0] * 7 + [1] * 3
        assert tokenizer.mask_token_id == 4 and tokenizer.pad_token_id == 0


def test_import_back_is_exact(exported, config):
    networks, root, _ = exported
    fresh = build_networks(config)
    before = tf1_variables(fresh)
    assert not np.array_equal(before["electra/encoder/layer_0/output/dense/kernel"].numpy(),
                              tf1_variables(networks)["electra/encoder/layer_0/output/dense/kernel"]
                              .numpy())
    summary = load_pretrained(fresh, str(root))  # dispatches to load_huggingface
    assert len(summary.loaded) == len(before) and not summary.skipped
    original = tf1_variables(networks)
    for name, variable in tf1_variables(fresh).items():
        assert np.array_equal(variable.numpy(), original[name].numpy()), name


def test_read_model_config(exported, config, tmp_path):
    _, root, _ = exported
    read = read_huggingface_model_config(str(root))
    assert read == config
    assert model_config_from_pretrained(str(root), model_preset("small")) == config
    # A single ElectraForPreTraining directory keeps the base generator fraction.
    single = read_huggingface_model_config(str(root / "discriminator"), model_preset("small"))
    assert dataclasses.replace(single, generator_fraction=0.25) == config


def test_single_discriminator_dir_needs_allow_partial(exported, config, caplog):
    networks, root, _ = exported
    assert is_huggingface_dir(str(root / "discriminator")) and is_huggingface_dir(str(root))
    fresh = build_networks(config)
    with pytest.raises(CheckpointMismatchError) as error:
        load_huggingface(fresh, str(root / "discriminator"))
    message = str(error.value)
    assert "generator_predictions/output_bias" in message and "allow_partial" in message
    assert "generator/encoder/layer_1/output/LayerNorm/beta" in message
    with caplog.at_level(logging.WARNING, logger="electra_tf.interop"):
        summary = load_huggingface(fresh, str(root / "discriminator"), allow_partial=True)
    assert all(n.startswith(("generator/", "generator_predictions/")) for n in summary.skipped)
    assert "generator_predictions/output_bias" in caplog.text
    expected = tf1_variables(networks)
    for name, variable in tf1_variables(fresh).items():
        assert np.array_equal(variable.numpy(), expected[name].numpy()) != (name in summary.skipped)


def test_mlm_objective_export(config, tmp_path):
    networks = build_networks(config, objective="mlm")
    randomize(networks, seed=1)
    dirs = export_huggingface(networks, config, str(tmp_path / "mlm"), None)
    assert set(dirs) == {"generator"}
    gen = transformers.ElectraForMaskedLM.from_pretrained(
        dirs["generator"], attn_implementation="eager").eval()
    assert gen.config.hidden_size == config.hidden_size
    ids, mask, segments, positions = batch(config)
    with torch.no_grad():
        theirs = gen(**torch_inputs(ids, mask, segments)).logits.numpy()
    ours = networks.generator(ids, mask, segments, positions, training=False).numpy()
    assert np.max(np.abs(ours - np.take_along_axis(theirs, positions[:, :, None], 1))) <= 1e-4
    fresh = build_networks(config, objective="mlm")
    load_pretrained(fresh, str(tmp_path / "mlm"))
    for a, b in zip(fresh.generator.trainable_variables, networks.generator.trainable_variables,
                    strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_name_translation_round_trips(config):
    for networks, scope in ((build_networks(config), "generator"),
                            (build_networks(config, objective="mlm"), "electra")):
        for role, names in hf_names(networks).items():
            for hf_name, (tf1_name, transpose) in names.items():
                assert tf1_to_hf(tf1_name) == (hf_name, transpose)
                back = hf_to_tf1(hf_name, scope if role == "generator" else "electra")
                assert back == (tf1_name, transpose)
    assert hf_to_tf1("generator_lm_head.weight") is None
    assert tf1_to_hf("discriminator_predictions/dense_1/kernel") == (
        "discriminator_predictions.dense_prediction.weight", True)


def test_export_module_imports_no_torch():
    tree = ast.parse(Path(hf_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"torch", "transformers", "tensorflow", "keras"}


def test_export_and_import_through_a_non_local_filesystem(exported, config):
    """HF export and import go through tf.io.gfile: TensorFlow's in-memory ram:// filesystem
    stands in for gs://, and holds byte-identical files to the local export."""
    import tensorflow as tf

    networks, root, _ = exported
    remote = "ram://hf_round_trip/model"
    vocab = "ram://hf_round_trip/vocab.txt"
    tf.io.gfile.copy(str(root / "discriminator" / "vocab.txt"), vocab, overwrite=True)
    dirs = export_huggingface(networks, config, remote, vocab)
    assert dirs == {role: f"{remote}/{role}" for role in ("discriminator", "generator")}
    for role in dirs:
        for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                     "special_tokens_map.json"):
            with tf.io.gfile.GFile(f"{remote}/{role}/{name}", "rb") as f:
                assert f.read() == (root / role / name).read_bytes(), (role, name)
    assert is_huggingface_dir(remote) and is_huggingface_dir(dirs["discriminator"])
    assert read_huggingface_model_config(remote) == config
    fresh = build_networks(config)
    summary = load_pretrained(fresh, remote)
    assert not summary.skipped
    original = tf1_variables(networks)
    for name, variable in tf1_variables(fresh).items():
        assert np.array_equal(variable.numpy(), original[name].numpy()), name
