"""TensorBoard output: scalars and text per run, nothing on non-chief workers, the replacement
markdown, and the profiler's step window."""

import glob
import os

import numpy as np
import tensorflow as tf

from electra_tf.training.summaries import Profiler, Summaries, render_replacements


def tags(logdir):
    found = {}
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found[value.tag] = event.step
    return found


def test_scalars_and_text_go_to_their_run(tmp_path):
    summaries = Summaries(str(tmp_path))
    summaries.scalars("train", 5, {"loss": 1.5, "toy": 2.0})
    summaries.text("eval", 7, "sample", "**bold**")
    summaries.close()
    assert tags(tmp_path / "tensorboard" / "train") == {"loss": 5, "toy": 5}
    assert tags(tmp_path / "tensorboard" / "eval") == {"sample": 7}


def test_a_disabled_writer_writes_nothing(tmp_path):
    summaries = Summaries(str(tmp_path), enabled=False)
    summaries.scalars("train", 1, {"loss": 1.0})
    summaries.close()
    assert not (tmp_path / "tensorboard").exists()


def test_replacements_are_marked_and_flags_carry_their_probability():
    markdown = render_replacements(["[CLS]", "dog", "<b>", "[SEP]"],
                                   ["[CLS]", "cat", "<b>", "[SEP]"],
                                   np.array([0.1, 0.9, 0.7, 0.2]), length=3)
    first_line = markdown.splitlines()[0]
    assert first_line == "[CLS] **dog** (~~cat~~) ⚑0.90 &lt;b&gt; ⚑0.70"
    assert "[SEP]" not in first_line  # only the first `length` tokens


def test_the_profiler_window_sets_chunk_boundaries():
    profiler = Profiler("/unused", [3, 5])
    assert [profiler.next_boundary(s) for s in (0, 3, 4, 6)] == [3, 6, 6, None]
    assert Profiler("/unused", []).next_boundary(0) is None
