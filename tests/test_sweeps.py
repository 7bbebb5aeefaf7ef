"""Sweep figures (`figures.sweeps`): which runs each reads, the numbers, and config errors."""

import json

import pandas as pd
import pytest

from promptlam.config import ConfigError, validate_config
from promptlam.errors import UserError
from promptlam.figures import make_sweep, sweep_inputs, sweep_points

from conftest import TINY

TASKS = ["reach-v3", "drawer-close-v3"]


def sweep_config(**sweeps):
    return validate_config({**TINY, "tasks": TASKS, "evaluation": {"backgrounds": ["train", "eval"]},
                            "figures": {"sweeps": sweeps, "comparisons": {}, "summary": None, "screening_transfer": None, "fig1": {"entries": [{"label": "BC", "method": "bc-actions"}],
                                                                   "labelled_budget": 2, "normalise_by": None}}})


LATENT = {"axis": "latent_dim", "values": [4, 8], "seeds": [0, 1], "labelled_budget": 2, "bootstrap_reps": 200,
          "entries": [{"label": "LAPO", "method": "lapo", "target": "pixels"},
                      {"label": "BC", "method": "bc-actions"}]}


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_a_latent_dim_sweep_reads_each_point_and_writes_probe_and_success(tmp_path):
    config = sweep_config(dims=LATENT)
    config.check_figures()
    inputs = sweep_inputs(config, "dims")
    assert "runs/lam/lapo/pixels/absolute/ld8/s1/decoder/n2/eval-eval.json" in inputs
    assert "runs/lam/lapo/pixels/absolute/ld4/s0/metrics.json" in inputs
    assert "runs/bc-actions/s1/eval-train.json" in inputs
    # 2 dims x 2 seeds x (2 evaluations + metrics) for LAPO, 2 seeds x 2 evaluations for BC
    assert len(inputs) == 2 * 2 * 3 + 2 * 2
    for point in sweep_points(config, "dims"):
        rate = 0.8 if point.columns["value"] is None else point.columns["value"] / 10  # success grows with the dim
        for background in ("train", "eval"):
            _write(tmp_path / point.key.eval_path(point.budget, background),
                   {"seed": point.seed, "tasks": {task: {"success_rate": rate} for task in TASKS}})
        if point.key.lam is not None:
            relative = 1.0 - point.columns["value"] / 10 + 0.01 * point.seed  # probe: 0.6/0.61 at 4, 0.2/0.21 at 8
            _write(tmp_path / point.key.lam.path / "metrics.json",
                   {"heldout_probe": {"action_xyz": {"latent": relative * 2.0, "variance": 2.0}}})
    table = make_sweep(config, "dims", tmp_path, tmp_path / "dims.pdf", tmp_path / "dims.csv")
    assert (tmp_path / "dims.pdf").read_bytes().startswith(b"%PDF")
    written = pd.read_csv(tmp_path / "dims.csv", keep_default_na=False)
    assert len(written) == len(table) == 2 * 2 + 2 + 2  # LAPO: 2 values x 2 splits; BC: 2 splits; LAPO probe: 2
    success = table[(table.metric == "success_iqm") & (table.background == "eval")].set_index("label")
    assert list(success.loc["LAPO"].sort_values("value").estimate) == pytest.approx([0.4, 0.8])
    assert success.loc["BC", "estimate"] == pytest.approx(0.8) and pd.isna(success.loc["BC", "value"])
    probe = table[table.metric == "probe_action_xyz"].sort_values("value")
    assert list(probe.estimate) == pytest.approx([0.605, 0.205]) and list(probe.runs) == [2, 2]
    assert (probe.low < probe.estimate).all() and (probe.estimate < probe.high).all()
    (tmp_path / "runs/lam/lapo/pixels/absolute/ld8/s1/metrics.json").unlink()
    with pytest.raises(UserError, match="ld8/s1/metrics.json: no readable LAM metrics"):
        make_sweep(config, "dims", tmp_path, tmp_path / "dims.pdf", tmp_path / "dims.csv")


def test_a_labelled_budget_sweep_reads_one_decoder_per_budget_and_no_probe():
    config = sweep_config(budgets={**LATENT, "axis": "labelled_budget", "values": [1, 4], "latent_dim": 8})
    config.check_figures()
    inputs = sweep_inputs(config, "budgets")
    assert "runs/lam/lapo/pixels/absolute/ld8/s0/decoder/n1/eval-train.json" in inputs
    assert "runs/lam/lapo/pixels/absolute/ld8/s0/decoder/n4/eval-train.json" in inputs
    assert not any(path.endswith("metrics.json") for path in inputs)


@pytest.mark.parametrize("change, message", [
    ({"values": [2, 3], "axis": "labelled_budget"}, r"figures.sweeps.s.values: \[3\] not in rollouts.labelled_budgets"),
    ({"labelled_budget": 3}, r"figures.sweeps.s.labelled_budget: \[3\] not in rollouts.labelled_budgets"),
    ({"entries": [{"label": "A", "method": "lapo", "target": "state"}]}, r"figures.sweeps.s.entries.0: lapo predicts"),
    ({"entries": [{"label": "A", "method": "bc-actions"}] * 2}, r"figures.sweeps.s.entries: labels must differ"),
])
def test_sweep_config_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        sweep_config(s={**LATENT, **change}).check_figures()


@pytest.mark.parametrize("name", ["fig1", "Latent", "a/b"])
def test_sweep_names_that_cannot_be_a_file_or_clash_are_refused(name):
    with pytest.raises(ConfigError, match="a figure.s name must be"):
        sweep_config(**{name: LATENT}).check_figures()


def test_a_sweep_set_to_null_is_removed():
    assert list(sweep_config(kept=LATENT, dropped=None).figures.sweeps) == ["kept"]


@pytest.mark.parametrize("values", [[0, 2], [2, 2]])
def test_sweep_values_must_be_distinct_and_positive(values):
    with pytest.raises(ConfigError, match=r"figures.sweeps.s.values: must be distinct positive integers"):
        sweep_config(s={**LATENT, "values": values})
