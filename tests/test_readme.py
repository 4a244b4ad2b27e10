"""The README starts with the two set-up commands, and CI runs the second one."""

import re
from pathlib import Path

from electra_tf.config import load_config
from electra_tf.finetune.config import load_spec

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)[:2]


def test_readme_starts_with_quickstart_and_test_commands():
    quickstart, tests = _readme_commands()
    assert "electra-tf pretrain --config configs/quickstart.yaml" in quickstart
    assert "--demo" in quickstart and (ROOT / "configs" / "quickstart.yaml").exists()
    # ... then fine-tunes the quickstart encoder next to a random-init control
    finetune = re.search(r"electra-tf finetune --config (\S+) --compare-random", quickstart)
    assert finetune, quickstart
    spec = load_spec(str(ROOT / finetune[1]))
    assert spec.init == load_config(str(ROOT / "configs" / "quickstart.yaml")).train.run_dir
    assert "pytest" in tests and '".[test]"' in tests
    body = (ROOT / "README.md").read_text().split("```")[0]
    assert body.strip() == "# electra-tf", "nothing may come before the two commands"


def test_ci_runs_the_readme_test_command():
    _, tests = _readme_commands()
    assert tests.strip() in (ROOT / ".ci" / "run").read_text()
