"""What made an artifact: every installed distribution, the interpreter and the git commit,
stored beside its config."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import promptlam


@functools.cache
def git_commit() -> str:
    """The commit of the promptlam checkout (with ``-dirty`` if it has changes), or ``unknown``."""
    root = Path(promptlam.__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.cache
def installed_distributions() -> dict[str, str]:
    """``name -> version`` of every distribution importable here (names normalized as in PEP 503,
    sorted). Where two copies of one distribution are on ``sys.path``, the first (the one Python
    imports) wins. Machines with the same lock give the same mapping."""
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return dict(sorted(versions.items()))


def provenance() -> dict[str, Any]:
    """The record every artifact carries next to its config."""
    return {
        "promptlam_version": promptlam.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": dict(installed_distributions()),  # a copy: callers may add to the record
    }
