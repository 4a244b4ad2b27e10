"""Checked assignment of named arrays to our variables, shared by the TF1 and HF loaders.

Every variable of the networks must be found with the right shape; otherwise nothing is loaded
and a `CheckpointMismatchError` lists every offending name, unless partial loading is allowed,
in which case each skipped variable is logged as a warning and keeps its current value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from electra_tf.errors import UserError
from electra_tf.models.names import tf1_variables

logger = logging.getLogger(__name__)

DEFAULT_HINT = ("Check that the model config matches the checkpoint "
                "(model_config_from_tf1_checkpoint / read_huggingface_model_config read it from "
                "the files)")
PARTIAL_HINT = ("pass allow_partial=True (train.allow_partial_init: true) to load the matching "
                "variables and keep the others at their initial values")


class CheckpointMismatchError(UserError, ValueError):
    """The checkpoint lacks some of our variables, or has them with other shapes."""


@dataclass
class LoadSummary:
    """What a load did, by TF1 name: assigned, skipped (allow_partial) and unused in the file."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


def assign_named(networks, shapes: Mapping[str, tuple[int, ...]], read: Callable[[str], np.ndarray],
                 *, source: str, allow_partial: bool = False,
                 display: Callable[[str], str] = str, hint: str | None = None,
                 unused_is_mismatch: bool = False) -> LoadSummary:
    """Assigns `read(name)` to each variable of `networks` (by TF1 name).

    `shapes` maps the TF1 names available in the source to their shapes (in Keras layout);
    `display` renders a TF1 name for messages (e.g. adds the HF name); `hint` replaces the
    default advice on how to get a matching model config. With `unused_is_mismatch` (a source
    that holds exactly one model's weights, such as a run's checkpoint) names the networks lack
    are mismatches too: the source's model was larger.
    """
    variables = tf1_variables(networks)
    problems = []
    for name, variable in variables.items():
        want = _shape(variable.shape)
        if name not in shapes:
            problems.append((name, f"missing (expected shape {want})"))
        elif _shape(shapes[name]) != want:
            problems.append((name, f"shape {_shape(shapes[name])} in the checkpoint, "
                                   f"{want} in the model"))
    summary = LoadSummary(source=source, unused=sorted(set(shapes) - set(variables)))
    extra = summary.unused if unused_is_mismatch else []
    if (problems or extra) and not allow_partial:
        lines = "\n".join([f"  {display(name)}: {why}" for name, why in problems] +
                          [f"  {display(name)}: shape {_shape(shapes[name])} in the checkpoint, "
                           "not in the model" for name in extra])
        counts = []
        if problems:
            counts.append(f"{len(problems)} of {len(variables)} variables cannot be loaded")
        if extra:
            counts.append(f"{len(extra)} variables of the checkpoint are not in the model")
        raise CheckpointMismatchError(
            f"{source} does not match the networks: {'; '.join(counts)}:\n{lines}\nNothing "
            f"was loaded. {hint or DEFAULT_HINT}, or {PARTIAL_HINT}.")
    for name in extra:
        logger.warning("Not used from %s (not in the model): %s", source, display(name))
    bad = {name for name, _ in problems}
    for name, why in problems:
        logger.warning("Not loaded from %s, kept at its initial value: %s: %s",
                       source, display(name), why)
        summary.skipped.append(name)
    for name, variable in variables.items():
        if name in bad:
            continue
        value = np.asarray(read(name))
        variable.assign(value.astype(variable.dtype, copy=False))
        summary.loaded.append(name)
    if summary.unused:
        logger.info("%d variables of %s are not used by the networks (e.g. %s)",
                    len(summary.unused), source, ", ".join(summary.unused[:3]))
    logger.info("Loaded %d of %d variables from %s", len(summary.loaded), len(variables), source)
    return summary
