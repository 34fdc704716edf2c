"""README.md and docs/: the two opening commands, the Python quickstart run at tiny size, links
that resolve, tables that stay readable, and no lab notebook (dates, issue numbers, verdicts)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.quickstart import SIZES, TINY  # the quickstart's sizes line, and the tiny one run here

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAIN_JOB = "bash setup.sh && .venv/bin/bap-train --flagfile=flags/pocket.cfg --workdir=runs/pocket"
TEST_COMMAND = "bash setup.sh test && .venv/bin/ruff check . && .venv/bin/python -m pytest -q -n 2 --dist loadfile"
MAX_CELL = 200


def blocks(language, path=README):
    """The fenced code blocks of ``language`` in ``path``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", path.read_text(), re.MULTILINE | re.DOTALL)


def test_readme_opens_with_the_main_job_then_the_test_command():
    text = README.read_text()
    commands = [block.strip() for block in blocks("bash")]
    assert commands[:2] == [MAIN_JOB, TEST_COMMAND]
    # Nothing but the title and prose comes before them.
    assert text.index(MAIN_JOB) < text.index("```python") and text.index("## ") > text.index(TEST_COMMAND)


def test_ci_runs_the_readme_test_command_and_the_flagfile_quotes_the_main_job():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == TEST_COMMAND
    assert f"#   {MAIN_JOB}" in (ROOT / "flags" / "pocket.cfg").read_text().splitlines()


@pytest.mark.slow
def test_the_python_quickstart_runs_as_written_at_tiny_size(tmp_path):
    (code,) = blocks("python")
    assert len(SIZES.findall(code)) == 1, "the quickstart's sizes line changed: update SIZES and TINY"
    script = tmp_path / "quickstart.py"
    script.write_text(SIZES.sub(TINY, code))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "kept per domain:" in out and "union model:" in out and "of its MACs" in out
    assert "union model, test accuracy: {'digits':" in out
    for domain in ("digits", "letters", "textures", "photo_digits"):
        assert f"runs/quickstart/android_float32.tflite {domain} accuracy:" in out
    assert (tmp_path / "runs" / "quickstart" / "android_float32.tflite").is_file()


def test_every_relative_link_of_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken


def test_tables_stay_readable():
    long_cells = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            if line.startswith("|"):
                long_cells += [f"{page.name}: {cell.strip()[:60]}..."
                               for cell in line.split("|") if len(cell.strip()) > MAX_CELL]
    assert not long_cells


def test_no_lab_notebook_in_the_readme_and_docs():
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{page.name} holds a date"
        assert not re.search(r"\bissues? #?\d+", text, re.IGNORECASE), f"{page.name} holds an issue number"
        assert not re.search(r"\*\*(met|missed)\*\*|\btargets?:", text, re.IGNORECASE), f"{page.name} holds a verdict"
