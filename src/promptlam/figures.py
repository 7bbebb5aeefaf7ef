"""Figures as functions of evaluation and metrics files: which runs each one needs, and the figure.

Torch-free: the rules import it to build the DAG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from promptlam.config import Config, FigureEntry
from promptlam.errors import UserError
from promptlam.lam.probe import FEATURES, QUANTITIES
from promptlam.methods import BC_ACTIONS
from promptlam.runs import RANDOM_EVAL, PolicyKey, RunKey, all_runs

RANDOM_LABEL = "random actions (floor)"
"""The floor's label in Figure 1's CSV."""

BACKGROUND_TITLES = {"train": "backgrounds seen in training", "eval": "unseen backgrounds"}


def entry_key(config: Config, entry: FigureEntry, seed: int) -> PolicyKey:
    """The policy a bar of Figure 1 evaluates for ``seed``."""
    if entry.method == BC_ACTIONS:
        return PolicyKey(seed)
    return PolicyKey(seed, RunKey(entry.method, entry.target, entry.formulation, config.figures.fig1.latent_dim, seed))


def fig1_evaluations(config: Config) -> dict[str, dict[str, list[str]]]:
    """Background -> label -> the evaluation files (one per seed) behind that bar of Figure 1."""
    fig1 = config.figures.fig1
    return {background: {entry.label: [entry_key(config, entry, seed).eval_path(fig1.labelled_budget, background)
                                       for seed in fig1.seeds] for entry in fig1.entries}
            for background in config.evaluation.backgrounds}


def fig1_inputs(config: Config) -> list[str]:
    """Every file Figure 1 reads: the evaluations and, if drawn, the random-action floors."""
    paths = [path for labels in fig1_evaluations(config).values() for paths in labels.values() for path in paths]
    if config.figures.fig1.random_floor:
        paths += [RANDOM_EVAL.format(background=background) for background in config.evaluation.backgrounds]
    return paths


def _read_evaluation(path: Path, config: Config) -> dict:
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: no readable evaluation ({type(exc).__name__}); run its evaluate job") from None
    if sorted(result["tasks"]) != sorted(config.tasks):
        raise UserError(f"{path}: evaluates tasks {sorted(result['tasks'])}, the config has {sorted(config.tasks)}")
    return result


def fig1_records(config: Config, root: Path):
    """One row per (background, label, task, seed): the success rate, from the evaluation files."""
    import pandas as pd

    rows = []
    for background, labels in fig1_evaluations(config).items():
        for label, paths in labels.items():
            for seed, relative in zip(config.figures.fig1.seeds, paths):
                result = _read_evaluation(root / relative, config)
                rows += [{"background": background, "label": label, "task": task, "seed": seed,
                          "success": entry["success_rate"]} for task, entry in result["tasks"].items()]
    return pd.DataFrame(rows)


def make_fig1(config: Config, root: Path, pdf: Path, csv: Path):
    """Write Figure 1 (one panel per background split) and the numbers behind it; returns the
    summary table (per background: IQM and mean with 95% stratified-bootstrap intervals)."""
    import pandas as pd

    from promptlam.plots import Panel, plot_fig1, write_fig1_csv
    from promptlam.stats import summarise

    fig1 = config.figures.fig1
    records = fig1_records(config, root)
    summaries, panels, floors = [], [], []
    for background in config.evaluation.backgrounds:
        rows = records[records.background == background].drop(columns="background")
        summary = summarise(rows, fig1.normalise_by, fig1.bootstrap_reps, config.seed)
        floor = None
        if fig1.random_floor:
            result = _read_evaluation(root / RANDOM_EVAL.format(background=background), config)
            floor_rows = pd.DataFrame([{"label": RANDOM_LABEL, "task": task, "seed": config.seed,
                                        "success": entry["success_rate"]} for task, entry in result["tasks"].items()])
            floor_summary = summarise(floor_rows, None, fig1.bootstrap_reps, config.seed)
            floor = float(floor_summary.iqm.iloc[0])
            summary = pd.concat([summary, floor_summary], ignore_index=True)
            floors.append(floor_rows.assign(background=background))
        summaries.append(summary.assign(background=background))
        panels.append(Panel(BACKGROUND_TITLES[background], summary[summary.label != RANDOM_LABEL], rows, floor))
    title = (f"{len(config.tasks)} tasks, {len(fig1.seeds)} seeds, {fig1.labelled_budget} labelled trajectories "
             f"per task, {config.evaluation.episodes} episodes per task")
    plot_fig1(panels, pdf, title=title)
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["background", *(c for c in summary.columns if c != "background")]]
    write_fig1_csv(summary, pd.concat([records, *floors], ignore_index=True), csv)
    return summary


@dataclass(frozen=True)
class SweepPoint:
    """One (entry, value, seed) of a sweep figure: the policy it evaluates and its decoder's
    labelled budget (``value`` None: `bc-actions`, the same at every value)."""

    label: str
    value: int | None
    seed: int
    key: PolicyKey
    budget: int | None


def sweep_points(config: Config, name: str) -> list[SweepPoint]:
    """Every point of sweep ``name`` (`figures.sweeps`)."""
    sweep = config.figures.sweeps[name]
    points = []
    for entry in sweep.entries:
        for value in sweep.values if entry.method != BC_ACTIONS else [None]:
            dim = value if sweep.axis == "latent_dim" and value is not None else sweep.latent_dim
            budget = value if sweep.axis == "labelled_budget" and value is not None else sweep.labelled_budget
            for seed in sweep.seeds:
                if entry.method == BC_ACTIONS:
                    points.append(SweepPoint(entry.label, None, seed, PolicyKey(seed), None))
                else:
                    run = RunKey(entry.method, entry.target, entry.formulation, dim, seed)
                    points.append(SweepPoint(entry.label, value, seed, PolicyKey(seed, run), budget))
    return points


def sweep_inputs(config: Config, name: str) -> list[str]:
    """Every file sweep ``name`` reads: the evaluations of every point and background split and,
    for a latent-dimension sweep, the LAM runs' metrics (their probes)."""
    paths = []
    for point in sweep_points(config, name):
        paths += [point.key.eval_path(point.budget, background) for background in config.evaluation.backgrounds]
        if config.figures.sweeps[name].axis == "latent_dim" and point.key.lam is not None:
            paths.append(f"{point.key.lam.path}/metrics.json")
    return list(dict.fromkeys(paths))


