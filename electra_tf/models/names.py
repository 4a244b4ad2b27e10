"""The one place that names our variables: TF1 names of Google's checkpoints, and HF names.

Every variable is reached by walking the network objects explicitly (never through Keras'
auto-generated variable paths, which collide between the two encoders). The canonical name of a
variable is its TF1 name in Google's released checkpoints:

    electra/embeddings/{word,position,token_type}_embeddings     shared by both networks
    electra/embeddings/LayerNorm/{gamma,beta}                     shared by both networks
    electra/embeddings_project/{kernel,bias}                      discriminator, if E != H
    electra/encoder/layer_{i}/attention/self/{query,key,value}/{kernel,bias}
    electra/encoder/layer_{i}/attention/output/{dense,LayerNorm}/...
    electra/encoder/layer_{i}/{intermediate,output}/dense/...,  .../output/LayerNorm/...
    discriminator_predictions/dense/*, discriminator_predictions/dense_1/*
    generator/embeddings_project/*, generator/encoder/layer_{i}/...
    generator_predictions/{dense,LayerNorm}/*, generator_predictions/output_bias

For `objective: mlm` (no discriminator, full-size generator) the reference builds the generator's
encoder under the `electra` scope, so there the generator's encoder is `electra/...`.

HuggingFace names follow from TF1 names by a fixed translation (`tf1_to_hf`, `hf_to_tf1`); a
TF1 kernel [in, out] is a torch Linear weight [out, in] (transposed).
"""

from __future__ import annotations

import re

import keras

DISCRIMINATOR = "discriminator"
GENERATOR = "generator"
# How an electra-tf run's checkpoint keys the weights: "model/weights/" + the TF1 name (escaped
# by TensorFlow) + RUN_WEIGHTS_SUFFIX (see training/checkpoints.py).
RUN_WEIGHTS_PREFIX = "model/weights/"
RUN_WEIGHTS_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

# HF class of each network role.
HF_ARCHITECTURES = {DISCRIMINATOR: "ElectraForPreTraining", GENERATOR: "ElectraForMaskedLM"}

_EMBEDDING_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")

# Sub-layers of one TransformerLayer: attribute -> TF1 path inside `layer_{i}`.
_TRANSFORMER_DENSE = (
    ("query", "attention/self/query"),
    ("key", "attention/self/key"),
    ("value", "attention/self/value"),
    ("attention_output", "attention/output/dense"),
    ("intermediate", "intermediate/dense"),
    ("ffn_output", "output/dense"),
)
_TRANSFORMER_LAYER_NORM = (
    ("attention_layer_norm", "attention/output/LayerNorm"),
    ("output_layer_norm", "output/LayerNorm"),
)


# ----------------------------------------------------------------------------------------------
# Our variables under their TF1 names
# ----------------------------------------------------------------------------------------------


def _variable(owner, attribute: str) -> keras.Variable:
    value = getattr(owner, attribute)
    if not isinstance(value, keras.Variable):
        raise TypeError(
            f"{type(owner).__name__}.{attribute} is a {type(value).__name__}, not a variable "
            "(quantized or LoRA-enabled layers cannot be converted to checkpoint names)")
    return value


def _dense(prefix: str, layer) -> dict[str, keras.Variable]:
    return {f"{prefix}/kernel": _variable(layer, "kernel"),
            f"{prefix}/bias": _variable(layer, "bias")}


def _layer_norm(prefix: str, layer) -> dict[str, keras.Variable]:
    return {f"{prefix}/gamma": _variable(layer, "gamma"),
            f"{prefix}/beta": _variable(layer, "beta")}


def embeddings_variables(embeddings) -> dict[str, keras.Variable]:
    """The four shared embedding variables (three tables and the LayerNorm)."""
    out = {f"electra/embeddings/{t}": _variable(embeddings, t) for t in _EMBEDDING_TABLES}
    out.update(_layer_norm("electra/embeddings/LayerNorm", embeddings.layer_norm))
    return out


def encoder_variables(scope: str, encoder) -> dict[str, keras.Variable]:
    """`embeddings_project` (if any) and every transformer layer, under `scope`."""
    out: dict[str, keras.Variable] = {}
    if encoder.embeddings_project is not None:
        out.update(_dense(f"{scope}/embeddings_project", encoder.embeddings_project))
    for i, layer in enumerate(encoder.layers):
        prefix = f"{scope}/encoder/layer_{i}"
        for attribute, path in _TRANSFORMER_DENSE:
            out.update(_dense(f"{prefix}/{path}", getattr(layer, attribute)))
        for attribute, path in _TRANSFORMER_LAYER_NORM:
            out.update(_layer_norm(f"{prefix}/{path}", getattr(layer, attribute)))
    return out


def discriminator_variables(discriminator) -> dict[str, keras.Variable]:
    out = embeddings_variables(discriminator.embeddings)
    out.update(encoder_variables("electra", discriminator.encoder))
    out.update(_dense("discriminator_predictions/dense", discriminator.head_dense))
    out.update(_dense("discriminator_predictions/dense_1", discriminator.head_output))
    return out


