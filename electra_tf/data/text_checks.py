"""Start-up checks of text files: their encoding, whether they hold text, over-long lines.

Before a text corpus is read into tf.data, a sample of every file (up to `_SAMPLE_BYTES`,
less when there are many files, never less than `_MIN_SAMPLE_BYTES`) is decoded here, in
Python, with `data.encoding`. A file that fits is read whole. Of a larger plain file, half the
sample is its start and half is `_PIECES` pieces evenly spaced through the rest (each from its
first line break on), so a wrong encoding further in (corpora concatenated from several
sources) is found too; of a larger compressed file, which cannot be read out of order, the
start:

* Undecodable characters (they become U+FFFD in the graph) are counted and logged. Above
  `data.max_decode_error_fraction` of the characters (and at least `_MIN_DECODE_ERRORS`),
  reading stops with a `DataError` that names the file and the fix (set `data.encoding`, or
  convert the file).
* A file whose sample is mostly not text (over `NON_TEXT_FRACTION` undecodable or control
  characters: random bytes, a binary file) is an error whatever the encoding.
* Lines longer than `data.max_piece_chars` are counted and logged: they are cut into pieces
  before tokenization (documents.cut_long_texts).

A file that cannot be read or decompressed is left to the tf.data reader, which reports it.
"""

from __future__ import annotations

import codecs
import gzip
import logging
import re
import zlib
from dataclasses import dataclass

import tensorflow as tf

from electra_tf.config import DataConfig
from electra_tf.data.errors import DataError

__all__ = ["TextStats", "text_stats", "check_text_files"]

logger = logging.getLogger(__name__)

_SAMPLE_BYTES = 4 << 20           # per file
_TOTAL_SAMPLE_BYTES = 64 << 20    # over all files
_MIN_SAMPLE_BYTES = 64 << 10
_PIECES = 16                      # evenly spaced pieces of a large plain file
# Above this share of undecodable or control characters a file is not text (judged on samples
# of at least _MIN_NON_TEXT_CHARS characters).
NON_TEXT_FRACTION = 0.10
_MIN_NON_TEXT_CHARS = 256
# Fewer undecodable characters than this in a sample are logged, never an error (a stray byte
# in a tiny file is not a wrong encoding).
_MIN_DECODE_ERRORS = 8
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class TextStats:
    """What the sample of one file holds."""

    sampled_bytes: int
    chars: int
    decode_errors: int
    control_chars: int
    long_lines: int


def text_stats(raw: bytes, encoding: str, max_line_chars: int, *, final: bool) -> TextStats:
    """Decodes `raw` (the whole file when `final`, else its start) and counts what is wrong."""
    decoder = codecs.getincrementaldecoder(encoding)
    replaced = decoder(errors="replace").decode(raw, final=final)
    ignored = decoder(errors="ignore").decode(raw, final=final)
    errors = replaced.count("\ufffd") - ignored.count("\ufffd")
    lines = replaced.split("\n")
    return TextStats(sampled_bytes=len(raw), chars=len(replaced), decode_errors=errors,
                     control_chars=len(_CONTROL.findall(replaced)),
                     long_lines=sum(len(line) > max_line_chars for line in lines))


def _read_start(f, name: str, limit: int) -> tuple[bytes, bool]:
    """(up to `limit` decompressed bytes from the start of compressed file `f`, whether that is
    all of it)."""
    if name.lower().endswith(".gz"):
        with gzip.GzipFile(fileobj=f) as unzipped:
            raw = unzipped.read(limit + 1)
    else:  # .zz, .zlib
        inflate = zlib.decompressobj()
        raw = b""
        while len(raw) <= limit:
            chunk = f.read(1 << 20)
            if not chunk:
                raw += inflate.flush()
                break
            raw += inflate.decompress(chunk, limit + 1 - len(raw))
    return raw[:limit], len(raw) <= limit


