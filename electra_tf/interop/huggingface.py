"""HuggingFace `transformers` ELECTRA directories: export our networks, import theirs.

An export is a directory with `discriminator/` (ElectraForPreTraining) and `generator/`
(ElectraForMaskedLM) subfolders, each loadable offline with `from_pretrained`; an `objective:
mlm` run has only `generator/`. Weights go through `safetensors.numpy`: no torch needed.
Every path goes through `tf.io.gfile` (`electra_tf.interop.files`), so directories on gs://
work like local ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from electra_tf.config import ConfigError, ModelConfig
from electra_tf.interop import files
from electra_tf.models.assign import CheckpointMismatchError, LoadSummary, assign_named
from electra_tf.models.names import (
    DISCRIMINATOR,
    GENERATOR,
    HF_ARCHITECTURES,
    generator_scope,
    hf_to_tf1,
    network_variables,
    tf1_to_hf,
)

logger = logging.getLogger("electra_tf.interop")

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
# Weights of other frameworks: not readable here, but they mark an HF model directory.
OTHER_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
                 "flax_model.msgpack")
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}


def safetensors_numpy():
    """`safetensors.numpy`, or an ImportError saying what to install."""
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("HuggingFace export/import needs the `safetensors` package "
                          "(pip install safetensors)") from None
    return safetensors.numpy


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------


def hf_config(network, model_config: ModelConfig, role: str, pad_token_id: int) -> dict:
    """The config.json of an HF ELECTRA model directory holding `network` as `role`."""
    embeddings, encoder = network.embeddings, network.encoder
    first = encoder.layers[0]
    return {
        "architectures": [HF_ARCHITECTURES[role]],
        "model_type": "electra",
        "vocab_size": embeddings.vocab_size,
        "embedding_size": embeddings.embedding_size,
        "hidden_size": encoder.hidden_size,
        "num_hidden_layers": len(encoder.layers),
        "num_attention_heads": first.num_heads,
        "intermediate_size": first.intermediate.units,
        "hidden_act": "gelu",
        "hidden_dropout_prob": model_config.dropout,
        "attention_probs_dropout_prob": model_config.attention_dropout,
        "max_position_embeddings": embeddings.max_positions,
        "type_vocab_size": embeddings.type_vocab_size,
        "layer_norm_eps": model_config.layer_norm_epsilon,
        "initializer_range": model_config.initializer_range,
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": True,
        "dtype": "float32",
    }


def read_vocab(vocab_path: str, vocab_size: int) -> list[str]:
    """The vocabulary's tokens; a ConfigError if it does not fit the model or lacks a special
    token HF's tokenizer needs."""
    tokens = files.read_text(vocab_path).splitlines()
    if len(tokens) != vocab_size:
        raise ConfigError(f"{vocab_path} has {len(tokens)} tokens but the model's vocabulary "
                          f"has {vocab_size}; export the vocab the model was trained with")
    missing = [t for t in SPECIAL_TOKENS.values() if t not in tokens]
    if missing:
        raise ConfigError(f"{vocab_path} lacks the special tokens {missing}; HF's ELECTRA "
                          "tokenizer needs [PAD], [UNK], [CLS], [SEP] and [MASK]")
    return tokens


def write_json(path: str, data: dict) -> None:
    """`data` as sorted, indented JSON at `path` (local or remote)."""
    files.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def export_huggingface(networks, model_config: ModelConfig, out_dir: str, vocab_path: str | None,
                       *, lower_case: bool = True, strip_accents: bool | None = None
                       ) -> dict[str, str]:
    """Writes `out_dir/discriminator` and `out_dir/generator` as HF ELECTRA model directories
    (config.json, float32 model.safetensors, vocab.txt and tokenizer configs).

    `strip_accents` None follows `lower_case`, as BERT's uncased tokenizer does. With
    `vocab_path` None (e.g. a SentencePiece run) no tokenizer files are written.
    Returns {role: directory}.
    """
    save = safetensors_numpy().save
    tokens = None
    if vocab_path is not None:
        tokens = read_vocab(vocab_path, networks.embeddings.vocab_size)
    else:
        logger.warning("No WordPiece vocab given: the HF export has no tokenizer files")
    pad_token_id = tokens.index(SPECIAL_TOKENS["pad_token"]) if tokens else 0
    nets = {DISCRIMINATOR: networks.discriminator, GENERATOR: networks.generator}
    written = {}
    for role, variables in network_variables(networks).items():
        directory = files.join(out_dir, role)
        files.make_dirs(directory)
        tensors = {}
        for tf1_name, variable in variables.items():
            hf_name, transpose = tf1_to_hf(tf1_name)
            array = np.asarray(variable.numpy(), dtype=np.float32)
            tensors[hf_name] = np.ascontiguousarray(array.T if transpose else array)
        files.write_bytes(files.join(directory, WEIGHTS), save(tensors, metadata={"format": "pt"}))
        write_json(files.join(directory, "config.json"),
                    hf_config(nets[role], model_config, role, pad_token_id))
        if tokens is not None:
            assert vocab_path is not None  # tokens were read from it
            files.copy(vocab_path, files.join(directory, "vocab.txt"))
            write_json(files.join(directory, "tokenizer_config.json"), {
                "tokenizer_class": "ElectraTokenizer", "do_lower_case": lower_case,
                "strip_accents": strip_accents, "tokenize_chinese_chars": True,
                "model_max_length": networks.embeddings.max_positions, **SPECIAL_TOKENS})
            write_json(files.join(directory, "special_tokens_map.json"), dict(SPECIAL_TOKENS))
        written[role] = directory
        logger.info("Wrote HF %s (%d tensors) to %s", HF_ARCHITECTURES[role], len(tensors),
                    directory)
    return written


