"""Figures as functions of evaluation and metrics files: which runs each one needs, and the figure.

Torch-free: the rules import it to build the DAG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlam.config import VARIANT_FIELDS, Config, FigureEntry
from promptlam.errors import UserError
from promptlam.lam.probe import FEATURES, QUANTITIES
from promptlam.methods import BC_ACTIONS, MODEL_TARGET_KINDS
from promptlam.runs import RANDOM_EVAL, PolicyKey, RunKey, all_runs

RANDOM_LABEL = "random actions (floor)"
"""The floor's label in Figure 1's CSV."""

BACKGROUND_TITLES = {"train": "backgrounds seen in training", "eval": "unseen backgrounds"}


def entry_key(config: Config, entry: FigureEntry, seed: int) -> PolicyKey:
    """The policy a bar of Figure 1 evaluates for ``seed``."""
    if entry.method == BC_ACTIONS:
        return PolicyKey(seed, trajectories=config.screening)
    return PolicyKey(seed, RunKey(entry.method, entry.target, entry.formulation, config.figures.fig1.latent_dim, seed,
                                  config.screening))


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
class Point:
    """One seed of one bar of a figure (or of one point of a sweep's line): the policy it
    evaluates, its decoder's labelled budget (None for `bc-actions`, which has no decoder), and
    the table columns that name the bar (``bar``, e.g. label and value)."""

    bar: tuple[tuple[str, Any], ...]
    seed: int
    key: PolicyKey
    budget: int | None

    @property
    def columns(self) -> dict[str, Any]:
        return dict(self.bar)


def _entry_point(config: Config, entry: FigureEntry, bar: tuple, seed: int, latent_dim: int, budget: int) -> Point:
    if entry.method == BC_ACTIONS:
        return Point(bar, seed, PolicyKey(seed, trajectories=config.screening), None)
    run = RunKey(entry.method, entry.target, entry.formulation, latent_dim, seed, config.screening)
    return Point(bar, seed, PolicyKey(seed, run), budget)


def _point_inputs(config: Config, points: list[Point], success: bool, probes: bool) -> list[str]:
    """The evaluations (every background split) and LAM metrics the points read."""
    paths = []
    for point in points:
        if success:
            paths += [point.key.eval_path(point.budget, background) for background in config.evaluation.backgrounds]
        if probes and point.key.lam is not None:
            paths.append(f"{point.key.lam.path}/metrics.json")
    return list(dict.fromkeys(paths))


def _read_metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: no readable LAM metrics ({type(exc).__name__}); run its lam job") from None


def _success_rows(config: Config, points: list[Point], reps: int, root: Path) -> list[dict]:
    """Per background split and bar: the success IQM over tasks and seeds with its 95%
    stratified-bootstrap interval (`success_iqm`)."""
    import pandas as pd

    from promptlam.stats import interval_estimates, score_matrix

    rows = []
    for background in config.evaluation.backgrounds:
        by_bar: dict[tuple, list[dict]] = {}
        for point in points:
            result = _read_evaluation(root / point.key.eval_path(point.budget, background), config)
            by_bar.setdefault(point.bar, []).extend(
                {"label": "bar", "seed": point.seed, "task": task, "success": entry["success_rate"]}
                for task, entry in result["tasks"].items())
        for bar, records in by_bar.items():
            scores = score_matrix(pd.DataFrame(records), "bar")[0]
            estimate = interval_estimates(scores, reps, config.seed)
            rows.append(dict(bar) | {"metric": "success_iqm", "background": background, "estimate": estimate["iqm"],
                                     "low": estimate["iqm_low"], "high": estimate["iqm_high"], "runs": len(scores)})
    return rows


PROBE_METRICS = {
    "probe_action_xyz": ("action_xyz", "latent", "variance"),
    "probe_residual": ("residual", "latent+expert", "expert"),
}
"""Probe metrics of the figures: (quantity, feature, the same probe without the latent), from the
first probe horizon. `probe_action_xyz`: the movement from the latent against no information
(1: none, 0: perfect); `probe_residual`: the realised action noise from latent and expert action
against the expert action alone (1: nothing beyond the expert's plan)."""


def _probe_rows(points: list[Point], metrics: list[str], root: Path) -> list[dict]:
    """Per bar with LAM runs and probe metric: the mean over seeds with a 95% t-interval."""
    from promptlam.stats import mean_confidence_interval

    values: dict[tuple, dict[str, list[float]]] = {}
    for point in points:
        if point.key.lam is None:
            continue
        probe = _read_metrics(root / point.key.lam.path / "metrics.json")["heldout_probe"]
        for metric in metrics:
            quantity, feature, reference = PROBE_METRICS[metric]
            ratio = probe[quantity][feature] / probe[quantity][reference]
            values.setdefault(point.bar, {}).setdefault(metric, []).append(ratio)
    rows = []
    for bar, by_metric in values.items():
        for metric, ratios in by_metric.items():
            mean, low, high = mean_confidence_interval(ratios)
            rows.append(dict(bar) | {"metric": metric, "background": "", "estimate": mean, "low": low, "high": high,
                                     "runs": len(ratios)})
    return rows


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (figure jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_csv(table, csv: Path) -> None:
    from promptlam.io import atomic_output

    with atomic_output(csv) as tmp:
        table.to_csv(tmp, index=False)


def _save_figure(fig, pdf: Path) -> None:
    import matplotlib.pyplot as plt

    from promptlam.io import atomic_output

    with atomic_output(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None})  # the same bytes each run
    plt.close(fig)


def _figure_legend(fig, axes, columns: int = 4) -> None:
    """One legend above the panels, from the labels of every panel."""
    handles = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=min(len(handles), columns), fontsize=8,
               frameon=False)


def _panel_labels(ax, metric: str, background: str) -> None:
    if metric in PROBE_METRICS:
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
        ax.set_ylabel(PROBE_TITLES[metric][0])
        ax.set_title(PROBE_TITLES[metric][1], fontsize=9)
    else:
        ax.set_ylabel("success rate (IQM)")
        ax.set_title(BACKGROUND_TITLES[background], fontsize=9)


PROBE_TITLES = {
    "probe_action_xyz": ("held-out action_xyz probe MSE / variance", "movement probe (1 = no information)"),
    "probe_residual": ("residual probe MSE, latent+expert / expert", "action noise beyond the expert (1 = none)"),
}

INTERVALS = "95% intervals (success: IQM, stratified bootstrap over tasks and seeds; probes: Student t over seeds)"
PROBE_INTERVALS = "95% Student-t intervals over seeds"


def _caption(fig, text: str, fontsize: float = 7) -> float:
    """Write ``text`` under the panels, wrapped to the figure's width; returns the share of the
    figure's height it takes (what ``tight_layout`` must leave free)."""
    import textwrap

    lines = textwrap.wrap(text, max(40, int(fig.get_figwidth() * 72 / (0.55 * fontsize))))
    fig.text(0.5, 0.01, "\n".join(lines), ha="center", va="bottom", fontsize=fontsize)
    return (len(lines) * fontsize * 1.3 + 8) / (fig.get_figheight() * 72)


# ------------------------------------------------------------------------------------- sweeps
def sweep_points(config: Config, name: str) -> list[Point]:
    """Every point of sweep ``name`` (`figures.sweeps`); bar columns `label` and `value` (None
    for `bc-actions`, the same at every value)."""
    sweep = config.figures.sweeps[name]
    points = []
    for entry in sweep.entries:
        for value in sweep.values if entry.method != BC_ACTIONS else [None]:
            dim = value if sweep.axis == "latent_dim" and value is not None else sweep.latent_dim
            budget = value if sweep.axis == "labelled_budget" and value is not None else sweep.labelled_budget
            for seed in sweep.seeds:
                points.append(_entry_point(config, entry, (("label", entry.label), ("value", value)), seed, dim, budget))
    return points


def sweep_inputs(config: Config, name: str) -> list[str]:
    """Every file sweep ``name`` reads: the evaluations of every point and background split and,
    for a latent-dimension sweep, the LAM runs' metrics (their probes)."""
    return _point_inputs(config, sweep_points(config, name), True, config.figures.sweeps[name].axis == "latent_dim")


SWEEP_COLUMNS = ["figure", "axis", "value", "label", "metric", "background", "estimate", "low", "high", "runs"]
"""The long table behind a sweep figure: `metric` is `success_iqm` (per background split, 95%
stratified-bootstrap interval) or `probe_action_xyz` (relative held-out MSE, 95% t-interval)."""


def sweep_table(config: Config, name: str, root: Path):
    """The numbers of sweep ``name`` (``SWEEP_COLUMNS``), one row per (label, value, metric,
    background)."""
    import pandas as pd

    sweep = config.figures.sweeps[name]
    points = sweep_points(config, name)
    rows = _success_rows(config, points, sweep.bootstrap_reps, root)
    if sweep.axis == "latent_dim":
        rows += _probe_rows(points, ["probe_action_xyz"], root)
    table = pd.DataFrame(rows).assign(figure=name, axis=sweep.axis)
    table["value"] = table["value"].astype("Int64")
    return table[SWEEP_COLUMNS]


def make_sweep(config: Config, name: str, root: Path, pdf: Path, csv: Path):
    """Write sweep figure ``name``: a panel of the movement probe (latent-dimension sweeps) and
    one of the success rate per background split, x = the swept value, a line per entry with its
    95% intervals (`bc-actions` a flat band); and its numbers. Returns the table."""
    plt = _pyplot()
    sweep = config.figures.sweeps[name]
    table = sweep_table(config, name, root)
    _write_csv(table, csv)
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
        _panel_labels(ax, metric, background)
    _figure_legend(fig, axes[0])
    bottom = _caption(fig, f"{len(sweep.seeds)} seeds; {INTERVALS}", fontsize=8)
    fig.tight_layout(rect=(0, bottom, 1, 0.9))
    _save_figure(fig, pdf)
    return table


# -------------------------------------------------------------------------------- comparisons
REFERENCE_GROUP = "references"
"""The group of a comparison's `entries` in its table (each entry is a bar of its own)."""

COMPARISON_COLUMNS = ["figure", "group", "label", "value", "method", "target", "kind", "formulation", "metric",
                      "background", "estimate", "low", "high", "runs"]
"""The long table behind a comparison: per bar (`group`: the compared target, or `references`;
`label`: the target, its variant's letter, or the entry's label; `value`: the varied setting's
value), per metric (`success_iqm` per background split, 95% stratified-bootstrap interval;
`probe_action_xyz`, `probe_residual`: relative held-out MSE, 95% t-interval)."""


def shown(value: Any) -> str:
    """A varied setting's value as the figure and its table show it (strings as they are)."""
    return value if isinstance(value, str) else json.dumps(value)


def letter(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the names of a comparison's values in its figure."""
    return letter(index // 26 - 1) + chr(ord("A") + index % 26) if index >= 26 else chr(ord("A") + index)


def comparison_points(config: Config, name: str) -> list[Point]:
    """Every bar x seed of comparison ``name`` (`figures.comparisons`)."""
    comparison = config.figures.comparisons[name]
    variants = iter(config.comparison_variants(name))  # (target, value, variant), in this order
    bars: list[tuple[tuple, FigureEntry]] = []
    for base in config.comparison_targets(name):
        for index, value in enumerate(comparison.values if comparison.vary else [None]):
            target = next(variants)[2] if comparison.vary in VARIANT_FIELDS else base
            formulation = value if comparison.vary == "formulation" else comparison.formulation
            entry = FigureEntry(label=base, method=comparison.method, target=target, formulation=formulation)
            label = letter(index) if comparison.vary else base
            bars.append(((base, label, "" if value is None else shown(value)), entry))
    bars += [((REFERENCE_GROUP, entry.label, ""), entry) for entry in comparison.entries]
    points = []
    for (group, label, value), entry in bars:
        kind = (config.targets[entry.target].kind if entry.target in config.targets
                else "actions" if entry.method == BC_ACTIONS else entry.target)
        bar = (("group", group), ("label", label), ("value", value), ("method", entry.method),
               ("target", entry.target), ("kind", kind), ("formulation", entry.formulation))
        points += [_entry_point(config, entry, bar, seed, comparison.latent_dim, comparison.labelled_budget)
                   for seed in comparison.seeds]
    return points


def comparison_inputs(config: Config, name: str) -> list[str]:
    """Every file comparison ``name`` reads: LAM metrics for its probes, evaluations for success."""
    comparison = config.figures.comparisons[name]
    return _point_inputs(config, comparison_points(config, name), "success" in comparison.metrics,
                         bool(comparison.probes))


def comparison_table(config: Config, name: str, root: Path):
    """The numbers of comparison ``name`` (``COMPARISON_COLUMNS``)."""
    import pandas as pd

    comparison = config.figures.comparisons[name]
    points = comparison_points(config, name)
    rows = _probe_rows(points, comparison.probes, root)
    if "success" in comparison.metrics:
        rows += _success_rows(config, points, comparison.bootstrap_reps, root)
    return pd.DataFrame(rows).assign(figure=name)[COMPARISON_COLUMNS]


def comparison_latex(table) -> str:
    """A comparison's table as LaTeX: a row per bar, a column per metric, `estimate [low, high]`."""
    table = table.assign(column=table.metric + table.background.map(lambda b: f" ({b})" if b else ""),
                         cell=[f"{e:.3f} [{lo:.3f}, {hi:.3f}]" for e, lo, hi in zip(table.estimate, table.low, table.high)])
    wide = table.pivot_table(index=["group", "label", "value"], columns="column", values="cell", aggfunc="first",
                             sort=False).fillna("--")
    wide.columns.name = None
    return wide.reset_index().to_latex(index=False, escape=True)


def make_comparison(config: Config, name: str, root: Path, pdf: Path, csv: Path, tex: Path):
    """Write comparison ``name``: a panel per probe metric and per background split of the success
    rate; bars with 95% intervals (per target, one per variant when a setting is varied), or per
    target a box over its variants' estimates, each variant's letter beside its point
    (``style: box``); the references as grey bars after them. Writes the numbers as CSV and
    LaTeX; returns the table."""
    from promptlam.io import atomic_output

    plt = _pyplot()
    comparison = config.figures.comparisons[name]
    table = comparison_table(config, name, root)
    _write_csv(table, csv)
    with atomic_output(tex) as tmp:
        tmp.write_text(comparison_latex(table))
    panels = [(metric, "") for metric in comparison.probes]
    if "success" in comparison.metrics:
        panels += [("success_iqm", background) for background in config.evaluation.backgrounds]
    letters = [letter(index) for index in range(len(comparison.values))] if comparison.vary else []
    palette = plt.get_cmap("tab10").colors
    colours = dict(zip(letters, palette)) | {"vlm": palette[0], "embedding": palette[1]}
    # x: the compared targets in order, then the references, one position each
    groups = [group for group in dict.fromkeys(table.group) if group != REFERENCE_GROUP]
    names = groups + list(dict.fromkeys(table[table.group == REFERENCE_GROUP].label))
    width = 0.8 / len(letters) if letters and comparison.style == "bars" else 0.6

    def position(row) -> float:
        if row.group == REFERENCE_GROUP:
            return float(names.index(row.label))
        offset = (letters.index(row.label) - (len(letters) - 1) / 2) * width if letters and comparison.style == "bars" else 0
        return groups.index(row.group) + offset

    def colour(row):
        if row.group == REFERENCE_GROUP:
            return "0.6"
        return colours[row.label] if letters else colours.get(row.kind, palette[2])

    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(len(panels) * max(3.6, 0.45 * len(names) * (len(letters) if comparison.style == "bars" else 1) ** 0.5 + 1.6), 4.4))
    for ax, (metric, background) in zip(axes[0], panels):
        at = table[(table.metric == metric) & (table.background == background)]
        boxed = at[at.group != REFERENCE_GROUP] if comparison.style == "box" else at.iloc[:0]
        for group, box in boxed.groupby("group", sort=False):
            x = groups.index(group)
            ax.boxplot(box.estimate, positions=[x], widths=0.6, showfliers=False, medianprops={"color": "black"})
            for _, row in box.iterrows():
                ax.plot([x], [row.estimate], "o", color=colour(row), markersize=4)
                ax.annotate(row.label, (x, row.estimate), xytext=(5, 0), textcoords="offset points", fontsize=7,
                            va="center")
        for _, row in at.drop(boxed.index).iterrows():
            ax.bar(position(row), row.estimate, width if row.group != REFERENCE_GROUP else 0.6, color=colour(row),
                   yerr=[[row.estimate - row.low], [row.high - row.estimate]], capsize=2)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_xlim(-0.7, len(names) - 0.3)
        ax.set_ylim(bottom=0)
        _panel_labels(ax, metric, background)
    if letters:
        legend = [f"{key}: {shown(value)}" for key, value in zip(letters, comparison.values)]
        handles = [plt.Line2D([], [], marker="s", linestyle="", color=colours[key]) for key in letters]
        long = max(map(len, legend)) > 30
        fig.legend(handles, legend, loc="upper center", ncol=1 if long else len(letters), fontsize=7, frameon=False,
                   title=comparison.vary, title_fontsize=7)
    else:
        kinds = [kind for kind in MODEL_TARGET_KINDS if kind in set(table.kind[table.group != REFERENCE_GROUP])]
        names = [KIND_NAMES[kind] for kind in kinds]
        handles = [plt.Line2D([], [], marker="s", linestyle="", color=colours[kind]) for kind in kinds]
        if (table.group == REFERENCE_GROUP).any():
            names.append("reference")
            handles.append(plt.Line2D([], [], marker="s", linestyle="", color="0.6"))
        fig.legend(handles, names, loc="upper center", ncol=max(len(handles), 1), fontsize=7, frameon=False)
    success = "success" in comparison.metrics
    caption = f"{len(comparison.seeds)} seeds, latent dim {comparison.latent_dim}"
    caption += f", {comparison.labelled_budget} labelled trajectories per task" if success else " (probes only)"
    caption += "; box: the variants' estimates" if comparison.style == "box" else ""
    caption += f"; {INTERVALS if success else PROBE_INTERVALS}; probes: 1 = no information"
    bottom = _caption(fig, caption)
    rows = len(letters) + 1 if letters and max(len(str(v)) for v in comparison.values) > 30 else 2
    fig.tight_layout(rect=(0, bottom, 1, 1 - 0.035 * rows))
    _save_figure(fig, pdf)
    return table


KIND_NAMES = {"vlm": "promptable VLM target", "embedding": "embedding-only target"}


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
    import numpy as np

    plt = _pyplot()
    summary, _ = lam_probe_table(config, root)
    _write_csv(summary, csv)
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
    _figure_legend(fig, axes.flat, columns=5)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    _save_figure(fig, pdf)
    return summary


# ------------------------------------------------------------------------- screening transfer
TRANSFER_COLUMNS = ["figure", "statistic", "group", "label", "data", "estimate", "low", "high", "runs"]
"""The table behind the screening-transfer figure: `statistic` is the ranked probe (one row per
bar and `data`, full or screen{N}: mean over seeds, 95% t-interval) or `spearman` / `kendall`
(the rank correlation of the bars between the two, per seed; mean over seeds, 95% t-interval)."""


def transfer_runs(config: Config) -> list[tuple[dict, RunKey, RunKey]]:
    """(bar columns, run on all the data, screening run) for every bar x seed of the ranked
    comparison that has a LAM run."""
    transfer = config.figures.screening_transfer
    return [(point.columns, point.key.lam.on(None), point.key.lam.on(transfer.trajectories))
            for point in comparison_points(config, transfer.comparison) if point.key.lam is not None]


def transfer_inputs(config: Config) -> list[str]:
    """The LAM metrics the screening-transfer figure reads: every bar's run on both data sizes."""
    return list(dict.fromkeys(f"{run.path}/metrics.json" for _, full, screen in transfer_runs(config)
                              for run in (full, screen)))


def transfer_table(config: Config, root: Path):
    """The numbers of the screening-transfer figure (``TRANSFER_COLUMNS``)."""
    import pandas as pd
    from scipy import stats

    from promptlam.stats import mean_confidence_interval

    transfer = config.figures.screening_transfer
    quantity, feature, reference = PROBE_METRICS[transfer.metric]
    screen = f"screen{transfer.trajectories}"
    values = []
    for columns, full, screened in transfer_runs(config):
        for data, run in (("full", full), (screen, screened)):
            probe = _read_metrics(root / run.path / "metrics.json")["heldout_probe"][quantity]
            values.append({"group": columns["group"], "label": columns["label"], "seed": run.seed, "data": data,
                           "value": probe[feature] / probe[reference]})
    values = pd.DataFrame(values)
    bars = values.groupby(["group", "label"], sort=False).size().index
    if len(bars) < 3:
        raise UserError(f"figures.screening_transfer: comparison {transfer.comparison!r} has {len(bars)} bars with "
                        "LAM runs; ranking needs at least 3")
    rows = []
    for (group, label, data), at in values.groupby(["group", "label", "data"], sort=False):
        mean, low, high = mean_confidence_interval(at.value.to_numpy())
        rows.append({"statistic": transfer.metric, "group": group, "label": label, "data": data, "estimate": mean,
                     "low": low, "high": high, "runs": len(at)})
    wide = values.pivot_table(index=["seed", "group", "label"], columns="data", values="value", sort=False)
    for name, correlation in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        per_seed = [correlation(at["full"], at[screen]).statistic for _, at in wide.groupby(level="seed")]
        mean, low, high = mean_confidence_interval(per_seed)
        rows.append({"statistic": name, "group": "", "label": "", "data": "", "estimate": mean, "low": low,
                     "high": high, "runs": len(per_seed)})
    return pd.DataFrame(rows).assign(figure="screening_transfer")[TRANSFER_COLUMNS]


def make_transfer(config: Config, root: Path, pdf: Path, csv: Path):
    """Write the screening-transfer figure: each bar's probe on the screening subset against all
    the data (95% t-intervals over seeds), and the rank correlations with their intervals."""
    plt = _pyplot()
    transfer = config.figures.screening_transfer
    table = transfer_table(config, root)
    _write_csv(table, csv)
    screen = f"screen{transfer.trajectories}"
    probes = table[table.statistic == transfer.metric]
    full = probes[probes.data == "full"].set_index(["group", "label"])
    screened = probes[probes.data == screen].set_index(["group", "label"])
    fig, (scatter, correlations) = plt.subplots(1, 2, figsize=(10, 4.4), gridspec_kw={"width_ratios": [2, 1]})
    for key, row in full.iterrows():
        other = screened.loc[key]
        scatter.errorbar(row.estimate, other.estimate, xerr=[[row.estimate - row.low], [row.high - row.estimate]],
                         yerr=[[other.estimate - other.low], [other.high - other.estimate]], fmt="o", capsize=2,
                         color="tab:blue")
        name = key[1] if key[0] in (REFERENCE_GROUP, key[1]) else f"{key[0]} {key[1]}"
        scatter.annotate(name, (row.estimate, other.estimate), xytext=(4, 3), textcoords="offset points", fontsize=7)
    scatter.axline((1, 1), slope=1, color="0.6", linewidth=0.8, linestyle=":")  # the same on both
    scatter.set_xlabel(f"{PROBE_TITLES[transfer.metric][0]}, all train trajectories")
    scatter.set_ylabel(f"... on {transfer.trajectories} train trajectories")
    scatter.set_title(f"bars of {transfer.comparison}", fontsize=9)
    rank = table[table.statistic.isin(["spearman", "kendall"])]
    correlations.bar(rank.statistic, rank.estimate, yerr=[rank.estimate - rank.low, rank.high - rank.estimate],
                     capsize=3, color="tab:gray")
    correlations.axhline(0, color="black", linewidth=0.8)
    correlations.set_ylim(-1.05, 1.05)
    correlations.set_ylabel("rank correlation, screening vs all data")
    correlations.set_title("screening against all data (1: same order)", fontsize=9)
    bottom = _caption(fig, f"{int(rank.runs.iloc[0])} seeds; {PROBE_INTERVALS} (the probes, and the per-seed "
                           "rank correlations); dotted: the same value on both")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save_figure(fig, pdf)
    return table
