"""The exporter: restores a run directory's networks and tokenizer and writes them out.

`load_run` checks the run directory and restores a checkpoint into float32 networks (the
run's vocabulary is found by `training.run_tokenizer.load_run_tokenizer`), and `export_run` writes
a SavedModel (`electra_tf.export.saved_model`) or HuggingFace directories
(`electra_tf.interop.huggingface`).
"""

from __future__ import annotations

import logging
import os
import secrets

import tensorflow as tf

from electra_tf.config import ConfigError, RunConfig, read_saved_config
from electra_tf.errors import short_message
from electra_tf.training.run_dir import check_saved_run
from electra_tf.training.run_tokenizer import load_run_tokenizer

log = logging.getLogger(__name__)

FORMATS = ("saved_model", "huggingface")


def load_run(run_dir: str, step: int | None = None):
    """Returns (config, networks in float32 with the checkpoint's weights, checkpoint path)."""
    from electra_tf.models import build_networks
    from electra_tf.training.checkpoints import restore_networks

    config_path = check_saved_run(run_dir, step)
    config = read_saved_config(config_path)
    networks = build_networks(config.model, config.objective.kind, "float32")
    try:
        checkpoint = restore_networks(run_dir, networks, step)
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        from electra_tf.interop import CheckpointMismatchError

        detail = short_message(e, 240)
        raise CheckpointMismatchError(
            f"the checkpoint in {run_dir} does not match the networks its {config_path} "
            f"describes ({detail}); was config.yaml edited, or the run written by another "
            "version of electra-tf?") from None
    log.info("restored %s", checkpoint)
    return config, networks, checkpoint


# What an earlier export of each format leaves in its directory, and every top-level entry an
# export writes (anything else in --out is the user's and is never deleted).
_EXPORT_MARKERS = {"saved_model": ("saved_model.pb",),
                   "huggingface": ("discriminator/config.json", "generator/config.json")}
_EXPORT_ENTRIES = {"saved_model": {"saved_model.pb", "fingerprint.pb", "variables", "assets",
                                   "assets.extra"},
                   "huggingface": {"discriminator", "generator"}}
_TEMPORARY, _REPLACED = ".tmp-", ".old-"


def _check_out(out: str, fmt: str) -> bool:
    """True if `out` holds an earlier export of `fmt` to replace. A non-empty `out` that holds
    no earlier export, or holds other files besides it, is a ConfigError: an export never
    mixes with, nor deletes, files it did not write. Inside the export's own entries
    (`variables/`, `discriminator/`, ...) everything belongs to the earlier export."""
    if not tf.io.gfile.isdir(out) or not tf.io.gfile.listdir(out):
        return False
    if not any(tf.io.gfile.exists(os.path.join(out, marker)) for marker in _EXPORT_MARKERS[fmt]):
        raise ConfigError(f"--out {out} is not empty and holds no earlier {fmt} export; choose "
                          "a new or empty directory")
    others = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(out)
                    if name.rstrip("/") not in _EXPORT_ENTRIES[fmt])
    if others:
        raise ConfigError(f"--out {out} holds an earlier {fmt} export and files it did not "
                          f"write ({', '.join(others)}); move them elsewhere or choose a new "
                          "directory (re-exporting replaces the whole directory)")
    return True


def _remove_leftovers(out: str) -> None:
    """Deletes the temporaries of an earlier export to `out` that was killed mid-way."""
    for suffix in (_TEMPORARY, _REPLACED):
        for path in tf.io.gfile.glob(f"{out}{suffix}*"):
            log.info("removing %s, left by an interrupted export", path)
            tf.io.gfile.rmtree(path)


def _verify(path: str, fmt: str) -> None:
    """Reads the new export back: the SavedModel loads and serves a text; the HF
    directories' config.json and weights are readable."""
    if fmt == "huggingface":
        from electra_tf.interop.huggingface import check_huggingface_dir

        check_huggingface_dir(path)
        return
    loaded = tf.saved_model.load(path)
    from electra_tf.export.saved_model import SIGNATURE_TEXT

    loaded.signatures[SIGNATURE_TEXT](text=tf.constant(["a check of the export"]))


