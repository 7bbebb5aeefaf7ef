"""profiles/slurm against a real one-node SLURM 22.05: slurmctld, slurmd and slurmdbd on MariaDB,
started for the session by tests/slurm/cluster.sh (the `slurm_cluster` fixture), with the pinned
snakemake-executor-plugin-slurm. What one node cannot show: several nodes, real GPUs (the node's
two GRES "GPUs" are character devices that SLURM hands out; no CUDA behind them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from promptlam.cluster import (
    NoFit,
    Partition,
    Request,
    cluster_partitions,
    partitions_yaml,
    place,
    read_partitions,
    slurm_minutes,
    slurm_setup_error,
    unset_variables,
)
from promptlam.errors import UserError
from promptlam.slurm import first_word_states

from conftest import CLUSTER_SCRIPT, REPO

LAPO = "runs/lam/lapo/pixels/absolute/ld16/s0"
RUN = f"{LAPO}/metrics.json"
ROLLOUTS = ["data/rollouts/train/reach-v3.h5", "data/rollouts/train/drawer-close-v3.h5"]
PROFILE = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())


# ---- Without a cluster -------------------------------------------------------------------------


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


def test_a_partitions_file_is_read_as_the_plugin_reads_it_and_typos_are_one_line(tmp_path):
    path = tmp_path / "partitions.yaml"
    path.write_text("partitions:\n  cpu: {max_threads: 64, max_mem_mb: 256000, max_runtime: 2-00:00:00}\n"
                    "  gpu: {max_threads: 32, max_cpus_per_task: 16, max_gpu: 8, available_gpu_models: [h100]}\n")
    assert read_partitions(path) == [Partition("cpu", 64, 256000, 2880, 0, None), Partition("gpu", 16, None, None, 8, ("h100",))]
    for text, error in [("partitions:\n  cpu: {max_thread: 4}\n", "partitions.cpu: unknown key max_thread"),
                        ("partitions:\n  cpu: {max_mem_mb: 2.5}\n", "partitions.cpu.max_mem_mb: expected a whole number"),
                        ("partitions: [cpu]\n", "expected a mapping `partitions:`"),
                        ("partitions:\n  cpu: {max_gpu: [\n", "not valid YAML at line")]:
        path.write_text(text)
        with pytest.raises(UserError, match=error.replace("[", r"\[")):
            read_partitions(path)
    assert (slurm_minutes("infinite"), slurm_minutes("30:00"), slurm_minutes("2:00:00"),
            slurm_minutes("1-12:00:00")) == (None, 30, 120, 2160)


def test_a_job_goes_where_it_fits_and_is_capped_where_it_fits_nowhere():
    cpu, gpu = Partition("cpu", 16, 64000, 1440), Partition("gpu", 8, 128000, 720, 4, ("a100",))
    # fits: the snuggest partition that meets its needs, CPU jobs away from GPUs
    assert place(Request(4, 8000, 60), [cpu, gpu]).partition == "cpu"
    assert place(Request(4, 8000, 60, gpu=1), [cpu, gpu]).partition == "gpu"
    # too big: capped at the largest partition that meets its needs, each cap said
    found = place(Request(32, 96000, 2000), [cpu, gpu])
    assert found.partition == "cpu" and found.request == Request(16, 64000, 1440)
    assert found.capped == ("32 CPUs -> 16", "96000 MB -> 64000", "2000 min -> 1440")
    assert place(Request(12, 8000, 60, gpu=2), [cpu, gpu]).request.threads == 8
    # needs are not capped: GPUs, their model, a named partition
    for request in (Request(gpu=8), Request(gpu=1, gpu_model="h100"), Request(partition="debug")):
        with pytest.raises(NoFit, match="which no partition meets: cpu"):
            place(request, [cpu, gpu])


def test_job_states_are_read_by_their_first_word():
    assert first_word_states({"7": "CANCELLED by 0", "8": "RUNNING", "9": "", "10": "PREEMPTED"}) == {
        "7": "CANCELLED", "8": "RUNNING", "9": "", "10": "PREEMPTED"}
    # jobs SLURM does not requeue: a preemption ended them
    assert first_word_states({"10": "PREEMPTED"}, preempted_end=True) == {"10": "CANCELLED"}
    assert first_word_states(None) is None


def test_the_plan_says_where_each_rules_jobs_go(tmp_path):
    partitions = tmp_path / "partitions.yaml"
    partitions.write_text("partitions:\n  cpu: {max_threads: 4, max_mem_mb: 20000}\n  gpu: {max_threads: 4, max_gpu: 2}\n")
    plan = subprocess.run([sys.executable, "-m", "promptlam", "plan", "--config", str(REPO / "config.yaml"),
                           "--partitions", str(partitions), "--profile", str(REPO / "profiles/slurm"), "fig1"],
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    rows = {line.split()[0]: line for line in plan.stdout.split("Where the jobs go")[1].splitlines()[2:]
            if line.startswith("  ") and not line.startswith("    ")}
    assert rows["rollouts"].split()[1] == "20" and " cpu " in rows["rollouts"] and "as asked" in rows["rollouts"]
    lam = rows["lam"]  # config.yaml: use_gpus true, 16000 MB and 8 CPUs asked
    assert "1 GPU" in lam and " gpu " in lam and "8 CPUs -> 4" in lam
    assert "16 CPUs -> 4" in rows["evaluate_latent"] and "16000 MB" in rows["evaluate_latent"]


def test_a_run_without_the_slurm_environment_stops_before_any_job_in_one_line(tmp_path):
    environ = {**os.environ, "SNAKEMAKE_SLURM_PARTITIONS": str(tmp_path / "p.yaml")}
    environ.pop("PROMPTLAM_SLURM_ACCOUNT", None)
    run = snakemake(tmp_path, environ, "--dry-run", RUN)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == (
        "promptlam: error: profiles/slurm: environment variable PROMPTLAM_SLURM_ACCOUNT is not set "
        "(export PROMPTLAM_SLURM_ACCOUNT=<account>, or empty for your default account; docs/slurm.md)")


# ---- Helpers for the cluster -------------------------------------------------------------------


def node_partitions(tmp_path, **edits) -> Path:
    """A partitions file stating this node's real limits (as `promptlam slurm partitions` writes
    it), with ``edits`` (partition -> limits) applied."""
    data = yaml.safe_load(partitions_yaml(cluster_partitions()))
    for name, limits in edits.items():
        data["partitions"][name] = {**data["partitions"].get(name, {}), **limits}
    path = tmp_path / f"partitions-{len(list(tmp_path.glob('partitions-*')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cluster_env(tmp_path, partitions: Path | None = None, **extra) -> dict:
    environ = {**os.environ, "PROMPTLAM_SLURM_ACCOUNT": "promptlam-test",
               "SNAKEMAKE_SLURM_PARTITIONS": str(partitions or node_partitions(tmp_path)),
               "PROMPTLAM_SLURM_STATUS_SECONDS": "2", **extra}
    environ.pop("SLURM_JOB_ID", None)
    return environ


def command(workdir, *args) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--profile", str(REPO / "profiles/slurm"), "--directory", str(workdir),
            "--configfile", str(REPO / "profiles/smoke/smoke.yaml"), "--slurm-init-seconds-before-status-checks", "1",
            *args]


def snakemake(workdir, environ, *args, timeout=1800):
    return subprocess.run(command(workdir, *args), env=environ, capture_output=True, text=True, timeout=timeout)  # runaway limit


def jobs(workdir) -> list[dict[str, str]]:
    """Every SLURM job run from ``workdir`` (sacct), in submission order."""
    out = subprocess.run(["sacct", "--allocations", "--parsable2", "--noheader", "--starttime", "now-2days",
                          "--format=JobIDRaw,State,Partition,AllocTRES,Start,End,Comment,WorkDir"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(("id", "state", "partition", "tres", "start", "end", "comment", "workdir"), line.split("|")))
            for line in out.splitlines() if line.strip()]
    for row in rows:
        row["state"] = row["state"].split()[0]  # CANCELLED by 0
    here = os.path.realpath(workdir)
    return [row for row in rows if os.path.realpath(row["workdir"]) == here]


def submissions(workdir) -> list[str]:
    """The rule of each job submitted from ``workdir``."""
    return [job["comment"].removeprefix("rule_").split("_wildcards_")[0] for job in jobs(workdir)]


def queue(**select) -> list[dict[str, str]]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%T|%k|%Z"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    rows = [dict(zip(("id", "state", "comment", "workdir"), line.split("|"))) for line in out.splitlines() if line]
    return [row for row in rows if all(row[key] == value for key, value in select.items())]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def run_folder(comment: str) -> str:
    """runs/lam/... of a LAM job, from its comment (rule_lam_wildcards_{screen}_{method}_..._{seed})."""
    _, method, target, formulation, dim, seed = comment.split("_wildcards_")[1].split("_")
    return f"runs/lam/{method}/{target}/{formulation}/ld{dim}/s{seed}"


def checkpointed_lam_job(workdir, exclude=()):
    """A running LAM job of ``workdir`` that has written a checkpoint and not finished yet."""
    for job in queue(state="RUNNING"):
        if job["comment"].startswith("rule_lam_") and job["comment"] not in exclude:
            folder = Path(workdir, run_folder(job["comment"]))
            if (folder / "checkpoint.pt").exists() and not (folder / "metrics.json").exists():
                return job
    return None


def last_line(run) -> str:
    return run.stderr.strip().splitlines()[-1]


# ---- Comparing results -------------------------------------------------------------------------


def without_timing(value):
    """A JSON value less its timing fields (seconds, rates, what one process of a resumed run did)."""
    if isinstance(value, dict):
        return {key: without_timing(item) for key, item in value.items()
                if "second" not in key and not key.endswith("_this_process")}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def same_h5(a: Path, b: Path) -> bool:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names = []
        fa.visit(names.append)
        other = []
        fb.visit(other.append)
        if names != other or dict(fa.attrs) != dict(fb.attrs):
            return False
        return all(isinstance(fa[name], h5py.Group) or (np.array_equal(fa[name][()], fb[name][()])
                                                        and dict(fa[name].attrs) == dict(fb[name].attrs))
                   for name in names)


def same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_tensors, a, b))
    return a == b


def same_result(a: Path, b: Path) -> bool:
    """Whether two result files hold the same thing: the same bytes, but for JSON timing fields,
    HDF5's object timestamps and a torch checkpoint's zip layout (figures: the same bytes)."""
    if a.suffix == ".json":
        return without_timing(json.loads(a.read_text())) == without_timing(json.loads(b.read_text()))
    if a.suffix == ".h5":
        return same_h5(a, b)
    if a.suffix == ".pt":
        return same_tensors(torch.load(a, weights_only=True), torch.load(b, weights_only=True))
    return a.read_bytes() == b.read_bytes()


def results(workdir) -> dict[str, Path]:
    root = Path(workdir)
    return {str(path.relative_to(root)): path for folder in ("data", "runs", "figures", "models")
            for path in (root / folder).rglob("*") if path.is_file() and path.name != ".snakemake_timestamp"}


def differing_results(workdir, reference) -> list[str]:
    """The result files of ``workdir`` that ``reference`` (a superset) holds otherwise."""
    ours, theirs = results(workdir), results(reference)
    assert sorted(set(ours) - set(theirs)) == []
    return [name for name in sorted(ours) if not same_result(ours[name], theirs[name])]


# ---- On the cluster ----------------------------------------------------------------------------


def test_a_partition_the_cluster_lacks_stops_before_any_job_in_one_line(tmp_path, slurm_cluster):
    partitions = tmp_path / "partitions.yaml"
    partitions.write_bytes((REPO / "profiles/slurm/partitions.example.yaml").read_bytes())  # cpu, gpu
    run = snakemake(tmp_path, cluster_env(tmp_path, partitions), RUN)
    assert run.returncode != 0
    assert last_line(run) == (f"promptlam: error: {partitions}: partition cpu is not on this cluster "
                              f"(sinfo lists gpu, main)")
    assert jobs(tmp_path) == []


def test_a_partitions_file_promising_more_cpus_than_the_nodes_have_stops_in_one_line(tmp_path, slurm_cluster):
    partitions = node_partitions(tmp_path, main={"max_threads": 64})
    run = snakemake(tmp_path, cluster_env(tmp_path, partitions), "--dry-run", RUN)
    assert run.returncode != 0
    assert last_line(run) == (f"promptlam: error: {partitions}: partitions.main.max_threads is 64, but its largest "
                              f"node has {os.cpu_count()} CPUs (sinfo): a job sized to it would pend for ever; lower it")


def test_an_account_that_does_not_exist_stops_before_any_job_in_one_line(tmp_path, slurm_cluster):
    run = snakemake(tmp_path, cluster_env(tmp_path, PROMPTLAM_SLURM_ACCOUNT="nobody"), RUN)
    assert run.returncode != 0
    assert last_line(run) == ("promptlam: error: PROMPTLAM_SLURM_ACCOUNT=nobody: no such account for user root on "
                              "this cluster (sacctmgr lists promptlam-test, root)")
    assert jobs(tmp_path) == []


def test_a_job_that_fits_no_partition_stops_the_run_before_it_submits_anything(tmp_path, slurm_cluster):
    gpus = tmp_path / "gpus.yaml"
    gpus.write_text("use_gpus: true\n")  # LAM jobs ask for a GPU; this partitions file has none
    partitions = node_partitions(tmp_path, main={"max_gpu": 0}, gpu={"max_gpu": 0})
    run = snakemake(tmp_path, cluster_env(tmp_path, partitions), "--configfile", str(REPO / "profiles/smoke/smoke.yaml"),
                    str(gpus), "--", RUN)
    assert run.returncode != 0, run.stdout[-2000:]
    line = last_line(run)
    assert line.startswith(f"promptlam: error: rule lam ({RUN}, {LAPO}/model.safetensors) asks 8 CPUs, 16000 MB, ")
    assert "1 GPU, which no partition meets: main (" in line, line
    assert line.endswith(f"({partitions}): nothing was submitted"), line
    assert jobs(tmp_path) == []


def test_the_partitions_command_states_this_clusters_limits(tmp_path, slurm_cluster):
    out = tmp_path / "partitions.yaml"
    done = subprocess.run([sys.executable, "-m", "promptlam", "slurm", "partitions", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 - 2048  # cluster.sh's RealMemory
    assert {p.name: p for p in read_partitions(out)} == {
        "main": Partition("main", os.cpu_count(), memory, None, 2, None),
        "gpu": Partition("gpu", os.cpu_count(), memory, None, 2, None)}
    assert snakemake(tmp_path, cluster_env(tmp_path, out), "--dry-run", RUN).returncode == 0


class Chaos(threading.Thread):
    """During a run: scancel one running LAM job after its first checkpoint, then fail the node
    (slurmd and every job process killed, back 15 s later) under another."""

    def __init__(self, workdir):
        super().__init__(daemon=True)
        self.workdir, self.cancelled, self.failed, self.error = workdir, None, None, None

    def run(self):
        try:
            self.cancelled = wait_for(lambda: checkpointed_lam_job(self.workdir), 1500, "a checkpointed LAM job")
            subprocess.run(["scancel", self.cancelled["id"]], check=True, timeout=60)
            self.failed = wait_for(lambda: checkpointed_lam_job(self.workdir, exclude={self.cancelled["comment"]}),
                                   1500, "a second checkpointed LAM job")
            self.failed["running"] = [job["id"] for job in queue(state="RUNNING")]
            subprocess.run([str(CLUSTER_SCRIPT), "slurmd-stop"], check=True, timeout=120)
            time.sleep(15)  # past SlurmdTimeout: the node is down
            subprocess.run([str(CLUSTER_SCRIPT), "slurmd-start"], check=True, timeout=120)
        except Exception as error:  # reported by the test
            self.error = error


@pytest.mark.workflow
def test_fig1_runs_to_the_end_through_a_scancel_and_a_node_failure_with_the_bytes_of_the_smoke_run(
        tmp_path, slurm_cluster, smoke_run):
    chaos = Chaos(tmp_path)
    chaos.start()
    # the node's real limits, the profile's threads and memory: nothing overridden
    run = snakemake(tmp_path, cluster_env(tmp_path), "figures/fig1.pdf")
    chaos.join(timeout=60)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert chaos.error is None and chaos.cancelled and chaos.failed, chaos.error
    output = run.stdout + run.stderr
    # every job asking more than the node has was capped, and said so once per rule
    assert f"promptlam: rule lam, attempt 1: asks more than partition main allows" in output \
        or "promptlam: rule lam, attempt 1: asks more than partition gpu allows" in output
    assert "No suitable partition found" not in output
    ran = jobs(tmp_path)
    by_comment = {}
    for job in ran:
        by_comment.setdefault(job["comment"], []).append(job)
    # the scancelled LAM job and the jobs on the failed node were each submitted again, once, and
    # resumed from their checkpoints; no other job ran twice
    cancelled = by_comment[chaos.cancelled["comment"]]
    assert [job["state"] for job in cancelled] == ["CANCELLED", "COMPLETED"]
    failed = [job for job in ran if job["state"] == "NODE_FAIL"]  # (a job may have just finished instead)
    assert chaos.failed["id"] in {job["id"] for job in failed} <= set(chaos.failed["running"])
    for job in failed:
        assert [other["state"] for other in by_comment[job["comment"]]] == ["NODE_FAIL", "COMPLETED"]
    assert all(len(runs) == 1 for comment, runs in by_comment.items()
               if comment not in {chaos.cancelled["comment"], *(job["comment"] for job in failed)})
    for job in (chaos.cancelled, chaos.failed):
        log = Path(tmp_path, "logs", run_folder(job["comment"]).removeprefix("runs/") + ".log").read_text()
        assert "promptlam: resuming from" in log, log[-2000:]
    # and every result is what `make smoke` builds (smoke.yaml's torch_threads: the same bytes
    # with any thread count)
    assert differing_results(tmp_path, smoke_run) == []


@pytest.mark.workflow
def test_a_killed_workflow_restarted_cancels_what_it_left_and_redoes_it_once(tmp_path, slurm_cluster, smoke_run):
    """Also: a job asking a GPU goes to the GPU partition, and SLURM gives it one of the node's."""
    gpus = tmp_path / "gpus.yaml"
    gpus.write_text("use_gpus: true\n")
    environ = cluster_env(tmp_path, node_partitions(tmp_path, main={"max_gpu": 0}))
    args = ["--configfile", str(REPO / "profiles/smoke/smoke.yaml"), str(gpus), "--", RUN]
    first = subprocess.Popen(command(tmp_path, *args), env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        left = wait_for(lambda: checkpointed_lam_job(tmp_path), 600, "a checkpointed LAM job")
    finally:
        first.kill()  # as a power loss or `kill -9` would: nothing is cancelled
        first.wait()
    assert queue(comment=left["comment"])  # still running without its workflow
    unlock = snakemake(tmp_path, environ, "--unlock", *args)  # what Snakemake asks after a kill
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = snakemake(tmp_path, environ, *args)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (f"promptlam: cancelled SLURM job {left['id']}, rule lam (_lapo_pixels_absolute_16_0), running: left by "
            "an earlier run of this directory that was killed; this run redoes it") in rerun.stderr
    lam = [job for job in jobs(tmp_path) if job["comment"] == left["comment"]]
    assert [job["state"] for job in lam] == ["CANCELLED", "COMPLETED"]
    assert lam[0]["end"] <= lam[1]["start"]  # never two jobs writing one run
    assert lam[1]["partition"] == "gpu" and "gres/gpu=1" in lam[1]["tres"]
    log = Path(tmp_path, "logs/lam/lapo/pixels/absolute/ld16/s0.log").read_text()
    assert "promptlam: resuming from" in log and "this job was given GPU 0" in log
    for name in ("metrics.json", "model.safetensors", "checkpoint.pt", "metrics.csv"):
        assert same_result(tmp_path / LAPO / name, smoke_run / LAPO / name), name
    assert not list(tmp_path.glob(f"{LAPO}/*.tmp*"))


def test_sigterm_ends_the_run_within_a_minute_and_cancels_its_running_and_pending_jobs(tmp_path, slurm_cluster):
    # one of the two CPUs taken: one rollout job runs, the other pends
    blocker = subprocess.run(["sbatch", "--parsable", "--account=promptlam-test", "--cpus-per-task=1", "--mem=500",
                              "--output=/dev/null", "--wrap=sleep 600"], capture_output=True, text=True,
                             check=True, cwd="/tmp").stdout.strip()
    try:
        run = subprocess.Popen(command(tmp_path, *ROLLOUTS), env=cluster_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        here = os.path.realpath(tmp_path)
        wait_for(lambda: sorted(job["state"] for job in queue(workdir=here)) == ["PENDING", "RUNNING"], 300,
                 "one running and one pending job")
        began = time.monotonic()
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
        assert time.monotonic() - began < 60
    finally:
        subprocess.run(["scancel", blocker], timeout=60)
    assert run.returncode != 0
    assert queue(workdir=here) == []
    lines = [line for line in stderr.splitlines() if line.startswith("promptlam: cancelled SLURM job")]
    assert sorted(line.split(", ")[2].split(":")[0] for line in lines) == ["pending", "running"]
    assert all("rule rollouts (train_" in line and "the workflow was stopped; a rerun redoes it" in line
               for line in lines)
    assert "promptlam: SIGTERM: stopping; 2 SLURM jobs of this run in the queue" in stderr
    rerun = snakemake(tmp_path, cluster_env(tmp_path), *ROLLOUTS)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert all((tmp_path / path).exists() for path in ROLLOUTS)


@pytest.mark.workflow
def test_a_preempted_job_is_submitted_again_and_resumes(tmp_path, slurm_cluster):
    """A job of a partition of a higher PriorityTier (as a site's priority queue) preempts the
    running LAM job; SLURM (PreemptMode=REQUEUE) does not requeue it, since the profile says
    no-requeue, so the run submits it again."""
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["scontrol", "create", "PartitionName=urgent", f"Nodes={node}", "PriorityTier=10"], check=True)
    try:
        run = subprocess.Popen(command(tmp_path, RUN), env=cluster_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        lam = wait_for(lambda: checkpointed_lam_job(tmp_path), 600, "a checkpointed LAM job")
        subprocess.run(["sbatch", "--account=promptlam-test", "--partition=urgent", f"--cpus-per-task={os.cpu_count()}",
                        "--mem=500", "--output=/dev/null", "--wrap=sleep 5"], check=True, cwd="/tmp", capture_output=True)
        _, stderr = run.communicate(timeout=900)
    finally:
        wait_for(lambda: not queue(), 120, "an empty queue")
        subprocess.run(["scontrol", "delete", "PartitionName=urgent"], check=True)
    assert run.returncode == 0, stderr[-3000:]
    assert f"promptlam: SLURM job {lam['id']} was preempted: with no-requeue SLURM does not run it again; " \
           "it is submitted again" in stderr
    assert [job["state"] for job in jobs(tmp_path) if job["comment"] == lam["comment"]] == ["PREEMPTED", "COMPLETED"]
    assert "promptlam: resuming from" in Path(tmp_path, "logs/lam/lapo/pixels/absolute/ld16/s0.log").read_text()


@pytest.fixture
def cluster_without_accounting(slurm_cluster):
    """The same node with accounting off (no slurmdbd: sacct and sacctmgr fail), as some sites
    run; accounting is back on afterwards."""
    def restart(*flags):
        for step in (["stop"], ["start", *flags]):
            done = subprocess.run([str(slurm_cluster), *step], capture_output=True, text=True, timeout=300)
            assert done.returncode == 0 or step == ["stop"], done.stderr
    restart("--no-accounting")
    yield
    restart()


@pytest.mark.workflow
def test_without_accounting_the_profile_runs_on_squeue_alone(tmp_path, cluster_without_accounting):
    refused = snakemake(tmp_path, cluster_env(tmp_path), "--dry-run", RUN)
    assert last_line(refused) == (
        "promptlam: error: PROMPTLAM_SLURM_ACCOUNT=promptlam-test: this cluster keeps no accounting "
        "(AccountingStorageType none), so the executor cannot check the account and refuses it; "
        "export PROMPTLAM_SLURM_ACCOUNT= (empty)")
    run = snakemake(tmp_path, cluster_env(tmp_path, PROMPTLAM_SLURM_ACCOUNT=""), RUN, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "promptlam: this cluster keeps no accounting (sacct cannot answer): job states are read with squeue" in run.stderr
    assert (tmp_path / RUN).exists()
