"""Where a run's jobs go on a cluster, before launching: `promptlam plan --partitions FILE`.

Reads what each rule asks from a Snakemake profile (profiles/slurm: `set-threads`,
`set-resources`, `default-resources`, `retries`), the jobs of each rule from the plan's Work, and
places them with promptlam.cluster.place, as the workflow does at submission (promptlam.slurm):
each row says which partition a rule's jobs go to, what they ask and what they are submitted
with, and at the last retry, whose memory grows with the attempt.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from pathlib import Path

import yaml

from promptlam.cluster import NoFit, Partition, Request, place
from promptlam.config import Config
from promptlam.errors import UserError
from promptlam.methods import MODEL_TARGET_KINDS
from promptlam.vlm.cache import hub_models

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
              ast.Div: operator.truediv, ast.Pow: operator.pow}


def evaluate(expression: object, attempt: int, source: str) -> int | None:
    """A profile's resource value (a number, or arithmetic of `attempt` such as "16000 * attempt")."""
    if expression is None or isinstance(expression, (int, float)):
        return None if expression is None else int(expression)
    text = str(expression).strip().strip("'\"")

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "attempt":
            return attempt
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError

    try:
        return int(value(ast.parse(text, mode="eval").body))
    except (SyntaxError, ValueError):
        raise UserError(f"{source}: {text!r}: expected a number or arithmetic of `attempt`") from None


@dataclass(frozen=True)
class ProfileAsks:
    """What a profile's jobs ask: per rule, threads and resource expressions; and its retries."""

    source: str
    threads: dict[str, int]
    resources: dict[str, dict[str, object]]
    defaults: dict[str, object]
    retries: int

    def request(self, rule: str, gpu: int, attempt: int = 1) -> Request:
        resources = {**self.defaults, **self.resources.get(rule, {})}
        return Request(threads=self.threads.get(rule, 1), mem_mb=evaluate(resources.get("mem_mb"), attempt, self.source),
                       runtime=evaluate(resources.get("runtime"), attempt, self.source), gpu=gpu,
                       gpu_model=resources.get("gpu_model"), partition=resources.get("slurm_partition"))


def read_profile(folder: str | Path) -> ProfileAsks:
    """The asks of the Snakemake profile in ``folder`` (its config.yaml)."""
    path = Path(folder) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (a Snakemake profile folder holds a config.yaml)") from None
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML") from None
    return ProfileAsks(str(path), {rule: int(threads) for rule, threads in (data.get("set-threads") or {}).items()},
                       dict(data.get("set-resources") or {}), dict(data.get("default-resources") or {}),
                       int(data.get("retries", 0)))


def rule_jobs(config: Config, work) -> list[tuple[str, int, int]]:
    """(rule, jobs, GPUs each) of the submitted rules behind ``work`` (a promptlam.plan.Work)."""
    gpu = 1 if config.use_gpus else 0
    model_targets = [target for target, _ in work.targets if config.targets[target].kind in MODEL_TARGET_KINDS]
    hub = {name for pin in hub_models(config, model_targets) for name in pin.targets}
    on_gpu = sum(1 for target, _ in work.targets if target in hub)
    latent = [policy for policy in work.policies if policy.lam is not None]
    evaluated_latent = sum(1 for policy, _, _ in work.evaluations if policy.lam is not None)
    batched = set(config.lam.batch_seeds)
    rows = [
        ("rollouts", len(config.tasks) * 2, 0),  # train and eval splits
        ("target", on_gpu, gpu), ("target", len(work.targets) - on_gpu, 0),
        ("lam", sum(1 for run in work.runs if run.seed not in batched), gpu),
        ("lam_seeds", len({(run.method, run.target, run.formulation, run.latent_dim, run.trajectories)
                           for run in work.runs if run.seed in batched}), gpu),
        ("bc_latent", len(latent), gpu), ("bc_actions", len(work.policies) - len(latent), gpu),
        ("decoder", len(work.decoders), 0),
        ("evaluate_latent", evaluated_latent, 0), ("evaluate_actions", len(work.evaluations) - evaluated_latent, 0),
        ("evaluate_random", len(config.evaluation.backgrounds) if work.random_floor else 0, 0),
    ]
    return [row for row in rows if row[1]]


def format_placement(config: Config, work, profile: ProfileAsks, partitions: list[Partition], source: str) -> str:
    """A table: each submitted rule's jobs, what they ask, where they go and what they get."""
    lines = [f"Where the jobs go (asks: {profile.source}; partitions: {source}; memory and runtime at attempt 1,"
             f" then at the last of {profile.retries} retr{'y' if profile.retries == 1 else 'ies'}):"]
    header = f"  {'rule':<17} {'jobs':>5}  {'asks':<40} {'partition':<12} submitted with"
    lines.append(header)
    for rule, jobs, gpu in rule_jobs(config, work):
        for attempt in sorted({1, profile.retries + 1}):
            request = profile.request(rule, gpu, attempt)
            label = rule if attempt == 1 else f"  attempt {attempt}"
            try:
                found = place(request, partitions)
                got = "as asked" if not found.capped else ", ".join(found.capped)
                lines.append(f"  {label:<17} {jobs if attempt == 1 else '':>5}  {request.describe():<40} {found.partition:<12} {got}")
            except NoFit as error:
                lines.append(f"  {label:<17} {jobs if attempt == 1 else '':>5}  {request.describe():<40} {'NONE':<12} "
                             f"the run stops before submitting: {error}")
    lines.append("Jobs of seconds (subsets, previews, tiny models, figures) run on the submit host (localrules).")
    return "\n".join(lines)
