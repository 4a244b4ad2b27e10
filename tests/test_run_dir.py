"""The run directory's owner: one writer (local flock, object-store lease), leftovers of an
interrupted save removed (the best checkpoint's too), a failed save reported in one line with
earlier checkpoints intact, SIGTERM during set-up, and run_dir checks."""

import glob
import json
import os
import signal
import subprocess
import sys

import pytest
import tensorflow as tf
from test_task_seam import toy

from electra_tf.config import ConfigError
from electra_tf.errors import CheckpointError
from electra_tf.training import preemption
from electra_tf.training import run_lock as run_lock_module
from electra_tf.training.checkpoints import BestCheckpoint
from electra_tf.training.run_dir import check_run_dir, remove_partial_saves, saved_steps
from electra_tf.training.run_lock import RunLock
from electra_tf.training.trainer import Trainer


def test_a_local_lock_refuses_a_second_holder_and_frees_on_release(tmp_path):
    first = RunLock(str(tmp_path))
    first.acquire()
    with pytest.raises(ConfigError, match=f"pid {os.getpid()} on "):
        RunLock(str(tmp_path)).acquire()
    first.release()
    with RunLock(str(tmp_path)):
        pass


def test_a_lock_of_a_killed_process_does_not_block(tmp_path):
    # flock dies with its process: a child takes the lock and is killed with SIGKILL.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from electra_tf.training.run_lock import RunLock\n"
         "lock = RunLock(sys.argv[1]); lock.acquire(); print('locked', flush=True)\n"
         "time.sleep(120)\n", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="being written by another process"):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(str(tmp_path)):
        pass


def test_an_object_store_lease_refuses_a_fresh_holder_and_takes_over_a_stale_one(
        tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock_module, "_is_local", lambda path: False)
    first = RunLock(str(tmp_path))
    first.acquire()
    with pytest.raises(ConfigError, match="being written by another process"):
        RunLock(str(tmp_path)).acquire()
    record = json.loads((tmp_path / ".lock").read_text())
    record["heartbeat"] -= run_lock_module.LEASE_SECONDS + 1  # its owner stopped refreshing
    (tmp_path / ".lock").write_text(json.dumps(record))
    second = RunLock(str(tmp_path))
    second.acquire()
    with pytest.raises(ConfigError, match="being written by another process"):
        first.refresh()  # the old owner learns it lost the run at its next heartbeat
    second.release()
    assert not (tmp_path / ".lock").exists()


def test_run_dir_below_a_regular_file_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="lies below the file .*file, not a directory"):
        check_run_dir(str(tmp_path / "file" / "run"))


def test_leftovers_of_an_interrupted_save_are_removed(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "ckpt-7_temp").mkdir(parents=True)
    (checkpoints / "ckpt-7_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    (checkpoints / "checkpoint.tmp1234").write_text("partial")
    (checkpoints / "ckpt-5.index").write_bytes(b"")
    # killed while writing ckpt-7's index: its data file was already moved out of ckpt-7_temp
    (checkpoints / "ckpt-7.data-00000-of-00001").write_bytes(b"x")
    (checkpoints / "ckpt-7.index").write_bytes(b"half")
    best = checkpoints / "best"  # the best checkpoint's saves can be interrupted too
    (best / "ckpt-9_temp").mkdir(parents=True)
    (best / "ckpt-9.data-00000-of-00001").write_bytes(b"x")
    (best / "ckpt-4.index").write_bytes(b"")
    (best / "best.json.tmp").write_text("{")
    remove_partial_saves(str(tmp_path))
    assert sorted(os.listdir(checkpoints)) == ["best", "ckpt-5.index"]
    assert os.listdir(best) == ["ckpt-4.index"]


def test_the_checkpoint_best_json_names_survives_a_crash_before_it_is_rewritten(
        tmp_path, monkeypatch):
    weights = tf.train.Checkpoint(w=tf.Variable(1.0))
    best = BestCheckpoint(str(tmp_path), weights, "score", chief=True)
    assert best.update(3, {"score": 0.5})
    recorded = best.path

    def killed(*args, **kwargs):  # the process dies between the save and the record
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.io.gfile, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        best.update(6, {"score": 0.7})
    monkeypatch.undo()
    assert best.path == recorded and tf.io.gfile.exists(recorded + ".index")
    assert best.update(9, {"score": 0.9}) and best.path.endswith("ckpt-9")
    saved = glob.glob(str(tmp_path / "checkpoints" / "best" / "*.index"))
    saved = sorted(os.path.basename(p) for p in saved)
    assert saved == ["ckpt-6.index", "ckpt-9.index"]  # two kept, no more


def test_a_failed_save_is_one_line_and_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    Trainer(toy(tmp_path, steps=6, eval_every=0)).train()
    trainer = Trainer(toy(tmp_path, steps=12, eval_every=0))
    manager = trainer.checkpoints.manager

    def disk_full(checkpoint_number=None):  # what TensorFlow does on ENOSPC mid-save
        partial = tmp_path / "checkpoints" / f"ckpt-{checkpoint_number}_temp"
        partial.mkdir()
        (partial / "part-00000-of-00001.index").write_bytes(b"half")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(manager, "save", disk_full)
    with pytest.raises(CheckpointError) as error:
        trainer.train()
    message = str(error.value)
    assert "\n" not in message and "No space left on device" in message
    assert "ckpt-6" in message and "rerun the same command" in message
    assert not list((tmp_path / "checkpoints").glob("*_temp"))
    assert saved_steps(str(tmp_path)) == [6]
    monkeypatch.undo()
    resumed = Trainer(toy(tmp_path, steps=12, eval_every=0))  # the lock was released
    assert int(resumed.global_step.numpy()) == 6


def test_sigterm_during_set_up_stops_before_the_first_step_with_a_checkpoint(tmp_path):
    preemption.watch()
    os.kill(os.getpid(), signal.SIGTERM)  # arrives while the run is still setting up
    try:
        result = Trainer(toy(tmp_path)).train()
    finally:
        preemption.reset()
    assert result.status == "preempted" and result.step == 0
    assert result.checkpoint and result.checkpoint.endswith("ckpt-0")
    assert Trainer(toy(tmp_path)).train().status == "completed"