def _read_metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: no readable LAM metrics ({type(exc).__name__}); run its lam job") from None


SWEEP_COLUMNS = ["figure", "axis", "value", "label", "metric", "background", "estimate", "low", "high", "runs"]
"""The long table behind a sweep figure: `metric` is `success_iqm` (per background split, 95%
stratified-bootstrap interval) or `probe_action_xyz` (relative held-out MSE, 95% t-interval)."""


def sweep_table(config: Config, name: str, root: Path):
    """The numbers of sweep ``name`` (``SWEEP_COLUMNS``), one row per (label, value, metric,
    background)."""
    import pandas as pd

    from promptlam.stats import interval_estimates, mean_confidence_interval, score_matrix

    sweep = config.figures.sweeps[name]
    points = sweep_points(config, name)
    rows = []
    for background in config.evaluation.backgrounds:
        records = pd.DataFrame([
            {"label": point.label, "value": point.value, "seed": point.seed, "task": task,
             "success": entry["success_rate"]}
            for point in points
            for task, entry in _read_evaluation(root / point.key.eval_path(point.budget, background), config)["tasks"].items()])
        for (label, value), at in records.groupby(["label", "value"], dropna=False, sort=False):
            scores = score_matrix(at, label)[0]
            estimate = interval_estimates(scores, sweep.bootstrap_reps, config.seed)
            rows.append({"label": label, "value": value, "metric": "success_iqm", "background": background,
                         "estimate": estimate["iqm"], "low": estimate["iqm_low"], "high": estimate["iqm_high"],
                         "runs": len(scores)})
    if sweep.axis == "latent_dim":
        relative: dict[tuple[str, int], list[float]] = {}
        for point in points:
            if point.key.lam is not None:
                probe = _read_metrics(root / point.key.lam.path / "metrics.json")["heldout_probe"]["action_xyz"]
                relative.setdefault((point.label, point.value), []).append(probe["latent"] / probe["variance"])
        for (label, value), values in relative.items():
            mean, low, high = mean_confidence_interval(values)
            rows.append({"label": label, "value": value, "metric": "probe_action_xyz", "background": "",
                         "estimate": mean, "low": low, "high": high, "runs": len(values)})
    table = pd.DataFrame(rows).assign(figure=name, axis=sweep.axis)
    table["value"] = table["value"].astype("Int64")
    return table[SWEEP_COLUMNS]