def generator_variables(generator, scope: str = "generator") -> dict[str, keras.Variable]:
    out = embeddings_variables(generator.embeddings)
    out.update(encoder_variables(scope, generator.encoder))
    out.update(_dense("generator_predictions/dense", generator.head_dense))
    out.update(_layer_norm("generator_predictions/LayerNorm", generator.head_layer_norm))
    out["generator_predictions/output_bias"] = _variable(generator, "output_bias")
    return out


def generator_scope(networks) -> str:
    """TF1 scope of the generator's encoder: `generator`, or `electra` for `objective: mlm`."""
    return "generator" if networks.discriminator is not None else "electra"


def network_variables(networks) -> dict[str, dict[str, keras.Variable]]:
    """{role: {tf1_name: variable}} for each network present; the shared embeddings appear in
    both roles (they are the same objects)."""
    out = {}
    if networks.discriminator is not None:
        out[DISCRIMINATOR] = discriminator_variables(networks.discriminator)
    out[GENERATOR] = generator_variables(networks.generator, generator_scope(networks))
    return out


def tf1_variables(networks) -> dict[str, keras.Variable]:
    """Every variable of `networks` exactly once, under its TF1 checkpoint name."""
    out: dict[str, keras.Variable] = {}
    for variables in network_variables(networks).values():
        for name, variable in variables.items():
            if name in out and out[name] is not variable:
                raise ValueError(f"two different variables are named {name}: the generator and "
                                 "the discriminator must share one Embeddings object")
            out[name] = variable
    return out


# ----------------------------------------------------------------------------------------------
# TF1 <-> HuggingFace
# ----------------------------------------------------------------------------------------------

_LAYER = re.compile(r"layer_(\d+)")


def tf1_to_hf(tf1_name: str) -> tuple[str, bool]:
    """HF parameter name of a TF1 variable, and whether the array is transposed between them.

    The generator's encoder (`generator/...`) is `electra.*` inside ElectraForMaskedLM.
    """
    if tf1_name == "generator_predictions/output_bias":
        return "generator_lm_head.bias", False
    parts = tf1_name.split("/")
    leaf = parts.pop()
    if parts and parts[0] in ("electra", "generator"):
        parts[0] = "electra"
    module: list[str] = []
    for part in parts:
        match = _LAYER.fullmatch(part)
        if match:
            module += ["layer", match.group(1)]
        elif part == "dense_1" and parts[0] == "discriminator_predictions":
            module.append("dense_prediction")
        else:
            module.append(part)
    if leaf in _EMBEDDING_TABLES:
        return ".".join([*module, leaf, "weight"]), False
    hf_leaf, transpose = {"kernel": ("weight", True), "bias": ("bias", False),
                          "gamma": ("weight", False), "beta": ("bias", False)}[leaf]
    return ".".join([*module, hf_leaf]), transpose


def hf_to_tf1(hf_name: str, scope: str = "electra") -> tuple[str, bool] | None:
    """TF1 name of an HF parameter (and whether to transpose), or None for parameters that have
    no counterpart in our networks (e.g. the tied `generator_lm_head.weight`, classifier heads).

    `scope` is the TF1 scope of this model's encoder: `electra` for a discriminator (and for an
    `objective: mlm` generator), `generator` for the generator of an ELECTRA pair.
    """
    if hf_name == "generator_lm_head.bias":
        return "generator_predictions/output_bias", False
    parts = hf_name.split(".")
    leaf = parts.pop()
    if leaf not in ("weight", "bias") or len(parts) < 2:
        return None
    head, body = parts[0], parts[1:]
    if head == "electra":
        prefix = "electra" if body[0] == "embeddings" else scope
    elif head in ("discriminator_predictions", "generator_predictions"):
        prefix = head
    else:
        return None
    module, i = [prefix], 0
    while i < len(body):
        if body[i] == "layer" and i + 1 < len(body) and body[i + 1].isdigit():
            module.append(f"layer_{body[i + 1]}")
            i += 2
            continue
        if body[i] == "dense_prediction" and head == "discriminator_predictions":
            module.append("dense_1")
        else:
            module.append(body[i])
        i += 1
    if module[-1] in _EMBEDDING_TABLES:
        return ("/".join(module), False) if leaf == "weight" else None
    if module[-1] == "LayerNorm":
        return "/".join([*module, "gamma" if leaf == "weight" else "beta"]), False
    if leaf == "weight":
        return "/".join([*module, "kernel"]), True
    return "/".join([*module, "bias"]), False


def hf_names(networks) -> dict[str, dict[str, tuple[str, bool]]]:
    """{role: {hf_name: (tf1_name, transpose)}}: the parameters of each HF model we write."""
    return {role: {tf1_to_hf(name)[0]: (name, tf1_to_hf(name)[1]) for name in variables}
            for role, variables in network_variables(networks).items()}
