"""The exceptions that mean "the user's input is wrong" (reported without a traceback)."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A run's checkpoints cannot be read: their files are missing or corrupt."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception classes the CLI reports as a one-line error naming the input and the fix."""
    from electra_tf.config import ConfigError
    from electra_tf.data import DataError
    from electra_tf.interop import CheckpointMismatchError

    return (ConfigError, DataError, CheckpointMismatchError, CheckpointError, FileNotFoundError)
