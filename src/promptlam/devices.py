"""One GPU per job on a machine with several: a pool of lock files that sets CUDA_VISIBLE_DEVICES.

Snakemake's `--resources gpu=N` limits how many GPU jobs run at once but assigns no device, so
every job would land on cuda:0 while the other GPUs sit idle. A command that is about to use CUDA
first claims a device here: it takes an exclusive `flock` on that device's lock file, keeps it for
the rest of its process (the OS drops the lock when the process ends, however it ends: a killed
job frees its GPU), and sets CUDA_VISIBLE_DEVICES to that device before torch initialises CUDA.

Which devices are shared out:
- under a distributed launcher (torchrun, ``accelerate launch``: ``LOCAL_RANK`` is set), nothing:
  the launcher's processes pick their GPU by rank among all visible ones (a pool would hide all
  but one from each, and rank 1 would ask for a cuda:1 it cannot see);
- ``PROMPTLAM_GPUS`` (comma-separated ids, e.g. ``0,1,2,3``) when set: exactly those;
- otherwise, when the job already has ``CUDA_VISIBLE_DEVICES`` or runs under SLURM (which gives
  each job its own devices), nothing: the job keeps what it was given;
- otherwise the GPUs ``nvidia-smi -L`` lists, when there are two or more.
The locks live in the machine's temporary folder, per user, so two workflows on one machine share
the GPUs too. Torch-free: imported by the CLI before anything starts CUDA.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import IO

POOL_VARIABLE = "PROMPTLAM_GPUS"

_held: list[IO[bytes]] = []  # lock files of the devices this process holds (open = held)


def pool_devices(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The device ids this process may choose from (empty: leave CUDA_VISIBLE_DEVICES alone)."""
    if "LOCAL_RANK" in environ:
        return []
    if environ.get(POOL_VARIABLE, "").strip():
        return [device.strip() for device in environ[POOL_VARIABLE].split(",") if device.strip()]
    if "CUDA_VISIBLE_DEVICES" in environ or "SLURM_JOB_ID" in environ:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devices = [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
    return devices if len(devices) > 1 else []


def lock_folder() -> Path:
    return Path(tempfile.gettempdir()) / f"promptlam-gpus-{os.getuid()}"


def claim_device(devices: list[str], folder: Path | None = None, poll_seconds: float = 1.0) -> str:
    """Hold the first free device of ``devices`` for the rest of this process and return its id;
    waits while every one is held by another process."""
    if not devices:
        raise ValueError("claim_device: no devices to choose from")
    folder = folder or lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for device in devices:
            handle = open(folder / f"gpu-{device}.lock", "ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held.append(handle)
            return device
        if not waited:
            print(f"promptlam: every GPU of {','.join(devices)} is in use; waiting for one to be free",
                  file=sys.stderr)
            waited = True
        time.sleep(poll_seconds)


def claim_gpu(environ: MutableMapping[str, str] = os.environ, folder: Path | None = None) -> str | None:
    """Give this process one GPU of the pool (see the module docstring) by setting
    CUDA_VISIBLE_DEVICES; returns the device id, or None when there is no pool. Call it before
    anything touches CUDA; a second call keeps the device already held."""
    if _held:
        return environ.get("CUDA_VISIBLE_DEVICES")
    devices = pool_devices(environ)
    if not devices:
        return None
    device = claim_device(devices, folder)
    environ["CUDA_VISIBLE_DEVICES"] = device
    print(f"promptlam: using GPU {device} (CUDA_VISIBLE_DEVICES={device})", file=sys.stderr)
    return device
