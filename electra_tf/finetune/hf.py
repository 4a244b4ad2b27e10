"""HuggingFace `transformers` directories of fine-tuned models: export and import.

A classification or regression model becomes an `ElectraForSequenceClassification` directory,
a tagging model an `ElectraForTokenClassification` one; config.json carries `id2label` /
`label2id` (and `problem_type`), so `pipeline(...)` reports label names. Weights are written
with `safetensors.numpy` (no torch needed), under the names `tf1_to_hf` gives our stable names.
Paths go through `tf.io.gfile` (`electra_tf.interop.files`), so gs:// directories work too.
"""

from __future__ import annotations

import logging

import numpy as np

from electra_tf.config import ModelConfig
from electra_tf.interop import files
from electra_tf.interop.huggingface import (
    DISCRIMINATOR,
    SPECIAL_TOKENS,
    WEIGHTS,
    hf_config,
    read_safetensors,
    read_vocab,
    safetensors_numpy,
    write_json,
)
from electra_tf.models.assign import CheckpointMismatchError
from electra_tf.models.names import tf1_to_hf

log = logging.getLogger(__name__)

ARCHITECTURES = {"classification": "ElectraForSequenceClassification",
                 "regression": "ElectraForSequenceClassification",
                 "tagging": "ElectraForTokenClassification"}
PROBLEM_TYPES = {"classification": "single_label_classification", "regression": "regression"}


def hf_task_config(model, model_config: ModelConfig, kind: str, label_names: list[str],
                   pad_token_id: int = 0) -> dict:
    """config.json of the HF model matching `model` (a FinetuneModel)."""
    config = hf_config(model, model_config, DISCRIMINATOR, pad_token_id)
    names = list(label_names) if kind != "regression" else ["score"]
    config.update(architectures=[ARCHITECTURES[kind]],
                  id2label={str(i): name for i, name in enumerate(names)},
                  label2id={name: i for i, name in enumerate(names)},
                  classifier_dropout=model.head_dropout)
    if kind in PROBLEM_TYPES:
        config["problem_type"] = PROBLEM_TYPES[kind]
    return config


def export_hf_task_model(model, model_config: ModelConfig, kind: str, label_names: list[str],
                         out_dir: str, vocab_path: str | None, *, lower_case: bool = True,
                         strip_accents: bool | None = None) -> str:
    """Writes `out_dir` as an HF ElectraFor{Sequence,Token}Classification directory."""
    tokens = read_vocab(vocab_path, model.embeddings.vocab_size) if vocab_path else None
    if tokens is None:
        log.warning("No WordPiece vocab given: the HF export has no tokenizer files")
    pad_token_id = tokens.index(SPECIAL_TOKENS["pad_token"]) if tokens else 0
    directory = out_dir
    files.make_dirs(directory)
    tensors = {}
    for name, variable in model.model_variables().items():
        hf_name, transpose = tf1_to_hf(name)
        array = np.asarray(variable.numpy(), dtype=np.float32)
        tensors[hf_name] = np.ascontiguousarray(array.T if transpose else array)
    files.write_bytes(files.join(directory, WEIGHTS),
                      safetensors_numpy().save(tensors, metadata={"format": "pt"}))
    write_json(files.join(directory, "config.json"),
                hf_task_config(model, model_config, kind, label_names, pad_token_id))
    if tokens is not None:
        assert vocab_path is not None  # tokens were read from it
        files.copy(vocab_path, files.join(directory, "vocab.txt"))
        write_json(files.join(directory, "tokenizer_config.json"), {
            "tokenizer_class": "ElectraTokenizer", "do_lower_case": lower_case,
            "strip_accents": strip_accents, "tokenize_chinese_chars": True,
            "model_max_length": model.embeddings.max_positions, **SPECIAL_TOKENS})
        write_json(files.join(directory, "special_tokens_map.json"), dict(SPECIAL_TOKENS))
    log.info("Wrote HF %s (%d tensors) to %s", ARCHITECTURES[kind], len(tensors), directory)
    return directory


def load_hf_task_model(model, hf_dir: str) -> None:
    """Assigns every variable of `model` (encoder and head) from an HF classification
    directory; any missing or misshaped tensor raises CheckpointMismatchError (nothing set)."""
    weights = read_safetensors(files.join(hf_dir, WEIGHTS))
    values, problems = {}, []
    for name, variable in model.model_variables().items():
        hf_name, transpose = tf1_to_hf(name)
        if hf_name not in weights:
            problems.append(f"{hf_name}: missing")
            continue
        array = weights[hf_name].T if transpose else weights[hf_name]
        if tuple(array.shape) != tuple(variable.shape):
            problems.append(f"{hf_name}: shape {array.shape}, the model {tuple(variable.shape)}")
        values[name] = array
    if problems:
        raise CheckpointMismatchError(
            f"{hf_dir} does not match the model ({len(problems)} problems: "
            f"{'; '.join(problems[:3])}); check the model config and task.num_labels")
    for name, variable in model.model_variables().items():
        variable.assign(values[name].astype(variable.dtype))
