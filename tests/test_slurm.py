"""profiles/slurm through snakemake-executor-plugin-slurm, against stand-ins for the SLURM commands
(tests/slurm/: sbatch runs each job in the background on this machine and records its flags)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from promptlam.cluster import slurm_setup_error, unset_variables

from conftest import REPO

STANDINS = REPO / "tests/slurm"
RUN = "runs/lam/lapo/pixels/absolute/ld16/s0/metrics.json"


def test_the_slurm_setup_check_names_what_to_set(tmp_path):
    profile = {"slurm_account": "$PROMPTLAM_SLURM_ACCOUNT", "mem_mb": "2000 * attempt"}
    assert slurm_setup_error({"mem_mb": "2000"}, {}) is None  # not a SLURM run
    assert unset_variables(profile, {}) == ["PROMPTLAM_SLURM_ACCOUNT"]
    assert "PROMPTLAM_SLURM_ACCOUNT is not set" in slurm_setup_error(profile, {})
    assert "SNAKEMAKE_SLURM_PARTITIONS is not set" in slurm_setup_error(profile, {"PROMPTLAM_SLURM_ACCOUNT": ""})
    missing = slurm_setup_error(profile, {"PROMPTLAM_SLURM_ACCOUNT": "a",
                                          "SNAKEMAKE_SLURM_PARTITIONS": str(tmp_path / "none.yaml")})
    assert "none.yaml: no such file" in missing
    partitions = tmp_path / "partitions.yaml"
    partitions.write_text("partitions: {cpu: {}}\n")
    assert slurm_setup_error(profile, {"PROMPTLAM_SLURM_ACCOUNT": "a", "SNAKEMAKE_SLURM_PARTITIONS": str(partitions)}) is None


def cluster_env(tmp_path, **extra):
    state = tmp_path / "cluster"
    state.mkdir(exist_ok=True)
    partitions = tmp_path / "partitions.yaml"
    shutil.copy(REPO / "profiles/slurm/partitions.example.yaml", partitions)
    environ = {**os.environ, "PATH": f"{STANDINS}:{os.environ['PATH']}", "FAKE_SLURM": str(state),
               "PROMPTLAM_SLURM_ACCOUNT": "promptlam-test", "SNAKEMAKE_SLURM_PARTITIONS": str(partitions), **extra}
    environ.pop("SLURM_JOB_ID", None)
    return environ


def snakemake(workdir, environ, *args):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--profile", str(REPO / "profiles/slurm"), "--directory", str(workdir),
               "--configfile", str(REPO / "profiles/smoke/smoke.yaml"), *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=1800)  # runaway limit


def submissions(environ):
    """(rule, flags) of every sbatch call, in submission order."""
    jobs = sorted(Path(environ["FAKE_SLURM"], "jobs").glob("*.args"), key=lambda path: int(path.stem))
    calls = []
    for path in jobs:
        args = path.read_bytes().decode().split("\0")[:-1]  # sbatch's arguments, NUL-separated
        comment = args[args.index("--comment") + 1]
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        calls.append((rule, " ".join(arg for arg in args if not arg.startswith("--wrap="))))
    return calls


def test_a_run_without_the_slurm_environment_stops_before_any_job_in_one_line(tmp_path):
    environ = cluster_env(tmp_path)
    del environ["PROMPTLAM_SLURM_ACCOUNT"]
    run = snakemake(tmp_path, environ, "--dry-run", RUN)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == (
        "promptlam: error: profiles/slurm: environment variable PROMPTLAM_SLURM_ACCOUNT is not set "
        "(export PROMPTLAM_SLURM_ACCOUNT=<account>, or empty for your default account; docs/slurm.md)")
    assert not (tmp_path / "cluster/jobs").exists()


def test_a_cpu_only_config_asks_for_no_gpu(tmp_path):
    run = snakemake(tmp_path, cluster_env(tmp_path), "--dry-run", RUN, "data/targets/tiny-clip/reach-v3.h5")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rule lam:" in run.stdout and "gpu=1" not in run.stdout  # smoke.yaml: use_gpus false


@pytest.mark.workflow
def test_jobs_are_submitted_with_their_resources_and_a_killed_job_is_resubmitted_with_more_memory(tmp_path):
    gpus = tmp_path / "gpus.yaml"
    gpus.write_text("use_gpus: true\n")
    environ = cluster_env(tmp_path, FAKE_SLURM_KILL="rollouts:2")
    run = snakemake(tmp_path, environ, "--configfile", str(REPO / "profiles/smoke/smoke.yaml"), str(gpus),
                    "--slurm-init-seconds-before-status-checks", "1", RUN, "data/targets/tiny-clip/reach-v3.h5")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / RUN).exists() and (tmp_path / "data/targets/tiny-clip/reach-v3.h5").exists()
    calls = submissions(environ)
    rules = [rule for rule, _ in calls]
    # the tiny model is built on the submit host (localrules); the killed rollouts job is sent again
    assert sorted(rules) == ["lam", "rollouts", "rollouts", "rollouts", "target"]
    assert all("-A promptlam-test" in flags for _, flags in calls)
    rollouts = [flags for rule, flags in calls if rule == "rollouts"]
    assert all("-p cpu" in flags and "--gpus" not in flags and "-t 240" in flags for flags in rollouts)
    assert sorted("--mem 4000" in flags for flags in rollouts) == [False, False, True]  # 2000 MB, then 4000
    lam = next(flags for rule, flags in calls if rule == "lam")
    assert "-p gpu" in lam and "--gpus=1" in lam and "--mem 16000" in lam
    target = next(flags for rule, flags in calls if rule == "target")  # a tiny model: no GPU
    assert "-p cpu" in target and "--gpus" not in target
    assert "OUT_OF_MEMORY" in run.stderr + run.stdout
