"""End to end: the workflow on the smoke profile, run by Snakemake as a user would run it."""

import subprocess
import sys

import imageio.v3 as iio
import pytest

from promptlam.config import load_config
from promptlam.data.labelled import LabelledSubset
from promptlam.data.rollout_file import RolloutFile

from conftest import REPO

pytestmark = pytest.mark.workflow


def snakemake(workdir, *args):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--profile", str(REPO / "profiles/smoke"), "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    run = snakemake(workdir, "rollouts_all")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return workdir


def test_rollout_rules_build_every_artifact(smoke_run):
    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    for task in config.tasks:
        for split, count in (("train", config.rollouts.train_trajectories), ("eval", config.rollouts.eval_trajectories)):
            with RolloutFile(smoke_run / f"data/rollouts/{split}/{task}.h5") as f:
                assert (f.task, f.split, f.n_trajectories, f.resolution) == (task, split, count, 64)
                assert f["frames/distracted"].shape[0] == f.n_frames
            sheet = iio.imread(smoke_run / f"data/previews/{split}/{task}.png")
            assert sheet.ndim == 3 and sheet.shape[0] > 64
            assert (smoke_run / f"data/previews/{split}/{task}.gif").stat().st_size > 0
            assert (smoke_run / f"benchmarks/rollouts/{split}/{task}.tsv").read_text().startswith("s\t")
            assert (smoke_run / f"logs/rollouts/{split}/{task}.log").exists()
        with RolloutFile(smoke_run / f"data/rollouts/train/{task}.h5") as rollouts:
            for budget in config.rollouts.labelled_budgets:
                subset = LabelledSubset(smoke_run / f"data/labelled/{budget}/{task}.h5", rollouts)
                assert len(subset.trajectories) == budget


def test_rerun_has_nothing_to_do(smoke_run):
    run = snakemake(smoke_run, "rollouts_all", "--dry-run")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr
