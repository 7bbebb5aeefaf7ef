"""Figures as functions of evaluation files: which runs each bar needs, and the figure itself."""

from __future__ import annotations

import json
from pathlib import Path

from promptlam.config import Config, FigureEntry
from promptlam.errors import UserError
from promptlam.lam.train import RunKey
from promptlam.policy.train import PolicyKey


def entry_key(config: Config, entry: FigureEntry, seed: int) -> PolicyKey:
    """The policy a bar of Figure 1 evaluates for ``seed``."""
    if entry.method == "bc-actions":
        return PolicyKey(seed)
    return PolicyKey(seed, RunKey(entry.method, entry.target, config.figures.fig1.latent_dim, seed))


def eval_path(config: Config, key: PolicyKey) -> str:
    """Where the workflow writes the evaluation of ``key`` (with Figure 1's labelled budget)."""
    folder = key.decoder_path(config.figures.fig1.labelled_budget) if key.lam else key.path
    return f"{folder}/eval.json"


def fig1_evaluations(config: Config) -> dict[str, list[str]]:
    """Label -> the eval.json files (one per seed) behind that bar of Figure 1."""
    fig1 = config.figures.fig1
    return {entry.label: [eval_path(config, entry_key(config, entry, seed)) for seed in fig1.seeds]
            for entry in fig1.entries}


def fig1_records(config: Config, root: Path):
    """One row per (label, task, seed): the success rate, read from the evaluation files."""
    import pandas as pd

    rows = []
    for label, paths in fig1_evaluations(config).items():
        for seed, relative in zip(config.figures.fig1.seeds, paths):
            path = root / relative
            try:
                result = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(f"{path}: no readable evaluation ({type(exc).__name__}); run its evaluate job") from None
            if sorted(result["tasks"]) != sorted(config.tasks):
                raise UserError(f"{path}: evaluates tasks {sorted(result['tasks'])}, the config has {sorted(config.tasks)}")
            rows += [{"label": label, "task": task, "seed": seed, "success": entry["success_rate"]}
                     for task, entry in result["tasks"].items()]
    return pd.DataFrame(rows)


def make_fig1(config: Config, root: Path, pdf: Path, csv: Path):
    """Write Figure 1 and the numbers behind it; returns the summary table."""
    from promptlam.plots import plot_fig1, write_fig1_csv
    from promptlam.stats import summarise

    fig1 = config.figures.fig1
    records = fig1_records(config, root)
    summary = summarise(records, fig1.normalise_by, fig1.bootstrap_reps, config.seed)
    title = f"{len(config.tasks)} tasks, {len(fig1.seeds)} seeds, {fig1.labelled_budget} labelled trajectories per task"
    plot_fig1(summary, records, pdf, title=title)
    write_fig1_csv(summary, records, csv)
    return summary
