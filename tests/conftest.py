"""Shared fixtures: a tiny config and one small rollout file collected once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

# Nothing may reach the network at test time: make any hub access fail at once.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

from promptlam.config import Config, validate_config

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "seed": 3,
    "tasks": ["reach-v3"],
    "render": {"resolution": 64},
    "distractors": {"procedural": {"train_videos": 3, "eval_videos": 2, "length": 12}},
    "rollouts": {
        "train_trajectories": 4,
        "eval_trajectories": 1,
        "episode": {"max_steps": 12, "steps_after_success": 2},
        "labelled_budgets": [1, 2, 4],
    },
}


def tiny_config(**overrides) -> Config:
    """The tiny test config, with top-level sections replaced or extended by ``overrides``."""
    data = {**TINY}
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return validate_config(data, "tiny test config")


@pytest.fixture(scope="session")
def config() -> Config:
    return tiny_config()


@pytest.fixture(scope="session")
def rollout_path(tmp_path_factory, config) -> Path:
    """A train rollout file of reach-v3 (4 trajectories of up to 13 frames at 64 px)."""
    from promptlam.data.collect import collect

    path = tmp_path_factory.mktemp("rollouts") / "reach-v3.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collect(config, "reach-v3", "train", path)
    return path


# ---- The smoke profile end to end (tests/test_workflow.py; tests/test_slurm.py compares with it) --


def smoke_snakemake(workdir, *args):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--profile", str(REPO / "profiles/smoke"), "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)  # runaway limit, not a benchmark


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Everything the smoke profile defines, built once per session as `make smoke` builds it."""
    workdir = tmp_path_factory.mktemp("smoke")
    run = smoke_snakemake(workdir)  # the default target
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (workdir / "snakemake-output.txt").write_text(run.stdout + run.stderr)
    return workdir


# ---- A real SLURM cluster (tests/slurm/cluster.sh) ---------------------------------------------

CLUSTER_SCRIPT = REPO / "tests/slurm/cluster.sh"


def _cluster_unavailable() -> str | None:
    """Why no one-node SLURM can be started here, or None."""
    if os.geteuid() != 0:
        return "not root (tests/slurm/cluster.sh starts system daemons)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install slurm-wlm slurmdbd munge mariadb-server"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node SLURM 22.05 with accounting on this machine for the session, stopped after it
    (daemons ended, /etc/slurm as before). Skips in one line where it cannot start, except under
    CI=true, where that fails the run."""
    reason = _cluster_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and no SLURM cluster can start here: {reason}")
        pytest.skip(f"no SLURM cluster: {reason}")
    for command in ("install", "stop", "start"):  # stop: the leftovers of an aborted session
        done = subprocess.run([str(CLUSTER_SCRIPT), command], capture_output=True, text=True, timeout=600)
        if done.returncode != 0 and command != "stop":
            pytest.fail(f"tests/slurm/cluster.sh {command} failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    yield CLUSTER_SCRIPT
    subprocess.run([str(CLUSTER_SCRIPT), "stop"], capture_output=True, text=True, timeout=300)
