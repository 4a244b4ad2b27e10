"""Shows an exported discriminator at work: does it spot the word that was replaced?

    print(run_demo("export/quickstart"))

Loads the SavedModel the way a user would (TensorFlow + TensorFlow Text only) and runs
`serving_default` on sentence pairs that differ in one word. For each corrupted sentence it
reports the replaced word's probability of being replaced, how that ranks among the sentence's
tokens and whether it is flagged (> 0.5); then every token of the clearest case, next to its
original sentence, and the generator's guesses for the word (the `fill_mask` signature). The
report says plainly what is missed. In our runs a tiny discriminator caught words that break
the grammar around them long before words that only break the meaning, and the quickstart's
few minutes catch neither (docs/quickstart-demo.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sentence pairs differing in one word, in the style of the default corpus (dictionary glosses)
# and in words a small uncased vocabulary has. The first four replacements break the grammar
# around them, the last two only the meaning.
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("a tool used for cutting wood", "a tool used for cutting ,"),
    ("a person who works in a hospital", "a person who works in a of"),
    ("the act of going from one place to another", "the act of going from one place to the"),
    ("a large body of water", "a large body of paper"),
    ("the chef cooked the meal", "the chef ate the meal"),
    ("the cat sat on the mat", "the cat sat on the sun"),
)
THRESHOLD = 0.5
_UNKNOWN = ("[UNK]", "<unk>")


@dataclass
class Verdict:
    """The discriminator on one corrupted sentence (tokens include [CLS] and the final [SEP])."""

    original: str
    corrupted: str
    old_word: str
    new_word: str
    tokens: list[str]
    probs: np.ndarray                  # P(replaced) per token of the corrupted sentence
    original_tokens: list[str]
    original_probs: np.ndarray
    span: tuple[int, int]              # [start, end) of the replaced word's tokens; empty: none

    @property
    def words(self) -> np.ndarray:
        """Indices of the sentence's word tokens ([CLS] and the final [SEP] excluded)."""
        return np.arange(1, len(self.tokens) - 1)

    @property
    def detectable(self) -> bool:
        """The replacement shows in the tokens, and not as [UNK]."""
        start, end = self.span
        return end > start and not any(t in _UNKNOWN for t in self.tokens[start:end])

    @property
    def replaced_p(self) -> float:
        return float(self.probs[self.span[0]:self.span[1]].max())

    @property
    def rank(self) -> int:
        return 1 + int(np.sum(self.probs[self.words] > self.replaced_p))

    @property
    def flagged(self) -> bool:
        return self.replaced_p > THRESHOLD

    @property
    def false_alarms(self) -> list[str]:
        return [self.tokens[i] for i in self.words
                if not self.span[0] <= i < self.span[1] and self.probs[i] > THRESHOLD]


def _load(saved_model_dir: str):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    return tf.saved_model.load(saved_model_dir)


def changed_word(original: str, corrupted: str) -> tuple[int, str, str]:
    """(index, old word, new word) of the one whitespace-separated word the two differ in."""
    a, b = original.split(), corrupted.split()
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) != len(b) or len(diff) != 1:
        raise ValueError(f"demo pair {original!r} / {corrupted!r} must differ in exactly one "
                         "word")
    return diff[0], a[diff[0]], b[diff[0]]


def changed_span(original: list, corrupted: list) -> tuple[int, int]:
    """[start, end) of the tokens of `corrupted` that differ from `original` (prefix/suffix)."""
    start = 0
    while start < min(len(original), len(corrupted)) and original[start] == corrupted[start]:
        start += 1
    end_o, end_c = len(original), len(corrupted)
    while end_o > start and end_c > start and original[end_o - 1] == corrupted[end_c - 1]:
        end_o, end_c = end_o - 1, end_c - 1
    return start, end_c


def _table(tokens: list[str], probs: np.ndarray, span: tuple[int, int]) -> list[str]:
    marked = [span[0] <= i < span[1] for i in range(len(tokens))]
    shown = [f">> {t} <<" if m else t for t, m in zip(tokens, marked, strict=True)]
    width = max(12, *(len(t) for t in shown))
    lines = [f"    {'token':<{width}}  P(replaced)"]
    for token, p, m in zip(shown, probs, marked, strict=True):
        bar = "#" * int(round(float(p) * 20))
        lines.append(f"    {token:<{width}}  {float(p):.3f} {bar:<20}"
                     f"{'   <- replaced' if m else ''}".rstrip())
    return lines


