"""The README's two commands are the project's contract: keep .ci/run in step with them.
The README stays short, and no relative link of the documentation points nowhere."""
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
    text = (ROOT / "docs" / "data-formats.md").read_text()
    section = text.split("\n## Malformed input\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| case ")]


def test_malformed_input_table_names_tests_that_exist():
    """Every row of the "Malformed input" table of docs/data-formats.md names at least one test,
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


README_MAX_CHARS = 10_000
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def documentation_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def relative_links(path: Path):
    """The targets of the Markdown links of ``path`` outside code, less http(s), mail and #anchor links,
    each without its #anchor."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # fenced code blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    targets = []
    for target in LINK.findall(text):
        if re.match(r"(https?|mailto):", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_readme_is_short():
    """For users: what xmc is, install, a quick tour, links. Counted in bytes, as `wc -c` does."""
    size = len((ROOT / "README.md").read_bytes())
    assert size < README_MAX_CHARS, f"README.md has {size:,} bytes; keep it under {README_MAX_CHARS:,}"


def test_documentation_pages_exist():
    for name in ("models", "data-formats", "cli", "distributed", "model-directory", "layout"):
        assert (ROOT / "docs" / f"{name}.md").is_file(), name


def test_relative_links_point_to_files_that_exist():
    checked = 0
    for path in documentation_files():
        for target in relative_links(path):
            resolved = (path.parent / target).resolve()
            assert resolved.exists(), f"{path.relative_to(ROOT)}: link to {target} ({resolved}) points nowhere"
            checked += 1
    assert checked >= 10, "the documentation's links were not found"


def test_no_example_writes_its_output_into_the_model_directory():
    """A prediction written into a model directory is a file the model does not own: examples keep them apart."""
    offenders = []
    for path in documentation_files():
        for line in re.split(r"\n|&&", path.read_text()):
            model_dir = re.search(r"--model-dir\s+(\S+?)/?(?:\s|$)", line)
            out = re.search(r"--(?:out|json)\s+(\S+)", line)
            if model_dir and out and out.group(1).startswith(model_dir.group(1) + "/"):
                offenders.append(f"{path.name}: {line.strip()}")
    assert not offenders, offenders
