"""Fault injection through the CLI, in real processes: kill -9 at a random moment of a run
(and one aimed at the middle of a checkpoint save), then the rerun resumes to the same weights
as a run that was never interrupted; two writers on one run directory; a damaged newest
checkpoint. (SIGTERM, disk full and damaged configs: test_cli.py, test_run_dir.py.)"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
from test_cli import REPO, _tiny_pretrain_args, _write_corpus

STEPS = 24
SETTINGS = ("train.steps=24", "train.warmup_steps=2", "train.log_every=4",
            "train.checkpoint_every=2", "train.keep_checkpoints=3")  # data.deterministic: default
DIGEST = re.compile(r"weights digest ([0-9a-f]{16})")


# Run inside the child: when the save of checkpoint `step` starts, a timer SIGKILLs the process
# `delay` seconds later, so the kill lands inside the save or in the steps right after it.
KILL_IN_SAVE = """
import os, signal, sys, threading
import tensorflow as tf
from electra_tf.cli import main
step, delay = int(sys.argv[1]), float(sys.argv[2])
save = tf.train.CheckpointManager.save
def killing_save(self, checkpoint_number=None, **kwargs):
    if checkpoint_number == step:
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return save(self, checkpoint_number=checkpoint_number, **kwargs)
tf.train.CheckpointManager.save = killing_save
sys.exit(main(sys.argv[3:]))
"""


def start(corpus, run_dir, kill_in_save=None):
    env = {**os.environ, "PYTHONPATH": REPO}
    args = _tiny_pretrain_args(corpus, run_dir, *SETTINGS)
    command = [sys.executable, "-m", "electra_tf.cli"]
    if kill_in_save is not None:
        command = [sys.executable, "-c", KILL_IN_SAVE, *map(str, kill_in_save)]
    return subprocess.Popen([*command, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process):
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    return DIGEST.findall(err)[-1]


def kill_when(process, condition, timeout=600):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "the run never reached the moment to kill it"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


def saved(run_dir, at_least):
    checkpoints = run_dir / "checkpoints"
    return checkpoints.is_dir() and any(
        int(m.group(1)) >= at_least for n in os.listdir(checkpoints)
        if (m := re.fullmatch(r"ckpt-(\d+)\.index", n)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    corpus = _write_corpus(root)
    return corpus, finish(start(corpus, root / "uninterrupted"))


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.003, 0.02])
def test_kill_9_mid_save_then_rerun_gives_the_uninterrupted_weights(reference, tmp_path,
                                                                    delay):
    corpus, digest = reference
    run_dir = tmp_path / "run"
    killed = start(corpus, run_dir, kill_in_save=(6, delay))
    killed.communicate(timeout=900)
    assert killed.returncode == -signal.SIGKILL
    assert finish(start(corpus, run_dir)) == digest


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_rerun_gives_the_uninterrupted_weights(reference,
                                                                               tmp_path):
    corpus, digest = reference
    run_dir = tmp_path / "run"
    process = start(corpus, run_dir)
    kill_when(process, lambda: saved(run_dir, 2))
    time.sleep(random.Random().uniform(0.0, 1.5))  # somewhere in the steps that follow
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert finish(start(corpus, run_dir)) == digest


@pytest.mark.slow
def test_a_second_writer_is_refused_in_one_line_and_the_first_run_finishes(reference,
                                                                         tmp_path):
    corpus, digest = reference
    run_dir = tmp_path / "run"
    first = start(corpus, run_dir)
    deadline = time.time() + 600
    while not (run_dir / ".lock").exists() or not (run_dir / ".lock").read_text():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.01)
    second = start(corpus, run_dir)
    _, err = second.communicate(timeout=600)
    assert second.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("electra-tf pretrain: error:")]
    assert len(lines) == 1 and "is being written by another process" in lines[0], err[-2000:]
    assert finish(first) == digest  # the first run was not disturbed


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one(reference, tmp_path):
    corpus, digest = reference
    run_dir = tmp_path / "run"
    process = start(corpus, run_dir)
    kill_when(process, lambda: saved(run_dir, 6))
    newest = max((run_dir / "checkpoints").glob("ckpt-*.index"),
                 key=lambda p: int(re.search(r"(\d+)", p.name).group(1)))
    for data in (run_dir / "checkpoints").glob(newest.name.replace(".index", ".data-*")):
        data.write_bytes(b"\0" * 16)  # a torn write
    assert finish(start(corpus, run_dir)) == digest
