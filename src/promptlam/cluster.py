"""What a SLURM run needs, checked before the workflow submits a job, and where each job fits.

profiles/slurm takes everything site-specific from the environment, so that nobody edits a
tracked file: the account (``PROMPTLAM_SLURM_ACCOUNT``, through the `slurm_account` default
resource) and the partitions file (``SNAKEMAKE_SLURM_PARTITIONS``, read by the executor plugin).
This module checks them against the cluster itself (``sinfo``, ``sacctmgr``) and places each job
in a partition (`place`): a job's threads, memory and runtime are capped at what the partition
allows, because the executor plugin submits a job that fits no partition anyway and SLURM then
keeps it pending for ever (reason ``PartitionConfig``) without a word. GPUs, a GPU model and a
named partition are needs, not wishes: a job whose needs no partition meets is refused (`NoFit`).

Torch-free and Snakemake-free: rules/common.smk and `promptlam plan` call it; promptlam.slurm
wires it into a run.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from promptlam.errors import UserError

PARTITIONS_VARIABLE = "SNAKEMAKE_SLURM_PARTITIONS"
ACCOUNT_VARIABLE = "PROMPTLAM_SLURM_ACCOUNT"
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")

# The partition limits snakemake-executor-plugin-slurm reads (its PartitionLimits), and the keys
# naming a partition's cluster; anything else in the file is a typo the plugin would die on.
PLUGIN_LIMITS = {
    "max_runtime", "max_mem_mb", "max_mem_mb_per_cpu", "max_cpus_per_task", "max_threads", "max_nodes",
    "max_tasks", "max_tasks_per_node", "max_gpu", "available_gpu_models", "max_cpus_per_gpu", "supports_mpi",
    "max_mpi_tasks", "available_constraints", "slurm_cluster", "cluster", "clusters",
}


# ---- The environment -------------------------------------------------------------------------


def unset_variables(raw_values: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Environment variables named in ``raw_values`` (resource expressions as the profile wrote
    them) that are not set, in order of first mention."""
    missing: list[str] = []
    for raw in raw_values.values():
        for name in _VARIABLE.findall(str(raw)):
            if name not in environ and name not in missing:
                missing.append(name)
    return missing


def is_slurm_run(raw_resources: Mapping[str, str]) -> bool:
    """A run through profiles/slurm, recognised by its `slurm_account` default resource."""
    return "slurm_account" in raw_resources


