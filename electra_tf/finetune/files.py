"""Local (or gs://) example files: CSV, TSV, JSON lines and CoNLL column files.

Files are parsed on the host (fine-tuning sets fit in memory: GLUE's largest has 400k pairs),
so every problem is reported with its file and line before training starts. The parsed
examples then become a `tf.data.Dataset` in sources.py; tokenization stays in tf.data.

* CSV / TSV: with ``header`` (the default) the first row names the columns and the fields
  are column names; without, fields are 0-based column numbers. TSV fields are split on tabs
  with no quoting (GLUE's TSV files contain unbalanced quotes); CSV follows RFC 4180 quoting.
* JSON lines: one object per line (blank lines are skipped); labels may be strings, integers
  or booleans (written as ``true``/``false``), tagging reads lists of words and tags.
* CoNLL: one word per line with whitespace-separated columns, a blank line after each sentence,
  ``-DOCSTART-`` lines (and the blank line after them) skipped.
"""

from __future__ import annotations

import csv
import io
import json
import math

import tensorflow as tf

from electra_tf.data.errors import DataError
from electra_tf.data.sources import expand_paths
from electra_tf.finetune.data_config import FinetuneDataConfig

# Parsed examples: classification {"text_a": [...], "text_b": [...], "label": [...]},
# tagging {"words": [[...]], "tags": [[...]]}, each list in file order.
Parsed = dict[str, list]


def split_files(data: FinetuneDataConfig, split: str) -> list[str]:
    """The files of `split` (sorted), from data.<split>_path (a file or a glob)."""
    field = f"{split}_path"
    pattern = getattr(data, field)
    if not pattern:
        raise DataError(f"data.{field} is not set, so there is no {split} split: give the "
                        f"{split} file (or a glob)")
    return expand_paths([pattern], f"data.{field}")


