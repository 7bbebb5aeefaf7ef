"""profiles/slurm inside a Snakemake run: jobs sized to their partitions, a stop that stops, and
work-arounds for what snakemake-executor-plugin-slurm 2.8.0 does on a real cluster.

Called from rules/common.smk (and the Snakefile's `onstart`) when the run goes through
profiles/slurm. Each piece answers something seen on a real SLURM 22.05 (docs/slurm.md, "What a
real cluster does"); tests/test_slurm.py shows each against one:

- `fit_rules_to_partitions`: every job's threads, memory and runtime, whatever set them (a rule,
  the profile's set-threads / set-resources, the command line, the attempt), are capped at the
  limits of the partition it goes to (promptlam.cluster.place). Unfitted, the plugin submits it
  anyway and SLURM keeps it pending for ever; a retry asking for more memory than any node has is
  refused by sbatch.
- `jobs_that_fit_nowhere`: the run stops in one line before its first submission when a job
  needs what no partition has (GPUs, a GPU model, a named partition).
- `patch_executor`: (1) sacct reports a cancelled job as ``CANCELLED by <uid>``, which the plugin
  compares with ``CANCELLED`` and so waits for ever for a job an admin or scancel ended: states
  are read by their first word; and a preempted job, which the plugin leaves to SLURM to resume,
  is submitted again when the profile told SLURM never to requeue it (`slurm-no-requeue`); (2) the plugin lets the wait between two status
  queries grow to 180 s: it is capped (``PROMPTLAM_SLURM_STATUS_SECONDS``, default 30) so that a
  stopped run ends within a minute; (3) a failed node is excluded from later submissions for the
  whole run, which on a cluster with one such node (or all of its GPU nodes failing once) leaves
  every retry pending for ever: a node that is back in service is used again.
- `stop_on_signal`: SIGTERM (what `timeout` and batch systems send) makes Snakemake wait for
  jobs that may never start; it now cancels this run's jobs, says which, and exits, as Ctrl-C.
- `cancel_orphans`: jobs a killed earlier run of this working directory left in the queue are
  cancelled before new ones are submitted (they would write the same outputs twice).

Each patch checks that the plugin still has what it wraps, and the plugin is pinned; the real
cluster tests fail when an upgrade changes any of it.
"""

from __future__ import annotations

import atexit
import getpass
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptlam.cluster import NoFit, Partition, Request, place

STATUS_SECONDS_VARIABLE = "PROMPTLAM_SLURM_STATUS_SECONDS"
DEFAULT_STATUS_SECONDS = 30
# The resources of a job that promptlam.cluster.place may lower, as Snakemake names them.
CAPPED = {"_cores": "threads", "mem_mb": "mem_mb", "runtime": "runtime"}


def say(message: str) -> None:
    print(f"promptlam: {message}", file=sys.stderr, flush=True)


# ---- Jobs sized to their partitions ----------------------------------------------------------


