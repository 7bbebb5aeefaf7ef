"""The workflow's own files stay formatted (snakefmt) and lint-clean."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


def test_rule_files_are_formatted_by_snakefmt():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    run = subprocess.run([str(snakefmt), "--check", *map(str, RULE_FILES)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_snakemake_lint_finds_nothing(tmp_path):
    run = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"),
                          "--profile", str(REPO / "profiles/smoke"), "--directory", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    findings = re.findall(r"^    \* (.+?):?$", output, re.MULTILINE)
    assert findings == [] and "Congratulations, your workflow is in a good condition!" in output, output[-3000:]
