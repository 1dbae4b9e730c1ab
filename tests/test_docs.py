"""Generated docs are what their generator writes today: docs/cli.md from the parser, and
docs/results/*.md from benchmarks/results/ (a stale page fails here, not in a reader's hands)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_generated_pages_and_cli_reference_are_up_to_date():
    proc = subprocess.run([sys.executable, "benchmarks/make_pages.py", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "up to date" in proc.stdout


def test_cli_reference_names_every_command_and_method_option():
    from synthset.clidoc import cli_reference
    from synthset.methods import METHODS
    text = cli_reference()
    for command in ("datasets", "methods", "recipes", "distill", "evaluate", "train", "show",
                    "export", "report", "compare"):
        assert f"## synthset {command}" in text
    for flag in ("--recipe", "--max-time", "--factor", "--set-index", "--attention-at", "--outer-loop"):
        assert f"`{flag}`" in text, flag
    for name in METHODS.names():
        if METHODS.get(name).kind == "learned":
            assert f"## distill --method {name}" in text


def test_readme_is_short_and_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 15_500 and readme.count("\n") <= 260
    import re
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target