def _number(value: Any) -> int | None:
    """An evaluated resource as a number, None when unset or not known yet (a TBD string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(str(value))
    except ValueError:
        return None


def request_of(values: Callable[[str], Any]) -> Request:
    """The Request of a job whose resource ``name`` has the value ``values(name)``."""
    model, partition = values("gpu_model"), values("slurm_partition")
    return Request(threads=_number(values("_cores")) or 1, mem_mb=_number(values("mem_mb")),
                   runtime=_number(values("runtime")), gpu=_number(values("gpu")) or 0,
                   gpu_model=str(model) if model else None, partition=str(partition) if partition else None)


def fit_rules_to_partitions(workflow: Any, partitions: list[Partition], source: str) -> None:
    """Cap the threads, memory and runtime of every job of every rule that is submitted (not the
    rules run on the submit host) at its partition's limits, saying once per rule what was lowered.

    Wraps the rule's Snakemake resources after every layer has set them, so the cap applies to
    the rule's own values, the profile's, the command line's and every retry's (`attempt`), and
    in the job's own Snakemake on the node as in the main one (both read the same file).
    """
    from snakemake.resources import Resource

    said: set[tuple[str, tuple[str, ...]]] = set()
    # (workflow.is_local answers "everything" until the run's executor is chosen, after parsing)
    local = getattr(workflow, "_localrules", set())
    for rule in workflow.rules:
        if rule.name in local or rule.norun:
            continue
        originals = {name: rule.resources[name] for name in rule.resources.keys()}

        def placement(wildcards: Any, kwargs: dict, rule=rule, originals=originals):
            def value(name: str) -> Any:
                resource = originals.get(name)
                if resource is None:
                    return None
                if resource.is_evaluable():
                    extra = {"threads": threads} if name != "_cores" else {}
                    resource = resource.evaluate(wildcards, **{**kwargs, **extra})
                return None if resource.is_evaluable() else resource.value

            threads = _number(value("_cores")) or 1
            try:
                found = place(request_of(value), partitions)
            except NoFit:
                return None  # jobs_that_fit_nowhere stops the run before it submits anything
            if found.capped and (rule.name, found.capped) not in said:
                said.add((rule.name, found.capped))
                attempt = kwargs.get("attempt", 1)
                say(f"rule {rule.name}, attempt {attempt}: asks more than partition {found.partition} allows "
                    f"({source}); submitted with its limits: {', '.join(found.capped)}")
            return found

        for name, field in CAPPED.items():
            if name not in originals:
                continue

            def capped(wildcards: Any, original=originals[name], field=field, placement=placement, **kwargs):
                found = placement(wildcards, kwargs)
                if found is None:
                    evaluated = original.evaluate(wildcards, **kwargs) if original.is_evaluable() else original
                    return evaluated.value
                return getattr(found.request, field)

            rule.resources[name] = Resource(name, capped, raw=originals[name].raw)


def jobs_that_fit_nowhere(jobs: list[Any], partitions: list[Partition], source: str) -> str | None:
    """One line naming the first submitted job whose needs no partition meets, else None."""
    misfits = []
    for job in jobs:
        if job.is_local:
            continue
        try:
            place(request_of(lambda name, job=job: job.threads if name == "_cores" else job.resources.get(name)),
                  partitions)
        except NoFit as error:
            misfits.append((job, str(error)))
    if not misfits:
        return None
    job, reason = misfits[0]
    more = len(misfits) - 1
    rules = sorted({other.rule.name for other, _ in misfits[1:]})
    return (f"rule {job.rule.name} ({', '.join(job.output)}) {reason} ({source})"
            + (f"; {more} more job{'s' if more > 1 else ''} of rule {', '.join(rules)} likewise" if more else "")
            + ": nothing was submitted")


# ---- The executor plugin ---------------------------------------------------------------------


@dataclass
class _Run:
    """The executor of this run (for its SLURM run id, the job name of all its jobs)."""

    executor: Any = None


RUN = _Run()


def status_seconds(environ=os.environ) -> int:
    value = environ.get(STATUS_SECONDS_VARIABLE, str(DEFAULT_STATUS_SECONDS))
    try:
        seconds = int(value)
        if seconds < 1:
            raise ValueError
    except ValueError:
        raise SystemExit(f"promptlam: error: {STATUS_SECONDS_VARIABLE}={value}: expected whole seconds >= 1") from None
    return seconds


def first_word_states(states: dict[str, str] | None, preempted_end: bool = False) -> dict[str, str] | None:
    """Job states by their first word: sacct says ``CANCELLED by 0`` for ``CANCELLED``. With
    ``preempted_end`` (jobs submitted with --no-requeue, which SLURM never runs again after a
    preemption), ``PREEMPTED`` reads as ``CANCELLED``, which the plugin submits again; it would
    otherwise wait for ever for a job it thinks SLURM will resume."""
    if states is None:
        return None
    words = {job: state.split()[0] if state.strip() else state for job, state in states.items()}
    if preempted_end:
        words = {job: "CANCELLED" if state == "PREEMPTED" else state for job, state in words.items()}
    return words


def patch_executor(accounting: bool) -> None:
    """Apply the work-arounds of the module docstring to the plugin's Executor (once).

    ``accounting``: whether the cluster keeps accounting. Without it `sacct` fails, yet the plugin
    picks it whenever the command exists, and waits for ever on jobs whose state it cannot read:
    job states are then read with `squeue` (which shows a finished job for MinJobAge seconds)."""
    import snakemake_executor_plugin_slurm as plugin

    if getattr(plugin, "_promptlam_patched", False):
        return
    executor = plugin.Executor
    missing = [name for name in ("query_job_status", "query_job_status_squeue") if not hasattr(plugin, name)] + [
        name for name in ("__post_init__", "check_active_jobs") if not hasattr(executor, name)]
    if missing:
        raise SystemExit(f"promptlam: error: snakemake-executor-plugin-slurm {getattr(plugin, '__version__', '')} "
                         f"has no {', '.join(missing)}: promptlam.slurm's work-arounds need revisiting for it")
    cap = status_seconds()
    query, post_init, check = plugin.query_job_status, executor.__post_init__, executor.check_active_jobs

    preempted: set[str] = set()

    async def query_job_status(command, logger):
        if not accounting and command.split()[0] == "sacct" and RUN.executor is not None:
            command = plugin.query_job_status_squeue(RUN.executor.run_uuid)
        states, seconds = await query(command, logger)
        no_requeue = RUN.executor is not None and getattr(RUN.executor.workflow.executor_settings, "no_requeue", False)
        for job in {job for job, state in (states or {}).items() if state.startswith("PREEMPTED")} - preempted:
            preempted.add(job)
            say(f"SLURM job {job} was preempted" + (
                ": with no-requeue SLURM does not run it again; it is submitted again" if no_requeue else ""))
        return first_word_states(states, preempted_end=no_requeue), seconds

    def __post_init__(self, *args, **kwargs):
        post_init(self, *args, **kwargs)
        RUN.executor = self
        settings = self.workflow.executor_settings
        if not accounting and getattr(settings, "status_command", None) != "squeue":
            settings.status_command = "squeue"
            say("this cluster keeps no accounting (sacct cannot answer): job states are read with squeue")

    async def check_active_jobs(self, active_jobs):
        async for job in check(self, active_jobs):
            yield job
        self.next_seconds_between_status_checks = min(self.next_seconds_between_status_checks or cap, cap)
        failed = getattr(self, "_failed_nodes", None)
        if failed:
            failed.difference_update(nodes_in_service(failed))

    plugin.query_job_status = query_job_status
    executor.__post_init__ = __post_init__
    executor.check_active_jobs = check_active_jobs
    plugin._promptlam_patched = True


def nodes_in_service(nodes: set[str]) -> set[str]:
    """Those of ``nodes`` that SLURM can give jobs again (idle, mixed or allocated)."""
    try:
        out = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%N|%t", "--nodes", ",".join(sorted(nodes))],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    usable = {"idle", "mix", "alloc", "comp"}
    return {node for node, state in (line.split("|") for line in out.splitlines() if "|" in line)
            if state.rstrip("*~#!%$@^-") in usable}


# ---- Stopping --------------------------------------------------------------------------------


def queued_jobs(**select: str) -> list[dict[str, str]]:
    """This user's queued and running jobs (id, name, state, comment, working directory)."""
    command = ["squeue", "--noheader", "--format=%i|%j|%T|%k|%Z", f"--user={getpass.getuser()}"]
    command += [f"--name={select['name']}"] if "name" in select else []
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    jobs = []
    for line in out.splitlines():
        fields = line.split("|", 4)
        if len(fields) == 5:
            jobs.append(dict(zip(("id", "name", "state", "comment", "workdir"), fields)))
    return jobs


