"""Checkpoint interoperability: Google's TF1 checkpoints and HuggingFace `transformers` models.

    load_pretrained(networks, path)            HF directory or TF1 checkpoint, detected
    model_config_from_pretrained(path, base)   the ModelConfig that matches either
    export_huggingface / load_huggingface / read_huggingface_model_config
    load_tf1_checkpoint / write_tf1_checkpoint / model_config_from_tf1_checkpoint
    tf1_variables, tf1_to_hf, hf_to_tf1        canonical names (see names.py)
"""

from __future__ import annotations

from electra_tf.config import ModelConfig
from electra_tf.interop.huggingface import (
    export_huggingface,
    is_huggingface_dir,
    load_huggingface,
    read_huggingface_model_config,
)
from electra_tf.interop.tf1_checkpoint import (
    load_tf1_checkpoint,
    model_config_from_tf1_checkpoint,
    write_tf1_checkpoint,
)
from electra_tf.models.assign import CheckpointMismatchError, LoadSummary
from electra_tf.models.names import (
    hf_names,
    hf_to_tf1,
    network_variables,
    tf1_to_hf,
    tf1_variables,
)

__all__ = [
    "CheckpointMismatchError", "LoadSummary", "export_huggingface", "hf_names", "hf_to_tf1",
    "is_huggingface_dir", "load_huggingface", "load_pretrained", "load_tf1_checkpoint",
    "model_config_from_pretrained", "model_config_from_tf1_checkpoint", "network_variables",
    "read_huggingface_model_config", "tf1_to_hf", "tf1_variables", "write_tf1_checkpoint",
]


def load_pretrained(networks, path: str, *, allow_partial: bool = False) -> LoadSummary:
    """Loads pretrained weights into `networks` from `path`: an HF directory (config.json and
    model.safetensors, or our export with discriminator/ and generator/ subfolders), else a TF1
    checkpoint (a prefix such as `model.ckpt-1000000`, or a directory with a `checkpoint` file).
    """
    if is_huggingface_dir(path):
        return load_huggingface(networks, path, allow_partial=allow_partial)
    return load_tf1_checkpoint(networks, path, allow_partial=allow_partial)


def model_config_from_pretrained(path: str, base: ModelConfig) -> ModelConfig:
    """`base` with the sizes of the HF directory or TF1 checkpoint at `path`."""
    if is_huggingface_dir(path):
        return read_huggingface_model_config(path, base)
    return model_config_from_tf1_checkpoint(path, base)