def _swap_in(new: str, out: str, replace: bool) -> None:
    """Moves the verified export `new` to `out`; an earlier export there is moved aside first
    and deleted only once the new one is in place (restored if the move fails)."""
    if not replace:
        if tf.io.gfile.isdir(out):   # an empty directory
            tf.io.gfile.rmtree(out)
        tf.io.gfile.rename(new, out)
        return
    old = f"{out}{_REPLACED}{secrets.token_hex(4)}"
    tf.io.gfile.rename(out, old)
    try:
        tf.io.gfile.rename(new, out)
    except BaseException:
        tf.io.gfile.rename(old, out)
        raise
    tf.io.gfile.rmtree(old)


def _write(networks, tokenizer, config: RunConfig, out: str, fmt: str, *, run_dir: str,
           checkpoint: str, top_k: int) -> None:
    data = config.data
    if fmt == "huggingface":
        from electra_tf.interop import export_huggingface

        vocab_path = data.vocab_file if data.tokenizer == "wordpiece" else None
        export_huggingface(networks, config.model, out, vocab_path, lower_case=data.lower_case,
                           strip_accents=data.strip_accents)
    else:
        from electra_tf.export.saved_model import export_saved_model

        export_saved_model(networks, tokenizer, out, seq_length=data.seq_length,
                           max_predictions=config.max_predictions, top_k=top_k,
                           lower_case=data.lower_case,
                           metadata={"run_dir": run_dir, "checkpoint": checkpoint,
                                     "objective": config.objective.kind})


def export_run(run_dir: str, out: str, fmt: str = "saved_model", step: int | None = None,
               *, top_k: int = 5) -> str:
    """Exports the run at `run_dir` (its latest checkpoint, or the one at `step`) to `out`.

    `fmt` "saved_model": the self-contained SavedModel of `electra_tf.export.saved_model`.
    `fmt` "huggingface": `out/discriminator` and `out/generator` for `transformers`.
    Returns `out`.

    The export is written to a sibling `OUT.tmp-<random>`, read back, and only then renamed
    to `out`; an earlier export in `out` is moved aside (`OUT.old-<random>`) and deleted once
    the new one is in place. A failure at any point leaves the earlier export as it was, and
    the temporaries of a killed export are removed by the next export to `out`. Locally the
    renames are atomic; on gs:// a rename is a copy and a delete, so the swap there is not
    atomic (a crash mid-swap can leave `out` missing, with the export in `OUT.tmp-*`).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    out = out.rstrip("/") or out
    if tf.io.gfile.exists(out) and not tf.io.gfile.isdir(out):
        raise ConfigError(f"{out} is a file; give a directory to export to with --out")
    config, networks, checkpoint = load_run(run_dir, step)
    config, tokenizer = load_run_tokenizer(config, run_dir)
    replace = _check_out(out, fmt)  # only once everything the export needs has loaded
    _remove_leftovers(out)
    parent = os.path.dirname(out)
    if parent and not tf.io.gfile.isdir(parent):
        tf.io.gfile.makedirs(parent)
    new = f"{out}{_TEMPORARY}{secrets.token_hex(4)}"
    try:
        _write(networks, tokenizer, config, new, fmt, run_dir=run_dir, checkpoint=checkpoint,
               top_k=top_k)
        _verify(new, fmt)
        if replace:
            log.info("replacing the earlier %s export in %s", fmt, out)
        _swap_in(new, out, replace)
    finally:
        if tf.io.gfile.exists(new):
            tf.io.gfile.rmtree(new)
    log.info("exported %s (%s) to %s", checkpoint, fmt, out)
    return out


__all__ = ["FORMATS", "export_run", "load_run"]