def describe(job: dict[str, str]) -> str:
    """`rule lam (_lapo_pixels_absolute_16_0)`: the rule and wildcard values of the comment the
    plugin gives each job (`rule_lam_wildcards__lapo_pixels_absolute_16_0`)."""
    comment = job["comment"].removeprefix("rule_")
    rule, _, wildcards = comment.partition("_wildcards_")
    return f"rule {rule}" + (f" ({wildcards})" if wildcards else "")


def cancel(jobs: list[dict[str, str]], why: str) -> None:
    """scancel ``jobs``, one line each."""
    if not jobs:
        return
    subprocess.run(["scancel", *(job["id"] for job in jobs)], capture_output=True, timeout=60)
    for job in jobs:
        say(f"cancelled SLURM job {job['id']}, {describe(job)}, {job['state'].lower()}: {why}")


def stop_on_signal() -> None:
    """SIGTERM and SIGINT cancel this run's SLURM jobs (named in one line each), then end the run
    through Snakemake's own interrupt path, which marks their outputs incomplete for the rerun."""
    stopping = []

    def handler(signum, frame):
        if stopping:
            return  # already on its way out
        stopping.append(signum)
        run_id = getattr(RUN.executor, "run_uuid", None)
        name = signal.Signals(signum).name
        if run_id is None:
            say(f"{name}: stopping (no SLURM job was submitted)")
        else:
            jobs = queued_jobs(name=run_id)
            say(f"{name}: stopping; {len(jobs)} SLURM job{'s' if len(jobs) != 1 else ''} of this run in the queue")
            cancel(jobs, "the workflow was stopped; a rerun redoes it")
            # a job whose sbatch was under way when the signal came is in the queue only now
            atexit.register(lambda: cancel(queued_jobs(name=run_id), "submitted as the workflow stopped"))
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cancel_orphans(workdir: str) -> None:
    """Cancel the jobs that an earlier run of this working directory, killed before it could
    cancel them, left queued or running: this run (which holds the directory's lock) redoes them,
    and two jobs writing one output would race. LAM and BC jobs resume from their checkpoints."""
    here = os.path.realpath(workdir)
    own = getattr(RUN.executor, "run_uuid", None)
    orphans = [job for job in queued_jobs() if job["comment"].startswith("rule_") and job["name"] != own
               and os.path.realpath(job["workdir"]) == here]
    cancel(orphans, "left by an earlier run of this directory that was killed; this run redoes it")
