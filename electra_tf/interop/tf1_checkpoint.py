"""Google's TF1 ELECTRA checkpoints: load them into our networks, read their sizes, write them.

Only weights are read. Optimizer slots (`adam_m`, `adam_v`), `global_step` and any other
variable the networks do not use are ignored: continuing pretraining from a released checkpoint
starts with fresh optimizer state.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import re

import numpy as np
import tensorflow as tf

from electra_tf.config import ModelConfig
from electra_tf.models.assign import CheckpointMismatchError, LoadSummary, assign_named
from electra_tf.models.names import RUN_WEIGHTS_PREFIX, tf1_variables

logger = logging.getLogger("electra_tf.interop")

COLLAPSE_WARNING = ("the generator is as large as the discriminator (generator_fraction 1.0), "
                    "a known cause of discriminator collapse when training from scratch")


def _reader(path: str):
    try:
        reader = tf.train.load_checkpoint(path)
    except (ValueError, tf.errors.OpError) as e:
        raise FileNotFoundError(
            f"no TF checkpoint at {path!r} (give the checkpoint prefix, e.g. "
            f".../electra_small/model.ckpt-1000000, or a directory with a 'checkpoint' file): "
            f"{e}") from None
    if any(name.startswith(RUN_WEIGHTS_PREFIX) for name in reader.get_variable_to_shape_map()):
        # An object-based checkpoint written by `electra-tf pretrain`, not a TF1 one.
        raise CheckpointMismatchError(
            f"{path} is a checkpoint of an electra-tf run, not a TF1 checkpoint: pass the run "
            "directory (the train.run_dir that holds config.yaml and checkpoints/) instead")
    return reader


def load_tf1_checkpoint(networks, path: str, *, allow_partial: bool = False) -> LoadSummary:
    """Assigns every variable of `networks` from the TF1 checkpoint at `path`.

    A variable that is missing or has another shape raises `CheckpointMismatchError` listing all
    of them (and nothing is loaded), unless `allow_partial`, which loads the rest and logs a
    warning for each skipped variable.
    """
    reader = _reader(path)
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    return assign_named(networks, shapes, reader.get_tensor, source=f"TF1 checkpoint {path}",
                        allow_partial=allow_partial)


def write_tf1_checkpoint(networks, path: str) -> str:
    """Writes the weights under their TF1 names at prefix `path` (`path.index`, `path.data-*`)
    and points the directory's `checkpoint` file at it. Returns `path`."""
    variables = sorted(tf1_variables(networks).items())
    directory, base = posixpath.split(path)  # also right for gs:// paths
    if directory:
        tf.io.gfile.makedirs(directory)
    tf.raw_ops.SaveV2(
        prefix=path, tensor_names=[name for name, _ in variables],
        shape_and_slices=[""] * len(variables),
        tensors=[tf.convert_to_tensor(np.asarray(v.numpy())) for _, v in variables])
    state = f'model_checkpoint_path: "{base}"\nall_model_checkpoint_paths: "{base}"\n'
    with tf.io.gfile.GFile(posixpath.join(directory, "checkpoint"), "w") as f:
        f.write(state)
    return path


def _layer_count(shapes: dict, scope: str) -> int:
    pattern = re.compile(rf"{scope}/encoder/layer_(\d+)/")
    found = {int(m.group(1)) for name in shapes if (m := pattern.match(name))}
    return max(found) + 1 if found else 0


def model_config_from_tf1_checkpoint(path: str, base: ModelConfig) -> ModelConfig:
    """`base` with the sizes read from the checkpoint's variable shapes: vocabulary, embedding,
    hidden and FFN sizes, layers, positions, token types and the generator fraction.

    Head counts are not visible in shapes: the discriminator keeps `base.num_heads` (if it
    divides the hidden size) and the generator's follow from its hidden size as in config/schema.py.
    """
    shapes = {n: tuple(s) for n, s in _reader(path).get_variable_to_shape_map().items()}

    def shape(name):
        if name not in shapes:
            raise CheckpointMismatchError(f"TF1 checkpoint {path} has no variable {name}; it "
                                          "does not look like an ELECTRA checkpoint")
        return shapes[name]

    vocab, embedding = shape("electra/embeddings/word_embeddings")
    hidden = shape("electra/encoder/layer_0/attention/self/query/kernel")[0]
    changes = dict(
        vocab_size=vocab, embedding_size=embedding, hidden_size=hidden,
        num_layers=_layer_count(shapes, "electra"),
        intermediate_size=shape("electra/encoder/layer_0/intermediate/dense/kernel")[1],
        max_position_embeddings=shape("electra/embeddings/position_embeddings")[0],
        type_vocab_size=shape("electra/embeddings/token_type_embeddings")[0])
    if hidden % base.num_heads:
        heads = max(1, hidden // 64)
        logger.warning("num_heads %d of the base config does not divide the checkpoint's hidden "
                       "size %d; using %d heads (head counts cannot be read from a checkpoint)",
                       base.num_heads, hidden, heads)
        changes["num_heads"] = heads

    generator_query = "generator/encoder/layer_0/attention/self/query/kernel"
    if generator_query in shapes:
        generator_hidden = shapes[generator_query][0]
        generator_layers = _layer_count(shapes, "generator")
        if generator_layers != changes["num_layers"]:
            raise CheckpointMismatchError(
                f"TF1 checkpoint {path}: the generator has {generator_layers} layers and the "
                f"discriminator {changes['num_layers']}; this project's generator always has "
                "the discriminator's depth")
        changes["generator_fraction"] = generator_hidden / hidden
    elif "generator_predictions/output_bias" in shapes:
        logger.info("TF1 checkpoint %s has no generator/ encoder: an MLM-only (BERT baseline) "
                    "checkpoint, whose generator is the electra/ encoder; build it with "
                    "objective mlm", path)
    else:
        logger.warning("TF1 checkpoint %s has no generator; only the discriminator can be "
                       "loaded (allow_partial)", path)
    config = dataclasses.replace(base, **changes)
    config.validate()
    if generator_query in shapes:
        ffn = shapes["generator/encoder/layer_0/intermediate/dense/kernel"][1]
        if ffn != config.generator_intermediate_size or \
                config.generator_hidden_size != shapes[generator_query][0]:
            raise CheckpointMismatchError(
                f"TF1 checkpoint {path}: generator hidden {generator_hidden} / FFN {ffn} cannot "
                "be expressed as hidden_size * generator_fraction with FFN = 4 * hidden")
    if config.generator_fraction == 1.0 and generator_query in shapes:
        logger.warning("TF1 checkpoint %s: %s", path, COLLAPSE_WARNING)
    return config