def judge(model, pairs: tuple[tuple[str, str], ...]) -> list[Verdict] | None:
    """Runs `serving_default` on every sentence of `pairs`: one Verdict per pair, or None for a
    model without a discriminator."""
    import tensorflow as tf

    out = model.signatures["serving_default"](text=tf.constant([t for p in pairs for t in p]))
    if "replaced_probability" not in out:
        return None
    ids = out["token_ids"].numpy()
    mask = out["input_mask"].numpy().astype(bool)
    probs = out["replaced_probability"].numpy()

    def row(r: int) -> tuple[list, list[str], np.ndarray]:
        kept = ids[r][mask[r]]
        tokens = [t.decode("utf-8", "replace")
                  for t in model.id_to_token(tf.constant(kept)).numpy()]
        return list(kept), tokens, probs[r][mask[r]]

    verdicts = []
    for k, (original, corrupted) in enumerate(pairs):
        _, old_word, new_word = changed_word(original, corrupted)
        o_ids, o_tokens, o_probs = row(2 * k)
        c_ids, c_tokens, c_probs = row(2 * k + 1)
        verdicts.append(Verdict(original, corrupted, old_word, new_word, c_tokens, c_probs,
                                o_tokens, o_probs, changed_span(o_ids, c_ids)))
    return verdicts


def summary(verdicts: list[Verdict]) -> list[str]:
    """One line per pair (P of the replaced word, its rank, flagged or not), then the totals."""
    lines = ["Each sentence has one word replaced; a good discriminator gives it the highest "
             f"P(replaced), above {THRESHOLD}.", "",
             "    P(replaced)  rank  flagged  corrupted sentence  (original word -> new word)"]
    for v in verdicts:
        change = f"{v.old_word!r} -> {v.new_word!r}"
        if not v.detectable:
            lines.append(f"    {'-':>11}  {'-':>4}  {'-':>7}  {v.corrupted}  ({change}: unknown "
                         "to the vocabulary, nothing to detect)")
            continue
        rank = f"{v.rank}/{len(v.words)}"
        lines.append(f"    {v.replaced_p:>11.3f}  {rank:>4}  {'yes' if v.flagged else 'no':>7}  "
                     f"{v.corrupted}  ({change})")
    judged = [v for v in verdicts if v.detectable]
    if not judged:
        return lines + ["None of the replaced words is in the vocabulary: nothing to detect."]
    alarms = [t for v in judged for t in v.false_alarms]
    others = sum(len(v.words) - (v.span[1] - v.span[0]) for v in judged)
    caught = sum(v.flagged for v in judged)
    lines.append(f"flagged {caught} of {len(judged)} replaced words; false alarms: "
                 f"{len(alarms)} of {others} other tokens"
                 + (f" ({', '.join(alarms)})" if alarms else ""))
    if caught < len(judged):
        lines.append("(a briefly trained discriminator misses them: it learns to catch words that "
                     "break the grammar first, words that only break the meaning far later; see "
                     "docs/quickstart-demo.md)")
    return lines


def run_demo(saved_model_dir: str, pairs: tuple[tuple[str, str], ...] | None = None) -> str:
    """Runs the replaced-word demo on the SavedModel at `saved_model_dir`; returns the report."""
    pairs = tuple(pairs or DEFAULT_PAIRS)
    model = _load(saved_model_dir)
    lines = [f"Replaced-token detection demo ({saved_model_dir})"]
    verdicts = judge(model, pairs)
    if verdicts is None:
        lines.append("This model has no discriminator (an `objective: mlm` run): nothing to "
                     "detect.")
        return "\n".join(lines + _fill_mask_lines(model, pairs[0]))
    lines += summary(verdicts)
    judged = [v for v in verdicts if v.detectable]
    if not judged:
        return "\n".join(lines)

    best = max(judged, key=lambda v: v.replaced_p)
    lines += ["", f"The replaced word with the highest P(replaced), per token: {best.corrupted!r}"]
    lines += _table(best.tokens, best.probs, best.span)
    lines += ["", f"and the original sentence: {best.original!r}"]
    lines += _table(best.original_tokens, best.original_probs, (0, 0))
    lines += _fill_mask_lines(model, (best.original, best.corrupted))
    return "\n".join(lines)


def _fill_mask_lines(model, pair: tuple[str, str]) -> list[str]:
    import tensorflow as tf

    if "fill_mask" not in model.signatures:
        return []
    original, corrupted = pair
    index, old_word, _ = changed_word(original, corrupted)
    words = original.split()
    words[index] = "[MASK]"
    masked = " ".join(words)
    out = model.signatures["fill_mask"](text=tf.constant([masked]))
    if int(out["num_masks"][0]) == 0:
        return []
    guesses = ", ".join(
        f"{t.decode('utf-8', 'replace')} {float(p):.3f}"
        for t, p in zip(out["top_k_tokens"][0, 0].numpy(),
                        out["top_k_probabilities"][0, 0].numpy(), strict=True))
    return ["", f"generator's guesses for {masked!r} (original: {old_word!r}): {guesses}"]
