"""Figures as functions of evaluation files: which runs each bar needs, and the figure itself."""

from __future__ import annotations

import json
from pathlib import Path

from promptlam.config import Config, FigureEntry
from promptlam.errors import UserError
from promptlam.lam.train import RunKey, all_runs
from promptlam.policy.train import PolicyKey


def entry_key(config: Config, entry: FigureEntry, seed: int) -> PolicyKey:
    """The policy a bar of Figure 1 evaluates for ``seed``."""
    if entry.method == "bc-actions":
        return PolicyKey(seed)
    return PolicyKey(seed, RunKey(entry.method, entry.target, config.figures.fig1.latent_dim, seed))


def fig1_evaluations(config: Config) -> dict[str, list[str]]:
    """Label -> the eval.json files (one per seed) behind that bar of Figure 1."""
    fig1 = config.figures.fig1
    return {entry.label: [entry_key(config, entry, seed).eval_path(fig1.labelled_budget) for seed in fig1.seeds]
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


PROBE_FEATURES = ("latent", "untrained_latent", "latent+state", "untrained_latent+state", "state", "true_action")


def lam_probe_table(config: Config, root: Path):
    """Held-out probe MSEs of every LAM run of ``lam.runs``, per (method, target, latent dim,
    horizon, predicted quantity, feature): mean over seeds with a 95% t-interval, and the same
    divided by the variance of what is predicted (1 = no information)."""
    import pandas as pd

    from promptlam.stats import mean_confidence_interval

    rows = []
    for run in all_runs(config):
        path = root / run.path / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: no readable LAM metrics ({type(exc).__name__}); run its lam job") from None
        for horizon, probes in metrics["heldout_probe_by_horizon"].items():
            for quantity, values in probes.items():
                for feature in PROBE_FEATURES:
                    if feature in values:
                        rows.append({"method": run.method, "target": run.target, "latent_dim": run.latent_dim,
                                     "seed": run.seed, "horizon": int(horizon), "predicts": quantity,
                                     "feature": feature, "mse": values[feature],
                                     "relative_mse": values[feature] / values["variance"]})
    runs = pd.DataFrame(rows)
    keys = ["method", "target", "latent_dim", "horizon", "predicts", "feature"]
    summary = []
    for key, group in runs.groupby(keys, sort=False):
        entry = dict(zip(keys, key)) | {"seeds": len(group)}
        for column in ("mse", "relative_mse"):
            mean, low, high = mean_confidence_interval(group[column].to_numpy())
            entry |= {column: mean, f"{column}_low": low, f"{column}_high": high}
        summary.append(entry)
    return pd.DataFrame(summary).round(6), runs


def make_lam_probes(config: Config, root: Path, pdf: Path, csv: Path):
    """The LAM science at a glance: relative held-out probe MSE of each run variant (bars: mean
    over seeds, whiskers: 95% t-interval), one panel per horizon and predicted quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from promptlam.io import atomic_output

    summary, _ = lam_probe_table(config, root)
    with atomic_output(csv) as tmp:
        summary.to_csv(tmp, index=False)
    summary = summary.assign(run=summary.method + " / " + summary.target + " / ld" + summary.latent_dim.astype(str))
    panels = list(summary.groupby(["predicts", "horizon"], sort=True))
    features = [f for f in PROBE_FEATURES if f in set(summary.feature) and f != "true_action"]
    runs = list(dict.fromkeys(summary.run))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    width = 0.8 / len(features)
    for ax, ((predicts, horizon), panel) in zip(axes[0], panels):
        for index, feature in enumerate(features):
            rows = panel[panel.feature == feature].set_index("run").reindex(runs)
            x = np.arange(len(runs)) + (index - (len(features) - 1) / 2) * width
            error = np.vstack([rows.relative_mse - rows.relative_mse_low, rows.relative_mse_high - rows.relative_mse])
            ax.bar(x, rows.relative_mse, width, yerr=error, capsize=2, label=feature)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(np.arange(len(runs)))
        ax.set_xticklabels(runs, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{predicts}, horizon {horizon}")
        ax.set_ylabel("held-out probe MSE / variance")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(features), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    with atomic_output(pdf) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return summary