def make_sweep(config: Config, name: str, root: Path, pdf: Path, csv: Path):
    """Write sweep figure ``name``: a panel of the movement probe (latent-dimension sweeps) and
    one of the success rate per background split, x = the swept value, a line per entry with its
    95% intervals (`bc-actions` a flat band); and its numbers. Returns the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from promptlam.io import atomic_output

    sweep = config.figures.sweeps[name]
    table = sweep_table(config, name, root)
    with atomic_output(csv) as tmp:
        table.to_csv(tmp, index=False)
    panels = [("probe_action_xyz", "")] if sweep.axis == "latent_dim" else []
    panels += [("success_iqm", background) for background in config.evaluation.backgrounds]
    axis_label = {"latent_dim": "latent action dimension", "labelled_budget": "labelled trajectories per task"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    colours = dict(zip(dict.fromkeys(table.label), plt.get_cmap("tab10").colors))
    for ax, (metric, background) in zip(axes[0], panels):
        at = table[(table.metric == metric) & (table.background == background)]
        for label, line in at.groupby("label", sort=False):
            if line.value.isna().all():  # the same at every value: a band
                row = line.iloc[0]
                ax.axhspan(row.low, row.high, color=colours[label], alpha=0.15)
                ax.axhline(row.estimate, color=colours[label], linestyle="--", label=label)
                continue
            ax.errorbar(line.value.astype(float), line.estimate, yerr=[line.estimate - line.low, line.high - line.estimate],
                        marker="o", capsize=3, color=colours[label], label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sweep.values)
        ax.set_xticklabels([str(v) for v in sweep.values])
        ax.set_xlabel(axis_label[sweep.axis])
        ax.set_ylim(bottom=0)
        if metric == "probe_action_xyz":
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
            ax.set_ylabel("held-out action_xyz probe MSE / variance")
            ax.set_title("movement probe (1 = no information)")
        else:
            ax.set_ylabel("success rate (IQM)")
            ax.set_title(BACKGROUND_TITLES[background])
    handles = {}
    for ax in axes[0]:
        handles |= dict(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=min(len(handles), 4), fontsize=8,
               frameon=False)
    fig.suptitle(f"{len(sweep.seeds)} seeds; 95% intervals (success: stratified bootstrap, probe: Student t)",
                 y=0.02, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    with atomic_output(pdf) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return table


def lam_probe_table(config: Config, root: Path):
    """Held-out probe MSEs of every LAM run of ``lam.runs``, per (method, target, formulation,
    latent dim, horizon, predicted quantity, feature): mean over seeds with a 95% t-interval, and
    the same divided by the variance of what is predicted (1 = no information)."""
    import pandas as pd

    rows = []
    for run in all_runs(config):
        metrics = _read_metrics(root / run.path / "metrics.json")
        for horizon, probes in metrics["heldout_probe_by_horizon"].items():
            for quantity, values in probes.items():
                for feature in FEATURES:
                    if feature in values:
                        rows.append({"method": run.method, "target": run.target, "formulation": run.formulation,
                                     "latent_dim": run.latent_dim, "seed": run.seed, "horizon": int(horizon),
                                     "predicts": quantity, "feature": feature, "mse": values[feature],
                                     "relative_mse": values[feature] / values["variance"]})
    runs = pd.DataFrame(rows)
    return probe_summary(runs), runs


def probe_summary(runs):
    """Per (method, target, formulation, latent dim, horizon, quantity, feature) of the per-run
    probe rows of ``lam_probe_table``: the mean over runs of `mse` and `relative_mse` with 95%
    t-intervals, and the number of runs (`seeds`)."""
    import pandas as pd

    from promptlam.stats import mean_confidence_interval

    keys = ["method", "target", "formulation", "latent_dim", "horizon", "predicts", "feature"]
    summary = []
    for key, group in runs.groupby(keys, sort=False):
        entry = dict(zip(keys, key)) | {"seeds": len(group)}
        for column in ("mse", "relative_mse"):
            mean, low, high = mean_confidence_interval(group[column].to_numpy())
            entry |= {column: mean, f"{column}_low": low, f"{column}_high": high}
        summary.append(entry)
    return pd.DataFrame(summary).round(6)


def make_lam_probes(config: Config, root: Path, pdf: Path, csv: Path):
    """The LAM science at a glance: relative held-out probe MSE of each run variant (bars: mean
    over seeds, whiskers: 95% t-interval), one row of panels per horizon, one panel per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from promptlam.io import atomic_output

    summary, _ = lam_probe_table(config, root)
    with atomic_output(csv) as tmp:
        summary.to_csv(tmp, index=False)
    summary = summary.assign(run=summary.method + " / " + summary.target + " / " + summary.formulation
                             + " / ld" + summary.latent_dim.astype(str))
    horizons = sorted(set(summary.horizon))
    quantities = [q for q in QUANTITIES if q in set(summary.predicts)]
    colours = dict(zip(FEATURES, plt.get_cmap("tab10").colors))
    runs = list(dict.fromkeys(summary.run))
    fig, axes = plt.subplots(len(horizons), len(quantities), squeeze=False,
                             figsize=(max(4.0, 0.55 * len(runs) + 1.5) * len(quantities), 4.6 * len(horizons)))
    for row, horizon in enumerate(horizons):
        for column, quantity in enumerate(quantities):
            ax = axes[row][column]
            panel = summary[(summary.horizon == horizon) & (summary.predicts == quantity)]
            features = [f for f in FEATURES if f in set(panel.feature)]  # each quantity has its own
            width = 0.8 / len(features)
            for index, feature in enumerate(features):
                rows = panel[panel.feature == feature].set_index("run").reindex(runs)
                x = np.arange(len(runs)) + (index - (len(features) - 1) / 2) * width
                error = np.vstack([rows.relative_mse - rows.relative_mse_low, rows.relative_mse_high - rows.relative_mse])
                ax.bar(x, rows.relative_mse, width, yerr=error, capsize=2, label=feature, color=colours[feature])
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
            ax.set_xticks(np.arange(len(runs)))
            ax.set_xticklabels(runs, rotation=35, ha="right", fontsize=7)
            ax.set_title(f"{quantity}, horizon {horizon}")
            ax.set_ylabel("held-out probe MSE / variance")
    legend = {}
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    fig.legend(legend.values(), legend.keys(), loc="upper center", ncol=min(len(legend), 5), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    with atomic_output(pdf) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return summary
