"""The README's two commands are the project's contract: keep .ci/run in step with them."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)[:2]


def test_readme_starts_with_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    main_job, test_command = commands
    for step in ("xmc generate", "xmc build-tree", "xmc train", "xmc predict", "xmc evaluate"):
        assert step in main_job
    assert "pytest" in test_command


def test_ci_runs_the_readme_test_command():
    test_command = readme_commands()[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
