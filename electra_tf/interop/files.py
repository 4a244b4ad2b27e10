"""File access for interop formats through `tf.io.gfile`, so that local paths, gs:// and any
other filesystem TensorFlow knows (e.g. the in-memory ram://) work alike.

The format modules (`huggingface.py`) read and write through these few functions and import
no framework themselves.
"""

from __future__ import annotations

import os

import tensorflow as tf


def join(directory: str, *names: str) -> str:
    return os.path.join(directory, *names)


def basename(path: str) -> str:
    return os.path.basename(path.rstrip("/"))


def is_dir(path: str) -> bool:
    return tf.io.gfile.isdir(path)


def is_file(path: str) -> bool:
    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)


def make_dirs(path: str) -> None:
    tf.io.gfile.makedirs(path)


def read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    """The UTF-8 text of `path` (UnicodeDecodeError if it is not UTF-8)."""
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def copy(source: str, destination: str) -> None:
    tf.io.gfile.copy(source, destination, overwrite=True)
