"""Pretrained sources that cannot be loaded give user errors naming the file (no torch needed)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.errors import UserError
from electra_tf.interop import (
    CheckpointMismatchError,
    is_huggingface_dir,
    load_pretrained,
    model_config_from_pretrained,
)
from electra_tf.models import build_networks


def hf_dir(path, weights_file, **config):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "electra", **config}))
    (path / weights_file).write_bytes(b"not read")
    return str(path)


def test_pytorch_only_directory_gets_the_hf_loaders_message(tmp_path, tiny_model_config):
    path = hf_dir(tmp_path / "hf", "pytorch_model.bin")
    assert is_huggingface_dir(path)
    with pytest.raises(FileNotFoundError, match="has no model.safetensors \\(it has "
                                                "pytorch_model.bin\\); only safetensors"):
        load_pretrained(build_networks(tiny_model_config), path)


def test_non_electra_model_type_is_a_user_error(tmp_path, tiny_model_config):
    path = hf_dir(tmp_path / "bert", "model.safetensors", model_type="bert")
    for load in (lambda: load_pretrained(build_networks(tiny_model_config), path),
                 lambda: model_config_from_pretrained(path, tiny_model_config)):
        with pytest.raises(CheckpointMismatchError, match="'bert' model, not ELECTRA") as error:
            load()
        assert isinstance(error.value, UserError)


def test_non_electra_tf1_checkpoint_is_a_user_error(tmp_path, tiny_model_config):
    prefix = str(tmp_path / "model.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["bert/embeddings/word_embeddings"],
                      shape_and_slices=[""], tensors=[tf.constant(np.zeros((4, 2), np.float32))])
    with pytest.raises(CheckpointMismatchError, match="does not look like an ELECTRA"):
        model_config_from_pretrained(prefix, tiny_model_config)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors_is_a_user_error_naming_the_file(tmp_path, tiny_model_config,
                                                             damage):
    from electra_tf.interop import export_huggingface

    networks = build_networks(tiny_model_config)
    export_huggingface(networks, tiny_model_config, str(tmp_path / "hf"), None)
    weights = tmp_path / "hf" / "discriminator" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"\x13garbage, not safetensors" * 40 if damage == "garbage"
                        else data[:len(data) // 2])
    assert is_huggingface_dir(str(tmp_path / "hf"))
    with pytest.raises(CheckpointMismatchError) as error:
        load_pretrained(build_networks(tiny_model_config), str(tmp_path / "hf"))
    assert isinstance(error.value, UserError)
    message = str(error.value)
    assert str(weights) in message and "is not a readable safetensors file" in message
    assert "download or export the model again" in message and "\n" not in message
