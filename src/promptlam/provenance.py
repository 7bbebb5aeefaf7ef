"""What made an artifact: package versions and the git commit, stored beside its config."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

import promptlam

TRACKED_PACKAGES = (
    "numpy", "h5py", "mujoco", "metaworld", "gymnasium", "torch", "transformers", "accelerate",
    "bitsandbytes",
)


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


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names``; packages that are not installed are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def provenance() -> dict[str, Any]:
    """The record every artifact carries next to its config."""
    return {
        "promptlam_version": promptlam.__version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
