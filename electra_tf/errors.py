"""The base class of every error that means "the user's input is wrong".

The CLI reports a `UserError` as one line (its message names the file or field and the fix)
instead of a traceback. Each part of the package subclasses it for its own inputs:
`ConfigError` (config), `DataError` (corpora, vocabularies), `CheckpointError` and
`CheckpointMismatchError` (checkpoints), `MissingFileError` (a named file is not there).
This module imports nothing, so any module may import it.
"""


class UserError(Exception):
    """Bad input or an unusable environment, with a message that says what to do."""


class CheckpointError(UserError, RuntimeError):
    """A run's checkpoints cannot be read: their files are missing or corrupt."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the user named (or a run needs) does not exist."""


def short_message(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to `limit` characters (TensorFlow's messages
    can run to pages), for quoting inside a UserError."""
    text = " ".join(str(getattr(error, "message", None) or error).split())
    return text[:limit] + (" ..." if len(text) > limit else "")
