"""Errors raised by the input pipeline."""

from __future__ import annotations

from electra_tf.errors import UserError


class DataError(UserError, ValueError):
    """Bad input data: a missing path, an empty corpus, an unusable vocabulary or dataset name.

    The message names the offending input and says how to fix it, so command-line tools can print
    it as is, without a traceback.
    """


class VocabError(DataError):
    """A vocabulary or SentencePiece model file is missing, empty, duplicated or incomplete."""
