"""The GPU pool (promptlam.devices), with fake device ids on a CPU machine."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from promptlam.devices import claim_device, pool_devices


def test_the_pool_is_the_named_devices_or_nothing_when_the_job_already_has_its_own(tmp_path, monkeypatch):
    assert pool_devices({"PROMPTLAM_GPUS": "0, 2,3", "CUDA_VISIBLE_DEVICES": "1"}) == ["0", "2", "3"]
    assert pool_devices({"CUDA_VISIBLE_DEVICES": "1"}) == []
    assert pool_devices({"SLURM_JOB_ID": "17"}) == []
    # torchrun / accelerate launch: the launcher's ranks choose their GPUs, even with a pool named
    assert pool_devices({"PROMPTLAM_GPUS": "0,1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}) == []
    fake = tmp_path / "nvidia-smi"  # lists three GPUs, then one
    fake.write_text("#!/bin/sh\nfor i in $(seq 0 $(( ${FAKE_GPUS} - 1 ))); do echo \"GPU $i: NVIDIA H200 (UUID: GPU-$i)\"; done\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")  # where subprocess finds the program
    monkeypatch.setenv("FAKE_GPUS", "3")
    assert pool_devices({}) == ["0", "1", "2"]
    monkeypatch.setenv("FAKE_GPUS", "1")
    assert pool_devices({}) == []  # one GPU: nothing to share out


HOLDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from promptlam.devices import claim_gpu

    device = claim_gpu()
    marks = Path(sys.argv[1])
    mine = marks / f"{device}-{os.getpid()}"
    others = [p.name for p in marks.glob(f"{device}-*")]
    mine.touch()
    time.sleep(float(sys.argv[2]))
    mine.unlink()
    print(device, ",".join(others))
""")


def test_concurrent_jobs_never_share_a_device_and_use_every_one(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    environ = {**os.environ, "PROMPTLAM_GPUS": "0,1", "TMPDIR": str(tmp_path)}
    environ.pop("CUDA_VISIBLE_DEVICES", None)
    jobs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(marks), "2"], env=environ,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [job.communicate(timeout=120) for job in jobs]
    assert all(job.returncode == 0 for job in jobs), [err for _, err in results]
    devices = [out.split()[0] for out, _ in results]
    # each saw no other holder of its device when it started, and both devices were used
    assert all(out.strip() == device for (out, _), device in zip(results, devices))
    assert set(devices) == {"0", "1"}
    assert any("waiting for one to be free" in err for _, err in results)  # 5 jobs of 2 s, 2 devices


def test_a_killed_job_frees_its_device(tmp_path):
    environ = {**os.environ, "PROMPTLAM_GPUS": "5", "TMPDIR": str(tmp_path)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "600"], env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("5-*")):
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        lock_dir = tmp_path / f"promptlam-gpus-{os.getuid()}"
        with pytest.raises(BlockingIOError):  # held while the job lives
            import fcntl

            with open(lock_dir / "gpu-5.lock", "ab") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert claim_device(["5"], lock_dir, poll_seconds=0.01) == "5"


def lam_train_without_config(tmp_path, environ):
    """`lam train` on a missing config file: it claims its GPU, then stops in one line."""
    return subprocess.run([sys.executable, "-m", "promptlam", "lam", "train", "--config", str(tmp_path / "none.yaml"),
                           "--method", "lapo", "--target", "pixels", "--latent-dim", "8", "--seed", "0"],
                          env=environ, capture_output=True, text=True, timeout=300)


def test_gpu_commands_claim_a_device_before_their_work(tmp_path):
    environ = {**os.environ, "PROMPTLAM_GPUS": "3", "TMPDIR": str(tmp_path)}
    run = lam_train_without_config(tmp_path, environ)
    assert "using GPU 3 (CUDA_VISIBLE_DEVICES=3)" in run.stderr
    import torch  # a CPU build of torch would run the job on the CPU: its log says so
    assert ("was given GPU 3, but torch" in run.stderr) == (torch.version.cuda is None)
    assert run.returncode == 2  # then the missing config file, in one line
    plain = subprocess.run([sys.executable, "-m", "promptlam", "config", "check", "--config", str(tmp_path / "none.yaml")],
                           env=environ, capture_output=True, text=True, timeout=300)
    assert "using GPU" not in plain.stderr  # a command that does not use CUDA takes no device


def test_a_job_given_a_gpu_by_the_scheduler_says_when_torch_cannot_use_it(tmp_path):
    import torch

    def lam_train(visible):
        environ = {**os.environ, "SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": visible, "TMPDIR": str(tmp_path)}
        environ.pop("PROMPTLAM_GPUS", None)
        return lam_train_without_config(tmp_path, environ)

    given, hidden = lam_train("5"), lam_train("-1")
    assert "using GPU" not in given.stderr  # SLURM's device is kept, not one of a pool
    assert ("was given GPU 5, but torch" in given.stderr) == (torch.version.cuda is None)
    assert "was given GPU" not in hidden.stderr
    assert given.returncode == hidden.returncode == 2  # then the missing config file


def test_a_target_job_takes_a_device_only_when_it_runs_a_model(tmp_path):
    environ = {**os.environ, "PROMPTLAM_GPUS": "3", "TMPDIR": str(tmp_path)}
    targets = {"state": {"kind": "state"},
               "model": {"kind": "embedding", "family": "clip", "model": str(tmp_path / "no-model")}}

    def compute(target):
        return subprocess.run([sys.executable, "-m", "promptlam", "targets", "compute", "--target", target,
                               "--task", "reach-v3", "--rollouts", str(tmp_path / "none.h5"),
                               "--out", str(tmp_path / f"{target}.h5"),
                               "--config-json", json.dumps({"targets": targets})],
                              env=environ, capture_output=True, text=True, timeout=300)

    model, state = compute("model"), compute("state")
    for run in (model, state):  # both got as far as the (missing) rollout file: the config was valid
        assert run.returncode == 2 and "none.h5: rollout file not found" in run.stderr
    assert "using GPU 3" in model.stderr
    assert "using GPU" not in state.stderr and "was given GPU" not in state.stderr
