"""Export is atomic: written to a temporary sibling, read back, then swapped in. A failure at
any point keeps the earlier export; files export did not write are never deleted."""

import json
import os

import pytest
import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.export import export_run
from electra_tf.interop import CheckpointMismatchError

WEIGHTS = os.path.join("discriminator", "model.safetensors")


@pytest.fixture(scope="module")
def run_dir(random_run):
    """The shared random run (conftest); these tests only read it."""
    return random_run[0].train.run_dir


def read(path):
    with open(path, "rb") as f:
        return f.read()


def siblings(out):
    parent, name = os.path.split(out)
    return sorted(n for n in os.listdir(parent) if n != name)


@pytest.fixture
def earlier(run_dir, tmp_path):
    """An HF export of step 3 in tmp_path/out; returns (out, its weights' bytes)."""
    out = str(tmp_path / "out")
    export_run(run_dir, out, fmt="huggingface", step=3)
    return out, read(os.path.join(out, WEIGHTS))


def _fail_while_writing(real):
    def export_huggingface(networks, model_config, out_dir, *args, **kwargs):
        real(networks, model_config, out_dir, *args, **kwargs)
        with open(os.path.join(out_dir, WEIGHTS), "r+b") as f:   # half written, then full
            f.truncate(100)
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
    return export_huggingface, tf.errors.ResourceExhaustedError


def _write_garbage(real):
    def export_huggingface(networks, model_config, out_dir, *args, **kwargs):
        written = real(networks, model_config, out_dir, *args, **kwargs)
        with open(os.path.join(out_dir, WEIGHTS), "wb") as f:   # unreadable: caught on reading
            f.write(b"\0" * 64)
        return written
    return export_huggingface, CheckpointMismatchError


@pytest.mark.parametrize("inject", [_fail_while_writing, _write_garbage],
                         ids=["write-fails", "verify-fails"])
def test_failed_reexport_keeps_the_earlier_export(run_dir, earlier, monkeypatch, inject):
    import electra_tf.interop

    out, before = earlier
    replacement, error = inject(electra_tf.interop.export_huggingface)
    monkeypatch.setattr(electra_tf.interop, "export_huggingface", replacement)
    with pytest.raises(error):
        export_run(run_dir, out, fmt="huggingface", step=7)
    assert read(os.path.join(out, WEIGHTS)) == before
    assert sorted(os.listdir(out)) == ["discriminator", "generator"]
    assert siblings(out) == [], "no temporary directory is left behind"


def test_failed_swap_restores_the_earlier_export(run_dir, earlier, monkeypatch):
    out, before = earlier
    real_rename, calls = tf.io.gfile.rename, []

    def rename(source, target, overwrite=False):
        calls.append((source, target))
        if len(calls) == 2:   # the new export into place, after the old one moved aside
            raise tf.errors.ResourceExhaustedError(None, None, "injected rename failure")
        real_rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", rename)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        export_run(run_dir, out, fmt="huggingface", step=7)
    assert calls[0][0] == out and ".old-" in calls[0][1] and ".tmp-" in calls[1][0]
    assert read(os.path.join(out, WEIGHTS)) == before
    assert siblings(out) == []


def test_reexport_replaces_cleanly_and_removes_leftovers(run_dir, earlier):
    out, before = earlier
    for leftover in (out + ".tmp-killed", out + ".old-killed"):   # from a killed export
        os.makedirs(os.path.join(leftover, "discriminator"))
    assert export_run(run_dir, out, fmt="huggingface", step=7) == out
    after = read(os.path.join(out, WEIGHTS))
    assert after != before
    assert sorted(os.listdir(out)) == ["discriminator", "generator"]
    assert siblings(out) == []


def test_files_export_did_not_write_are_refused_and_kept(run_dir, earlier, tmp_path):
    out, before = earlier
    notes = os.path.join(out, "notes.txt")
    with open(notes, "w") as f:
        f.write("mine")
    with pytest.raises(ConfigError, match=r"files it did not write \(notes.txt\); move them"):
        export_run(run_dir, out, fmt="huggingface", step=7)
    assert read(notes) == b"mine" and read(os.path.join(out, WEIGHTS)) == before
    assert siblings(out) == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match="is not empty and holds no earlier huggingface"):
        export_run(run_dir, str(other), fmt="huggingface")
    assert os.listdir(other) == ["data.csv"] and siblings(str(other)) == ["out"]


def test_saved_model_reexport_replaces_the_earlier_one_in_place(run_dir, tmp_path):
    out = str(tmp_path / "saved_model")
    assert export_run(run_dir, out) == out   # the latest step, 7
    with open(os.path.join(out, "README.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(ConfigError, match=r"files it did not write \(README.txt\)"):
        export_run(run_dir, out, step=3)
    os.remove(os.path.join(out, "README.txt"))
    assert export_run(run_dir, out, step=3) == out
    assert sorted(os.listdir(tmp_path)) == ["saved_model"], "no temporaries left"
    with open(os.path.join(out, "assets.extra", "electra_tf.json")) as f:
        assert json.load(f)["checkpoint"].endswith("ckpt-3")
    tf.saved_model.load(out)