# ----------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------


def _is_model_dir(path: str) -> bool:
    """config.json and weights in any format (only safetensors can be read: `_read_weights`
    says so for the others)."""
    return files.is_file(files.join(path, "config.json")) and any(
        files.is_file(files.join(path, name)) for name in (WEIGHTS, WEIGHTS_INDEX, *OTHER_WEIGHTS))


def is_huggingface_dir(path: str) -> bool:
    """True for one HF ELECTRA model directory or an export with role subfolders."""
    return files.is_dir(path) and (_is_model_dir(path) or any(
        _is_model_dir(files.join(path, r)) for r in (DISCRIMINATOR, GENERATOR)))


def _read_config(directory: str) -> dict:
    path = files.join(directory, "config.json")
    try:
        config = json.loads(files.read_text(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointMismatchError(f"{path} is not a valid JSON config: {e}") from None
    if config.get("model_type", "electra") != "electra":
        raise CheckpointMismatchError(
            f"{directory} holds a {config.get('model_type')!r} model, not ELECTRA "
            f"(model_type in {path}); only ELECTRA models can be loaded")
    return config


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The arrays in `path`; a damaged or truncated file is a CheckpointMismatchError."""
    import safetensors

    try:
        return safetensors_numpy().load(files.read_bytes(path))
    except (safetensors.SafetensorError, ValueError) as e:
        raise CheckpointMismatchError(
            f"{path} is not a readable safetensors file ({' '.join(str(e).split())}): it is "
            "damaged or truncated; download or export the model again, or point "
            "init_checkpoint at an intact copy") from None


def _read_weights(directory: str) -> dict[str, np.ndarray]:
    if files.is_file(files.join(directory, WEIGHTS)):
        return read_safetensors(files.join(directory, WEIGHTS))
    if files.is_file(files.join(directory, WEIGHTS_INDEX)):
        index = json.loads(files.read_text(files.join(directory, WEIGHTS_INDEX)))
        out = {}
        for shard in sorted(set(index["weight_map"].values())):
            out.update(read_safetensors(files.join(directory, shard)))
        return out
    found = ", ".join(name for name in OTHER_WEIGHTS
                      if files.is_file(files.join(directory, name)))
    raise FileNotFoundError(f"{directory} has no {WEIGHTS} (it has {found or 'no weights'}); "
                            "only safetensors weights can be read (re-save the model with "
                            "save_pretrained(..., safe_serialization=True))")


def _role(directory: str, config: dict, weights: dict) -> str:
    for architecture in config.get("architectures") or ():
        if "MaskedLM" in architecture:
            return GENERATOR
        if "PreTraining" in architecture:
            return DISCRIMINATOR
    return GENERATOR if any(k.startswith("generator_") for k in weights) else DISCRIMINATOR


def _model_dirs(hf_dir: str) -> list[str]:
    if _is_model_dir(hf_dir):
        return [hf_dir]
    dirs = [files.join(hf_dir, r) for r in (DISCRIMINATOR, GENERATOR)
            if _is_model_dir(files.join(hf_dir, r))]
    if not dirs:
        raise FileNotFoundError(f"{hf_dir} is not a HF model directory (config.json and "
                                f"{WEIGHTS}) and has no discriminator/ or generator/ subfolder")
    return dirs


def check_huggingface_dir(hf_dir: str) -> int:
    """Reads every model directory's config.json and weights in `hf_dir` (errors as
    `load_huggingface` gives them); returns the number of tensors read."""
    count = 0
    for directory in _model_dirs(hf_dir):
        _read_config(directory)
        count += len(_read_weights(directory))
    return count


def _check_config(directory: str, config: dict, network) -> None:
    """Warns about settings that change outputs without changing any shape."""
    if network is None:
        return
    heads = network.encoder.layers[0].num_heads
    if config.get("num_attention_heads", heads) != heads:
        logger.warning("%s has %s attention heads, the networks %d: outputs will differ",
                       directory, config["num_attention_heads"], heads)
    if config.get("hidden_act", "gelu") != "gelu":
        logger.warning("%s uses hidden_act %r; the networks use exact GELU: outputs will differ",
                       directory, config["hidden_act"])


def load_huggingface(networks, hf_dir: str, *, allow_partial: bool = False) -> LoadSummary:
    """Assigns `networks` from an HF ELECTRA directory: our export (discriminator/ and
    generator/ subfolders) or a single ElectraForPreTraining / ElectraForMaskedLM directory.

    The shared embeddings are taken from the discriminator when both are present. Missing or
    misshaped variables raise `CheckpointMismatchError` unless `allow_partial` (then logged).
    """
    dirs = _model_dirs(hf_dir)
    scope = generator_scope(networks)
    arrays: dict[str, np.ndarray] = {}
    hf_of: dict[str, str] = {}
    parts = []
    for directory in dirs:
        config = _read_config(directory)
        weights = _read_weights(directory)
        parts.append((directory, config, weights, _role(directory, config, weights)))
    if networks.discriminator is None and any(r == GENERATOR for *_, r in parts):
        # objective mlm: both HF models would map to the electra/ scope; read the MLM one.
        parts = [p for p in parts if p[3] == GENERATOR]
    for directory, config, weights, role in parts:
        _check_config(directory, config, networks.discriminator if role == DISCRIMINATOR
                      else networks.generator)
        word = weights.get("electra.embeddings.word_embeddings.weight")
        tied = weights.get("generator_lm_head.weight")
        if tied is not None and word is not None and not np.array_equal(tied, word):
            logger.warning("%s: generator_lm_head.weight differs from the word embeddings; our "
                           "generator ties them and uses the word embeddings", directory)
        for hf_name, value in weights.items():
            mapped = hf_to_tf1(hf_name, scope if role == GENERATOR else "electra")
            if mapped is None:
                continue
            tf1_name, transpose = mapped
            value = value.T if transpose else value
            if tf1_name in arrays:  # shared embeddings, already read from the discriminator
                if arrays[tf1_name].shape == value.shape and not np.allclose(
                        arrays[tf1_name], value, rtol=0.0, atol=1e-6):
                    logger.warning("%s: %s differs from the discriminator's; the shared "
                                   "embeddings are taken from the discriminator",
                                   directory, hf_name)
                continue
            arrays[tf1_name] = value
            hf_of[tf1_name] = f"{files.basename(directory)}/{hf_name}"

    def display(tf1_name: str) -> str:
        hf_name = hf_of.get(tf1_name) or tf1_to_hf(tf1_name)[0]
        return f"{hf_name} (TF1 {tf1_name}; Keras layout)"

    return assign_named(networks, {n: a.shape for n, a in arrays.items()}, arrays.__getitem__,
                        source=f"HF directory {hf_dir}", allow_partial=allow_partial,
                        display=display)


def read_huggingface_model_config(hf_dir: str, base: ModelConfig | None = None) -> ModelConfig:
    """A ModelConfig matching the HF directory (`base` supplies anything not in config.json).

    For a pair the generator fraction is generator hidden / discriminator hidden. A single
    ElectraForMaskedLM directory is read as an `objective: mlm` model (full-size generator).
    """
    base = base or ModelConfig()
    parts = {}
    for directory in _model_dirs(hf_dir):
        hf_config = _read_config(directory)
        architectures = "".join(hf_config.get("architectures") or ())
        is_generator = ("MaskedLM" in architectures if architectures
                        else files.basename(directory) == GENERATOR)
        parts[GENERATOR if is_generator else DISCRIMINATOR] = hf_config
    main = parts.get(DISCRIMINATOR) or parts[GENERATOR]
    hidden = main["hidden_size"]
    changes = dict(
        vocab_size=main["vocab_size"], embedding_size=main.get("embedding_size", hidden),
        hidden_size=hidden, num_layers=main["num_hidden_layers"],
        num_heads=main["num_attention_heads"], intermediate_size=main["intermediate_size"],
        max_position_embeddings=main["max_position_embeddings"],
        type_vocab_size=main["type_vocab_size"],
        dropout=main.get("hidden_dropout_prob", base.dropout),
        attention_dropout=main.get("attention_probs_dropout_prob", base.attention_dropout),
        initializer_range=main.get("initializer_range", base.initializer_range),
        layer_norm_epsilon=main.get("layer_norm_eps", base.layer_norm_epsilon))
    if main.get("hidden_act", "gelu") != "gelu":
        logger.warning("%s uses hidden_act %r; this project uses exact GELU", hf_dir,
                       main["hidden_act"])
    generator = parts.get(GENERATOR) if DISCRIMINATOR in parts else None
    if generator is not None:
        changes["generator_fraction"] = generator["hidden_size"] / hidden
    config = dataclasses.replace(base, **changes)
    config.validate()
    if generator is not None:
        derived = (config.generator_hidden_size, config.generator_num_heads,
                   config.generator_intermediate_size, config.num_layers)
        found = (generator["hidden_size"], generator["num_attention_heads"],
                 generator["intermediate_size"], generator["num_hidden_layers"])
        if derived != found:
            raise CheckpointMismatchError(
                f"{hf_dir}: generator (hidden, heads, FFN, layers) = {found} cannot be built "
                f"here, where they derive from the discriminator as {derived}")
    return config
