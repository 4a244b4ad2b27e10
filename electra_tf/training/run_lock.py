"""One writer per run directory.

On a local disk the lock is `RUN_DIR/.lock` held with `flock`: the kernel releases it when the
process ends in any way (kill -9 included), so a lock is never stale. Object stores (gs://)
have no locks; there the lock is a lease: `.lock` names its owner and a heartbeat time that the
owner refreshes at every log and checkpoint. Another process refuses the run while the
heartbeat is younger than `LEASE_SECONDS`; an older lease is stale (its owner died) and is
taken over. Two processes that start within the same second on an object store can both
believe they won; the owner check at each refresh then stops the later one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid

import tensorflow as tf

from electra_tf.config import ConfigError
from electra_tf.training.run_dir import LOCK_NAME

log = logging.getLogger(__name__)

LEASE_SECONDS = 15 * 60


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _busy(run_dir: str, owner: dict) -> ConfigError:
    who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"
    return ConfigError(
        f"train.run_dir {run_dir} is being written by another process ({who}); a run directory "
        "has one writer. Wait for that run to end or stop it, or choose another train.run_dir")


class RunLock:
    """`acquire()` before writing into the run directory, `refresh()` now and then, `release()`
    at the end (also a context manager)."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(),
                      "id": uuid.uuid4().hex, "heartbeat": 0.0}
        self._fd: int | None = None
        self.released = True

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        tf.io.gfile.makedirs(self.run_dir)
        if _is_local(self.run_dir):
            self._acquire_local()
        else:
            self._acquire_lease()
        self.released = False
        log.debug("locked %s", self.path)

    def _acquire_local(self) -> None:
        import fcntl

        path = self.path.removeprefix("file://")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _read_owner(path)
            os.close(fd)
            raise _busy(self.run_dir, owner) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(self.owner).encode())
        self._fd = fd

    def _acquire_lease(self) -> None:
        owner = _read_owner(self.path)
        age = time.time() - float(owner.get("heartbeat", 0.0))
        if owner and owner.get("id") != self.owner["id"] and age < LEASE_SECONDS:
            raise _busy(self.run_dir, owner)
        if owner:
            log.warning("taking over the stale lock of %s (last heartbeat %.0f s ago)",
                        self.path, age)
        self.refresh(check_owner=False)

    def refresh(self, check_owner: bool = True) -> None:
        """Renews an object-store lease (a no-op for local locks); raises if another process
        has taken the run over."""
        if self._fd is not None or _is_local(self.run_dir):
            return
        if check_owner:
            current = _read_owner(self.path)
            if current and current.get("id") != self.owner["id"]:
                raise _busy(self.run_dir, current)
        self.owner["heartbeat"] = time.time()
        with tf.io.gfile.GFile(self.path, "w") as f:
            f.write(json.dumps(self.owner))

    def release(self) -> None:
        self.released = True
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        elif not _is_local(self.run_dir):
            current = _read_owner(self.path)
            if current.get("id") == self.owner["id"]:
                tf.io.gfile.remove(self.path)

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _read_owner(path: str) -> dict:
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            text = f.read()
        return json.loads(text) if text.strip() else {}
    except (tf.errors.NotFoundError, json.JSONDecodeError, OSError):
        return {}