def slurm_setup_error(raw_resources: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> str | None:
    """One line saying what to set before a SLURM run, or None when nothing is missing (or the
    run does not go through SLURM)."""
    if not is_slurm_run(raw_resources):
        return None
    missing = unset_variables(raw_resources, environ)
    if missing:
        return (f"profiles/slurm: environment variable {', '.join(missing)} is not set "
                f"(export {ACCOUNT_VARIABLE}=<account>, or empty for your default account; docs/slurm.md)")
    partitions = environ.get(PARTITIONS_VARIABLE, "")
    if not partitions:
        return (f"profiles/slurm: {PARTITIONS_VARIABLE} is not set: write your partitions file with "
                f"`python -m promptlam slurm partitions --out profiles/slurm/partitions.yaml` (or copy "
                f"profiles/slurm/partitions.example.yaml) and export {PARTITIONS_VARIABLE}=<its path>")
    if not os.path.isfile(partitions):
        return f"{PARTITIONS_VARIABLE}={partitions}: no such file (the partitions file of profiles/slurm, docs/slurm.md)"
    return None


# ---- Partitions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """The limits of one partition that decide where a job fits (None: no limit)."""

    name: str
    max_threads: int | None = None
    max_mem_mb: int | None = None
    max_runtime: int | None = None  # minutes
    max_gpu: int = 0
    gpu_models: tuple[str, ...] | None = None  # None: any model (or the file does not say)

    def describe(self) -> str:
        limits = [f"{self.max_threads} CPUs" if self.max_threads else "", f"{self.max_mem_mb} MB" if self.max_mem_mb else "",
                  f"{self.max_runtime} min" if self.max_runtime else "",
                  f"{self.max_gpu} GPUs" + (f" ({', '.join(self.gpu_models)})" if self.gpu_models else "")]
        return f"{self.name} ({', '.join(limit for limit in limits if limit)})"


def _limit(source: str, name: str, key: str, value: object, minutes: bool = False) -> int | None:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return None
    try:
        if minutes:
            from snakemake_executor_plugin_slurm.utils import parse_time_to_minutes  # the plugin's reading

            number = parse_time_to_minutes(value)
        else:
            number = int(value)
            if number != value:
                raise ValueError
    except Exception:
        raise UserError(f"{source}: partitions.{name}.{key}: expected {'minutes or a SLURM time' if minutes else 'a whole number'}, "
                        f"got {value!r}") from None
    if number < 0:
        raise UserError(f"{source}: partitions.{name}.{key}: expected a number >= 0, got {value!r}")
    return number


def read_partitions(path: str | Path) -> list[Partition]:
    """The partitions of a partitions file (the executor plugin's format), checked: a key the
    plugin does not know or a value of the wrong type is one line naming it."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{source}: no such file (the partitions file of profiles/slurm)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise UserError(f"{source}: not valid YAML" + (f" at line {mark.line + 1}" if mark else "")) from None
    if not isinstance(data, dict) or not isinstance(data.get("partitions"), dict) or not data["partitions"]:
        raise UserError(f"{source}: expected a mapping `partitions:` with one entry per partition")
    partitions = []
    for name, limits in data["partitions"].items():
        limits = limits or {}
        if not isinstance(limits, dict):
            raise UserError(f"{source}: partitions.{name}: expected a mapping of limits, got {limits!r}")
        unknown = sorted(set(limits) - PLUGIN_LIMITS)
        if unknown:
            raise UserError(f"{source}: partitions.{name}: unknown key {', '.join(unknown)} "
                            f"(keys: {', '.join(sorted(PLUGIN_LIMITS))})")
        models = limits.get("available_gpu_models")
        if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
            raise UserError(f"{source}: partitions.{name}.available_gpu_models: expected a list of names, got {models!r}")
        cpus = [_limit(source, name, key, limits.get(key)) for key in ("max_threads", "max_cpus_per_task")]
        partitions.append(Partition(
            name=str(name),
            max_threads=min((c for c in cpus if c is not None), default=None),
            max_mem_mb=_limit(source, name, "max_mem_mb", limits.get("max_mem_mb")),
            max_runtime=_limit(source, name, "max_runtime", limits.get("max_runtime"), minutes=True),
            max_gpu=_limit(source, name, "max_gpu", limits.get("max_gpu")) or 0,
            gpu_models=tuple(models) if models else None,
        ))
    return partitions


# ---- Where a job goes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What one job asks of SLURM (None: not asked)."""

    threads: int = 1
    mem_mb: int | None = None
    runtime: int | None = None  # minutes
    gpu: int = 0
    gpu_model: str | None = None
    partition: str | None = None  # a partition named by the job (`slurm_partition`)

    def describe(self) -> str:
        asks = [f"{self.threads} CPU{'s' if self.threads != 1 else ''}", f"{self.mem_mb} MB" if self.mem_mb else "", f"{self.runtime} min" if self.runtime else "",
                f"{self.gpu} GPU{'s' if self.gpu > 1 else ''}" + (f" ({self.gpu_model})" if self.gpu_model else "") if self.gpu else "",
                f"partition {self.partition}" if self.partition else ""]
        return ", ".join(ask for ask in asks if ask)


@dataclass(frozen=True)
class Placement:
    """Where a job goes and what it is submitted with; ``capped`` says what was lowered."""

    partition: str
    request: Request
    capped: tuple[str, ...] = ()


class NoFit(UserError):
    """A job whose needs (GPUs, GPU model, named partition) no partition meets."""


def _meets_needs(partition: Partition, request: Request) -> bool:
    if request.partition is not None and partition.name != request.partition:
        return False
    if request.gpu:
        if partition.max_gpu < request.gpu:
            return False
        if request.gpu_model and partition.gpu_models and request.gpu_model not in partition.gpu_models:
            return False
    return True


# What a job asks that a partition limits, and may be capped: (request field, partition field, unit).
LIMITED = (("threads", "max_threads", "CPUs"), ("mem_mb", "max_mem_mb", "MB"), ("runtime", "max_runtime", "min"))


def _asked_and_limits(partition: Partition, request: Request) -> list[tuple[int | None, int | None]]:
    return [(getattr(request, asked), getattr(partition, limit)) for asked, limit, _ in LIMITED]


def _fits(partition: Partition, request: Request) -> bool:
    return all(limit is None or asked is None or asked <= limit for asked, limit in _asked_and_limits(partition, request))


def _score(partition: Partition, request: Request) -> float:
    """How snugly ``request`` fills ``partition`` (the plugin's idea: the sum of asked / limit; a
    CPU job counts against a GPU partition)."""
    score = sum(asked / limit for asked, limit in _asked_and_limits(partition, request) if asked and limit)
    if request.gpu:
        score += request.gpu / partition.max_gpu
    elif partition.max_gpu:
        score -= 1
    return score


def place(request: Request, partitions: list[Partition]) -> Placement:
    """The partition ``request`` goes to and what it is submitted with.

    Among the partitions that meet its needs (CPU jobs: those without GPUs first), the one it fits
    most snugly; when it fits none, the largest, with threads, memory and runtime capped at that
    partition's limits (``capped`` says what and why). Raises NoFit when no partition meets its
    needs."""
    candidates = [partition for partition in partitions if _meets_needs(partition, request)]
    if not candidates:
        raise NoFit(f"asks {request.describe()}, which no partition meets: "
                    f"{'; '.join(partition.describe() for partition in partitions)}")
    if not request.gpu and any(not partition.max_gpu for partition in candidates):
        candidates = [partition for partition in candidates if not partition.max_gpu]
    fitting = [partition for partition in candidates if _fits(partition, request)]
    if fitting:
        return Placement(max(fitting, key=lambda partition: _score(partition, request)).name, request)
    infinite = math.inf
    largest = max(candidates, key=lambda p: (p.max_mem_mb or infinite, p.max_threads or infinite, p.max_runtime or infinite))
    capped, lowered = [], {}
    for field, limit_field, unit in LIMITED:
        asked, limit = getattr(request, field), getattr(largest, limit_field)
        if limit is not None and asked is not None and asked > limit:
            lowered[field] = limit
            capped.append(f"{asked} {unit} -> {limit}")
    return Placement(largest.name, replace(request, **lowered), tuple(capped))


# ---- The cluster itself ----------------------------------------------------------------------

Runner = Callable[[list[str]], str]


def run_command(command: list[str]) -> str:
    """The standard output of a SLURM command; UserError naming it when it fails or is missing."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError(f"`{command[0]}` not found: profiles/slurm runs where SLURM's commands are (a login node)") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"`{' '.join(command)}` did not answer within 60 s (is slurmctld up?)") from None
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise UserError(f"`{' '.join(command)}` failed: {message[-1] if message else f'exit code {done.returncode}'}")
    return done.stdout


def slurm_minutes(text: str) -> int | None:
    """A SLURM time limit as sinfo prints it (`infinite`, `30:00`, `2:00:00`, `1-12:00:00`) in minutes."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    hours, minutes, seconds = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)


def _gpus(gres: str) -> tuple[int, tuple[str, ...]]:
    """GPUs and their models in one node's GRES (`gpu:2`, `gpu:a100:4(S:0-1)`, `(null)`)."""
    count, models = 0, []
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = item.strip().split(":")
        if fields[0] != "gpu" or len(fields) < 2:
            continue
        try:
            count += int(fields[-1])
        except ValueError:
            continue
        if len(fields) == 3:
            models.append(fields[1])
    return count, tuple(models)


def cluster_partitions(run: Runner = run_command) -> dict[str, Partition]:
    """Each partition of the cluster with the limits of its largest node (``sinfo``)."""
    found: dict[str, Partition] = {}
    for line in run(["sinfo", "--noheader", "--Node", "--format=%R|%c|%m|%G|%l"]).splitlines():
        if not line.strip():
            continue
        name, cpus, memory, gres, limit = line.split("|")
        gpus, models = _gpus(gres)
        node = Partition(name, int(cpus.rstrip("+")), int(memory.rstrip("+")), slurm_minutes(limit), gpus, models or None)
        seen = found.get(name)
        if seen is not None:
            node = Partition(name, max(seen.max_threads, node.max_threads), max(seen.max_mem_mb, node.max_mem_mb),
                             node.max_runtime, max(seen.max_gpu, node.max_gpu),
                             tuple(sorted(set(seen.gpu_models or ()) | set(node.gpu_models or ()))) or None)
        found[name] = node
    return found


def partitions_yaml(partitions: dict[str, Partition]) -> str:
    """A partitions file (the plugin's format) stating ``partitions``' limits."""
    entries = {}
    for partition in partitions.values():
        limits = {"max_threads": partition.max_threads, "max_mem_mb": partition.max_mem_mb}
        if partition.max_runtime is not None:
            limits["max_runtime"] = partition.max_runtime
        limits["max_gpu"] = partition.max_gpu
        if partition.gpu_models:
            limits["available_gpu_models"] = list(partition.gpu_models)
        entries[partition.name] = limits
    header = ("# Partitions of this cluster, from `sinfo` (the largest node of each): written by\n"
              "# `python -m promptlam slurm partitions`. Lower a limit to keep jobs smaller; never raise one\n"
              "# above what the nodes have (a job that asks more pends for ever).\n")
    return header + yaml.safe_dump({"partitions": entries}, sort_keys=False)


def cluster_mismatch(partitions: list[Partition], cluster: dict[str, Partition], source: str) -> str | None:
    """One line when the partitions file names a partition the cluster lacks or promises more
    than its nodes have (jobs sized to it would pend for ever), else None."""
    for partition in partitions:
        real = cluster.get(partition.name)
        if real is None:
            return (f"{source}: partition {partition.name} is not on this cluster "
                    f"(sinfo lists {', '.join(sorted(cluster)) or 'none'})")
        for key, unit in (("max_threads", "CPUs"), ("max_mem_mb", "MB of memory"), ("max_gpu", "GPUs")):
            promised, actual = getattr(partition, key), getattr(real, key)
            if promised is not None and actual is not None and promised > actual:
                return (f"{source}: partitions.{partition.name}.{key} is {promised}, but its largest node has "
                        f"{actual} {unit} (sinfo): a job sized to it would pend for ever; lower it")
    return None


def accounting_enabled(run: Runner = run_command) -> bool:
    """Whether the cluster stores accounting (slurmdbd): without it, `sacct` and `sacctmgr` fail."""
    for line in run(["scontrol", "show", "config"]).splitlines():
        if line.strip().startswith("AccountingStorageType"):
            return not line.split("=", 1)[1].strip().endswith("/none")
    return False


def account_error(account: str, accounting: bool, run: Runner = run_command, user: str | None = None) -> str | None:
    """One line when ``account`` cannot be used for submitting, else None."""
    if not account:
        return None
    if not accounting:
        return (f"{ACCOUNT_VARIABLE}={account}: this cluster keeps no accounting (AccountingStorageType none), so "
                f"the executor cannot check the account and refuses it; export {ACCOUNT_VARIABLE}= (empty)")
    user = user or getpass.getuser()
    accounts = {line.strip().lower() for line in run(
        ["sacctmgr", "--noheader", "--parsable2", "show", "associations", "where", f"user={user}", "format=account"]
    ).splitlines() if line.strip()}
    if account.lower() not in accounts:
        return (f"{ACCOUNT_VARIABLE}={account}: no such account for user {user} on this cluster "
                f"(sacctmgr lists {', '.join(sorted(accounts)) or 'none'})")
    return None


def cluster_error(partitions: list[Partition], source: str, account: str, accounting: bool,
                  run: Runner = run_command) -> str | None:
    """One line on what stops a SLURM run before its first job (the partitions of file ``source``
    against the cluster's, then the account), or None when the run can start."""
    try:
        if message := cluster_mismatch(partitions, cluster_partitions(run), source):
            return message
        return account_error(account, accounting, run)
    except UserError as error:
        return str(error)