def _read_pieces(f, size: int, start: int, piece: int) -> list[bytes]:
    """`_PIECES` pieces of about `piece` bytes spread over bytes [start, size) of plain file `f`,
    each cut to begin after its first line break (so no piece starts inside a character)."""
    pieces = []
    stride = (size - start) // _PIECES
    for i in range(_PIECES):
        f.seek(start + i * stride)
        raw = f.read(piece)
        newline = raw.find(b"\n")
        if newline >= 0:
            pieces.append(raw[newline + 1:])
    return pieces


def _read_sample(name: str, limit: int) -> list[tuple[bytes, bool]] | None:
    """The sample of one file (see the module doc) as [(bytes, whether they end the file)], or
    None when the file cannot be read here (the tf.data reader then reports why)."""
    try:
        with tf.io.gfile.GFile(name, "rb") as f:
            if name.lower().endswith((".gz", ".zz", ".zlib")):
                return [_read_start(f, name, limit)]
            size = tf.io.gfile.stat(name).length
            if size <= limit:
                return [(f.read(), True)]
            head = limit // 2
            return [(f.read(head), False)] + [(piece, False) for piece in
                                              _read_pieces(f, size, head, head // _PIECES)]
    except (tf.errors.OpError, OSError, EOFError, zlib.error):
        return None


def _combined(parts: list[TextStats]) -> TextStats:
    return TextStats(*(sum(getattr(p, k) for p in parts) for k in TextStats.__dataclass_fields__))


def check_text_files(files: list[str], data: DataConfig) -> None:
    """Checks a sample of every file (see the module docstring); logs what it counted."""
    limit = max(_MIN_SAMPLE_BYTES, min(_SAMPLE_BYTES, _TOTAL_SAMPLE_BYTES // max(1, len(files))))
    decode_errors = long_lines = 0
    for name in files:
        sample = _read_sample(name, limit)
        if sample is None:
            continue
        stats = _combined([text_stats(raw, data.encoding, data.max_piece_chars, final=final)
                           for raw, final in sample])
        _check_one(name, stats, data)
        decode_errors += stats.decode_errors
        long_lines += stats.long_lines
    if decode_errors:
        logger.warning("data: %d characters of the text files are not valid %s; they are read "
                       "as U+FFFD (counted in a sample of up to %d KB of each file; set "
                       "data.encoding if the files use another encoding)", decode_errors,
                       data.encoding, limit >> 10)
    if long_lines:
        logger.warning("data: %d lines are longer than %d characters (counted in a sample of up "
                       "to %d KB of each file); they are cut into pieces of about that length "
                       "before tokenization", long_lines, data.max_piece_chars, limit >> 10)


def _check_one(name: str, stats: TextStats, data: DataConfig) -> None:
    if stats.chars == 0:
        return
    sample = f"{stats.sampled_bytes:,} bytes sampled"
    if (stats.chars >= _MIN_NON_TEXT_CHARS
            and (stats.decode_errors + stats.control_chars) / stats.chars > NON_TEXT_FRACTION):
        raise DataError(
            f"{name} does not look like text: {stats.decode_errors + stats.control_chars:,} of "
            f"{stats.chars:,} sampled characters ({sample}) are undecodable as "
            f"{data.encoding} or control characters; remove it from data.paths, or set "
            "data.encoding if it is text in another encoding")
    fraction = stats.decode_errors / stats.chars
    if fraction > data.max_decode_error_fraction and stats.decode_errors >= _MIN_DECODE_ERRORS:
        raise DataError(
            f"{name} is not {data.encoding} text: {stats.decode_errors:,} of "
            f"{stats.chars:,} sampled characters ({fraction:.2%}; {sample}) cannot be decoded, "
            f"above data.max_decode_error_fraction={data.max_decode_error_fraction}. Set "
            f"data.encoding "
            f"to the file's encoding (e.g. --set data.encoding=latin-1), or convert the file "
            f"(iconv -f latin1 -t utf-8 {name} > converted.txt)")
