"""Shows an exported discriminator at work: does it spot the one word that was replaced?

    print(run_demo("export/quickstart"))

Loads the SavedModel the way a user would (TensorFlow + TensorFlow Text only), runs
`serving_default` on a sentence and on a copy with one word swapped for a plausible wrong one,
and reports every token's replaced-probability, whether the swapped word is flagged (> 0.5) and
how its probability ranks among the sentence's tokens. A discriminator trained for a few minutes
may well miss it; the report says so plainly. The generator's guesses for the word (the
`fill_mask` signature) follow.
"""

from __future__ import annotations

import numpy as np

# Sentence pairs differing in one word, in words a small uncased vocabulary usually has. The
# first pair whose changed word is a single token of the model's vocabulary is used (a small
# vocabulary may split "ate" into "at ##e").
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("the chef cooked the meal", "the chef ate the meal"),
    ("a person who works in a hospital", "a person who sleeps in a hospital"),
    ("a large body of water", "a large body of paper"),
    ("the man went to the store", "the man went to the sky"),
    ("the cat sat on the mat", "the cat sat on the sun"),
)
THRESHOLD = 0.5
_UNKNOWN = ("[UNK]", "<unk>")


def _load(saved_model_dir: str):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    return tf.saved_model.load(saved_model_dir)


def _changed_word(original: str, corrupted: str) -> tuple[int, str, str]:
    a, b = original.split(), corrupted.split()
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) != len(b) or len(diff) != 1:
        raise ValueError(f"demo pair {original!r} / {corrupted!r} must differ in exactly one "
                         "word")
    return diff[0], a[diff[0]], b[diff[0]]


def _changed_span(original: list, corrupted: list) -> tuple[int, int]:
    """[start, end) of the tokens of `corrupted` that differ from `original` (prefix/suffix)."""
    start = 0
    while start < min(len(original), len(corrupted)) and original[start] == corrupted[start]:
        start += 1
    end_o, end_c = len(original), len(corrupted)
    while end_o > start and end_c > start and original[end_o - 1] == corrupted[end_c - 1]:
        end_o, end_c = end_o - 1, end_c - 1
    return start, end_c


def pick_pair(tokens: list[list[str]]) -> int:
    """Which pair to show, given the tokens of original, corrupted, original, ... sentences:
    the first whose changed word is one whole token in both sentences, else the first whose
    changed pieces are known (no [UNK]), else the first."""
    known = None
    for k in range(len(tokens) // 2):
        original, corrupted = tokens[2 * k], tokens[2 * k + 1]
        start, end = _changed_span(original, corrupted)
        if end <= start or any(t in _UNKNOWN for t in corrupted[start:end]):
            continue
        if end - start == 1 and len(original) == len(corrupted):
            return k
        known = k if known is None else known
    return known or 0


def _table(tokens: list[str], probs: np.ndarray, span: tuple[int, int] | None) -> list[str]:
    shown = [f">> {t} <<" if span and span[0] <= i < span[1] else t
             for i, t in enumerate(tokens)]
    width = max(12, *(len(t) for t in shown))
    lines = [f"    {'token':<{width}}  P(replaced)"]
    for i, (token, p) in enumerate(zip(shown, probs, strict=True)):
        bar = "#" * int(round(float(p) * 20))
        mark = "   <- replaced" if span and span[0] <= i < span[1] else ""
        lines.append(f"    {token:<{width}}  {float(p):.3f} {bar:<20}{mark}".rstrip())
    return lines


def run_demo(saved_model_dir: str, pairs: tuple[tuple[str, str], ...] | None = None) -> str:
    """Runs the replaced-word demo on the SavedModel at `saved_model_dir`; returns the report."""
    import tensorflow as tf

    pairs = tuple(pairs or DEFAULT_PAIRS)
    model = _load(saved_model_dir)
    serve = model.signatures["serving_default"]
    texts = [t for pair in pairs for t in pair]
    out = serve(text=tf.constant(texts))
    lines = [f"Replaced-token detection demo ({saved_model_dir})"]
    if "replaced_probability" not in out:
        lines.append("This model has no discriminator (an `objective: mlm` run): nothing to "
                     "detect.")
        return "\n".join(lines + _fill_mask_lines(model, pairs[0]))

    ids = out["token_ids"].numpy()
    mask = out["input_mask"].numpy().astype(bool)
    probs = out["replaced_probability"].numpy()

    def tokens_of(row: int) -> list[str]:
        return [t.decode("utf-8", "replace")
                for t in model.id_to_token(tf.constant(ids[row][mask[row]])).numpy()]

    k = pick_pair([tokens_of(row) for row in range(len(texts))])
    (original, corrupted), o, c = pairs[k], 2 * k, 2 * k + 1
    span = _changed_span(list(ids[o][mask[o]]), list(ids[c][mask[c]]))
    _, old_word, new_word = _changed_word(original, corrupted)

    c_tokens, c_probs = tokens_of(c), probs[c][mask[c]]
    o_tokens, o_probs = tokens_of(o), probs[o][mask[o]]
    lines += [f"original:  {original}",
              f"corrupted: {corrupted}   ({old_word!r} replaced by {new_word!r})", ""]
    lines.append("Corrupted sentence, per token:")
    lines += _table(c_tokens, c_probs, span if span[1] > span[0] else None)
    lines.append("")
    lines.append("Original sentence, for comparison:")
    lines += _table(o_tokens, o_probs, None)
    lines.append("")

    if span[1] <= span[0]:
        lines.append("The two sentences tokenize identically (the words are unknown to the "
                     "vocabulary): nothing to detect.")
        return "\n".join(lines)
    # Rank among the sentence's word tokens: [CLS] and the final [SEP] excluded.
    words = np.arange(1, len(c_tokens) - 1)
    replaced_p = float(c_probs[span[0]:span[1]].max())
    rank = 1 + int(np.sum(c_probs[words] > replaced_p))
    flagged = replaced_p > THRESHOLD
    false_alarms = [c_tokens[i] for i in words
                    if not span[0] <= i < span[1] and c_probs[i] > THRESHOLD]
    verdict = "yes" if flagged else "no"
    lines.append(f"flagged: {verdict} - P(replaced) of {new_word!r} is {replaced_p:.3f} "
                 f"({'above' if flagged else 'not above'} {THRESHOLD}); it ranks {rank} of "
                 f"{len(words)} tokens by P(replaced)")
    if false_alarms:
        lines.append(f"also flagged (false alarms): {', '.join(false_alarms)}")
    if not flagged or rank > 1:
        lines.append("(a briefly trained discriminator often misses single replacements; "
                     "train longer for a sharper detector)")
    lines += _fill_mask_lines(model, (original, corrupted))
    return "\n".join(lines)


def _fill_mask_lines(model, pair: tuple[str, str]) -> list[str]:
    import tensorflow as tf

    if "fill_mask" not in model.signatures:
        return []
    original, corrupted = pair
    index, old_word, _ = _changed_word(original, corrupted)
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
