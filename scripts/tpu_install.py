"""Installs electra-tf with the TPU build of TensorFlow, or checks (pip's dry run) what it would
install.

    python scripts/tpu_install.py              # install into this interpreter's environment
    python scripts/tpu_install.py --dry-run    # resolve only: print the versions, check them

`pip install -e ".[tpu]"` alone cannot work: `tensorflow-tpu` installs the same `tensorflow`
Python package as the CPU wheel but under another distribution name, and both electra-tf and
`tensorflow-text` require the distribution named `tensorflow`, so pip would install the CPU wheel
next to the TPU one, and whichever is unpacked last wins. So the install runs in three steps
(docs/tpu.md explains the choice):

    1. every requirement of electra-tf except `tensorflow` and `tensorflow-text`, plus the `tpu`
       extra (tensorflow-tpu and its libtpu), with their dependencies;
    2. `tensorflow-text` without dependencies: its only one is `tensorflow`, which the TPU build
       provides (the check below fails if a new release adds another);
    3. electra-tf itself (editable) without dependencies: steps 1 and 2 installed them.

Versions come from setup.cfg (the single list of requirements) and
scripts/constraints-tf2.20.txt (the TensorFlow 2.20 stack), so this script never drifts from
them. `--dry-run` fails (exit 1) if the resolution stops giving tensorflow-tpu 2.20 with no
second TensorFlow distribution; tests/test_install_resolution.py runs it in CI.
"""

from __future__ import annotations

import argparse
import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "scripts" / "constraints-tf2.20.txt"
TPU_MINOR = "2.20."  # the newest TensorFlow with a TPU build
# Distributions that install the `tensorflow` Python package: at most one may be present.
TENSORFLOW_BUILDS = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-tpu",
                     "tf-nightly", "tf-nightly-cpu", "tf-nightly-tpu", "tensorflow-gpu"}
REPLACED = {"tensorflow", "tensorflow-text"}  # base requirements the TPU install handles itself


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def setup_requirements() -> tuple[list[str], dict[str, list[str]]]:
    """(install_requires, extras_require) as listed in setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    extras = {name: _lines(value) for name, value in parser["options.extras_require"].items()}
    return _lines(parser["options"]["install_requires"]), extras


def tpu_requirements() -> tuple[list[str], str]:
    """(step 1's requirements, step 2's tensorflow-text requirement)."""
    base, extras = setup_requirements()
    text = [r for r in base if requirement_name(r) == "tensorflow-text"]
    if len(text) != 1 or "tpu" not in extras:
        raise SystemExit("setup.cfg must list tensorflow-text in install_requires and have a "
                         "`tpu` extra")
    return [r for r in base if requirement_name(r) not in REPLACED] + extras["tpu"], text[0]


def pip_commands(dry_run: bool) -> list[list[str]]:
    """The pip argument lists of the three steps (two when resolving: electra-tf itself adds
    nothing)."""
    requirements, text = tpu_requirements()
    pip = [sys.executable, "-m", "pip", "install", "-c", str(CONSTRAINTS)]
    if dry_run:
        pip += ["--dry-run", "--ignore-installed", "--quiet", "--report", "-"]
    commands = [pip + requirements, pip + ["--no-deps", text]]
    if not dry_run:
        commands.append(pip + ["--no-deps", "-e", str(ROOT)])
    return commands


def _installs(report: dict) -> dict[str, dict]:
    return {canonical(item["metadata"]["name"]): item["metadata"] for item in report["install"]}


def _unconditional(metadata: dict) -> list[str]:
    """The requirements of a distribution that apply without an extra."""
    return [r for r in metadata.get("requires_dist") or [] if "extra ==" not in r]


def check_resolution(main_report: dict, text_report: dict) -> list[str]:
    """What is wrong with a resolution (empty when it is right): tensorflow-tpu 2.20 and no
    other TensorFlow build; tensorflow-text 2.20 whose only dependency is `tensorflow`."""
    problems = []
    installs = _installs(main_report)
    builds = sorted(f"{name} {installs[name]['version']}" for name in installs
                    if name in TENSORFLOW_BUILDS)
    tpu = installs.get("tensorflow-tpu")
    if tpu is None or not tpu["version"].startswith(TPU_MINOR):
        problems.append(f"tensorflow-tpu 2.20 is not in the resolution (TensorFlow builds: "
                        f"{', '.join(builds) or 'none'})")
    if len(builds) != 1:
        problems.append(f"expected one TensorFlow distribution, got: {', '.join(builds)}")
    if "libtpu" not in installs:
        problems.append("libtpu is not in the resolution")
    if not installs.get("tensorboard", {}).get("version", "").startswith("2.20."):
        problems.append("tensorboard 2.20 is not in the resolution")
    text = _installs(text_report).get("tensorflow-text")
    if text is None or not text["version"].startswith("2.20."):
        problems.append(f"tensorflow-text resolves to {text and text['version']}, not 2.20.x")
    elif [requirement_name(r) for r in _unconditional(text)] != ["tensorflow"]:
        problems.append(f"tensorflow-text {text['version']} requires more than tensorflow "
                        f"({_unconditional(text)}): installing it with --no-deps drops those")
    return problems


def check_installed() -> list[str]:
    """What is wrong with this environment's TensorFlow after the install (empty when right)."""
    from importlib import metadata

    builds = sorted({canonical(d.metadata["Name"]) for d in metadata.distributions()}
                    & TENSORFLOW_BUILDS)
    if builds != ["tensorflow-tpu"]:
        return [f"expected tensorflow-tpu as the only TensorFlow distribution, found: "
                f"{', '.join(builds) or 'none'}; remove them all (pip uninstall) and rerun"]
    return []


def resolve() -> tuple[dict, dict]:
    """pip's dry-run reports of steps 1 and 2, as for a fresh environment."""
    reports = []
    for command in pip_commands(dry_run=True):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"pip could not resolve the TPU install:\n{done.stderr[-3000:]}")
        reports.append(json.loads(done.stdout))
    return reports[0], reports[1]


def resolved_versions(main_report: dict, text_report: dict) -> dict[str, str]:
    versions = {**_installs(main_report), **_installs(text_report)}
    return {name: versions[name]["version"] for name in sorted(versions)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve with pip's dry run, print the versions and check them")
    args = parser.parse_args(argv)
    if args.dry_run:
        main_report, text_report = resolve()
        for name, version in resolved_versions(main_report, text_report).items():
            print(f"{name}=={version}")
        problems = check_resolution(main_report, text_report)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problems else 0
    for command in pip_commands(dry_run=False):
        print("+", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
    problems = check_installed()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
