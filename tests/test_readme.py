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


def malformed_input_rows():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Malformed input\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| case ")]


def test_malformed_input_table_names_tests_that_exist():
    """Every row of the README's "Malformed input" table names at least one test,
    and every named test is defined in the named file (so the table cannot rot)."""
    rows = malformed_input_rows()
    assert len(rows) >= 25
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), row
        refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", cells[2])
        assert refs, f"row without a test: {row}"
        for path, name in refs:
            source = (ROOT / path).read_text()
            assert re.search(rf"^def {name}\(", source, flags=re.M), f"{path} has no test {name} ({row[:60]})"
