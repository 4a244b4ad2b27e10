"""The TPU VM install (scripts/tpu_install.py): what it asks pip for, and the check that fails
when a resolution would put a second TensorFlow next to tensorflow-tpu. .ci/run runs the same
check on pip's real dry run (`python scripts/tpu_install.py --dry-run`)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tpu_install", ROOT / "scripts" / "tpu_install.py")
tpu_install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tpu_install)


def _report(*dists, requires=None):
    return {"install": [{"metadata": {"name": name, "version": version,
                                      "requires_dist": (requires or {}).get(name, [])}}
                        for name, version in dists]}


GOOD = _report(("tensorflow_tpu", "2.20.0"), ("libtpu", "0.0.14"), ("tensorboard", "2.20.0"),
               ("keras", "3.15.1"))
TEXT = _report(("tensorflow-text", "2.20.1"), requires={"tensorflow-text": [
    "tensorflow<2.21,>=2.20.0", 'pytest; extra == "tests"']})


def test_the_install_asks_for_no_cpu_tensorflow():
    first, text = tpu_install.pip_commands(dry_run=True)
    names = {tpu_install.requirement_name(a) for a in first if not a.startswith("-")
             and "/" not in a and a not in ("install",)}
    assert "tensorflow-tpu" in names and "libtpu" in names and "keras" in names
    assert not names & {"tensorflow", "tensorflow-text"}
    assert "--no-deps" in text and any(a.startswith("tensorflow-text") for a in text)
    installs = tpu_install.pip_commands(dry_run=False)
    assert installs[-1][-3:] == ["--no-deps", "-e", str(ROOT)]
    assert all("-c" in c and str(tpu_install.CONSTRAINTS) in c for c in installs)


def test_a_right_resolution_passes():
    assert tpu_install.check_resolution(GOOD, TEXT) == []
    versions = tpu_install.resolved_versions(GOOD, TEXT)
    assert versions["tensorflow-tpu"] == "2.20.0" and versions["tensorflow-text"] == "2.20.1"


def test_a_second_tensorflow_fails():
    both = _report(("tensorflow", "2.20.0"), *[(m["name"], m["version"]) for m in
                                               (i["metadata"] for i in GOOD["install"])])
    problems = tpu_install.check_resolution(both, TEXT)
    assert any("one TensorFlow distribution" in p and "tensorflow 2.20.0" in p for p in problems)


def test_a_cpu_only_or_newer_resolution_fails():
    cpu = _report(("tensorflow", "2.21.0"), ("tensorboard", "2.21.0"))
    problems = " ".join(tpu_install.check_resolution(cpu, TEXT))
    assert "tensorflow-tpu 2.20 is not in the resolution" in problems
    assert "libtpu" in problems and "tensorboard 2.20" in problems
    newer_text = _report(("tensorflow-text", "2.21.1"))
    assert any("not 2.20.x" in p for p in tpu_install.check_resolution(GOOD, newer_text))


def test_tensorflow_text_with_another_dependency_fails():
    text = _report(("tensorflow-text", "2.20.2"), requires={"tensorflow-text": [
        "tensorflow<2.21,>=2.20.0", "sentencepiece"]})
    assert any("--no-deps drops" in p for p in tpu_install.check_resolution(GOOD, text))