def _read_text(path: str) -> str:
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    except tf.errors.OpError as e:
        raise DataError(f"cannot read {path}: {e.message}") from None
    text = raw.decode("utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def _label_value(value, where: str, kind: str):
    """A label as the pipeline wants it: a string (classification) or a float (regression)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: the label is empty; every example needs a label")
    if kind == "regression":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: the regression target {value!r} is not a number") from None
        if not math.isfinite(number):
            raise DataError(f"{where}: the regression target {value!r} is not finite")
        return number
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int | float):
        raise DataError(f"{where}: the label {value!r} is not a string or a number")
    return str(value).strip()


# ----------------------------------------------------------------------------------------------
# CSV / TSV
# ----------------------------------------------------------------------------------------------


def _column(columns: dict[str, int], name: str, path: str, what: str) -> int:
    if name not in columns:
        raise DataError(f"{path} has no column {name!r} (data.{what}); its columns are "
                        f"{sorted(columns, key=columns.__getitem__)}")
    return columns[name]


def parse_delimited(data: FinetuneDataConfig, path: str, kind: str, out: Parsed) -> None:
    """Appends the examples of one CSV/TSV file to `out`."""
    # FinetuneDataConfig.resolved() sets both for csv/tsv
    assert data.text_field is not None and data.label_field is not None
    text = _read_text(path)
    if data.source == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t",
                            quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
    fields = {"text_field": data.text_field, "label_field": data.label_field}
    if data.text_pair_field:
        fields["text_pair_field"] = data.text_pair_field
    rows = iter(reader)
    if data.header:
        try:
            names = next(rows)
        except StopIteration:
            return
        columns = {name.strip(): i for i, name in enumerate(names)}
        index = {f: _column(columns, v, path, f) for f, v in fields.items()}
    else:
        index = {f: int(v) for f, v in fields.items()}
    needed = max(index.values()) + 1
    try:
        for row in rows:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < needed:
                field = max(index, key=index.__getitem__)
                raise DataError(f"{path}:{line}: {len(row)} column(s), but data.{field} needs "
                                f"column {needed - 1} (0-based); fix the row (or the "
                                f"{'delimiter' if len(row) == 1 else 'field'})")
            out["text_a"].append(row[index["text_field"]])
            out["text_b"].append(row[index["text_pair_field"]] if "text_pair_field" in index
                                 else "")
            out["label"].append(_label_value(row[index["label_field"]], f"{path}:{line}", kind))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid {data.source.upper()} ({e})") \
            from None


# ----------------------------------------------------------------------------------------------
# JSON lines
# ----------------------------------------------------------------------------------------------


def _get(record: dict, name: str, where: str, what: str):
    if name not in record:
        raise DataError(f"{where}: no field {name!r} (data.{what}); the record has "
                        f"{sorted(record)}")
    return record[name]


def _string_list(value, where: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool)
                                              for v in value):
        raise DataError(f"{where}: {what} must be a list of strings, got {value!r:.80}")
    return [str(v) for v in value]


def parse_jsonl(data: FinetuneDataConfig, path: str, kind: str, out: Parsed) -> None:
    """Appends the examples of one JSON lines file to `out`."""
    # FinetuneDataConfig.resolved() sets the fields of the task kind for jsonl
    words_field, tags_field = data.words_field, data.tags_field
    label_field = data.label_field
    for line_number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg}); a JSON lines file has one "
                            "object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if kind == "tagging":
            assert words_field is not None and tags_field is not None
            words = _string_list(_get(record, words_field, where, "words_field"), where,
                                 words_field)
            tags = _string_list(_get(record, tags_field, where, "tags_field"), where,
                                tags_field)
            if len(words) != len(tags):
                raise DataError(f"{where}: {len(words)} words but {len(tags)} tags; every word "
                                "needs one tag")
            out["words"].append(words)
            out["tags"].append(tags)
            continue
        texts = []
        for field in ("text_field", "text_pair_field"):
            name = getattr(data, field)
            value = _get(record, name, where, field) if name else ""
            if not isinstance(value, str):
                raise DataError(f"{where}: the field {name!r} must be a string, got {value!r:.80}")
            texts.append(value)
        out["text_a"].append(texts[0])
        out["text_b"].append(texts[1])
        assert label_field is not None
        out["label"].append(_label_value(_get(record, label_field, where, "label_field"),
                                         where, kind))


# ----------------------------------------------------------------------------------------------
# CoNLL column files
# ----------------------------------------------------------------------------------------------


def parse_conll(data: FinetuneDataConfig, path: str, kind: str, out: Parsed) -> None:
    """Appends the sentences of one CoNLL file to `out`.

    A line without the word or the tag column means the sentence's word and tag counts differ:
    a DataError with the file and line.
    """
    words: list[str] = []
    tags: list[str] = []
    start = 0

    def flush():
        if words:
            out["words"].append(list(words))
            out["tags"].append(list(tags))
        words.clear()
        tags.clear()

    for line_number, line in enumerate(_read_text(path).splitlines(), 1):
        columns = line.split()
        if not columns:
            flush()
            continue
        if columns[0] == "-DOCSTART-":
            flush()
            continue
        if not words:
            start = line_number
        try:
            word, tag = columns[data.word_column], columns[data.tag_column]
        except IndexError:
            raise DataError(
                f"{path}:{line_number}: {len(columns)} column(s), so the sentence starting at "
                f"line {start} has different numbers of words and tags (data.word_column="
                f"{data.word_column}, data.tag_column={data.tag_column}); give every word its "
                "tag, or fix the columns") from None
        if len(columns) < 2:
            raise DataError(f"{path}:{line_number}: only one column ({word!r}): the sentence "
                            f"starting at line {start} has a word without a tag; CoNLL files "
                            "need a word and a tag column on every line")
        words.append(word)
        tags.append(tag)
    flush()


_PARSERS = {"csv": parse_delimited, "tsv": parse_delimited, "jsonl": parse_jsonl,
            "conll": parse_conll}


def read_files(data: FinetuneDataConfig, split: str, kind: str) -> tuple[Parsed, str]:
    """All examples of `split` from its files, in sorted file order, and a description."""
    files = split_files(data, split)
    out: Parsed = ({"words": [], "tags": []} if kind == "tagging"
                   else {"text_a": [], "text_b": [], "label": []})
    for path in files:
        _PARSERS[data.source](data, path, kind, out)
        if data.max_examples is not None and len(next(iter(out.values()))) >= data.max_examples:
            break
    description = f"{data.source} {', '.join(files[:3])}{' ...' if len(files) > 3 else ''}"
    return out, description
