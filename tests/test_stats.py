import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from promptlam.plots import Panel, plot_fig1, write_fig1_csv
from promptlam.stats import SUMMARY_COLUMNS, interval_estimates, summarise


def _scores(runs: int = 5, tasks: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((runs, tasks))


def _numpy_stratified_bootstrap(scores: np.ndarray, reps: int, seed: int) -> tuple[float, float]:
    """Independent reference: resample runs within each task column, percentile 95 % CI of IQM."""
    gen = np.random.default_rng(seed)
    runs, tasks = scores.shape
    iqms = np.empty(reps)
    for r in range(reps):
        idx = gen.integers(0, runs, size=(runs, tasks))
        iqms[r] = trim_mean(scores[idx, np.arange(tasks)].ravel(), 0.25)
    low, high = np.percentile(iqms, [2.5, 97.5])
    return float(low), float(high)


def _records(table: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """{label: {task: [success per seed 0..n-1]}} -> long records."""
    return pd.DataFrame([{"label": label, "task": task, "seed": s, "success": v}
                         for label, tasks in table.items()
                         for task, values in tasks.items() for s, v in enumerate(values)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_estimates_are_trimmed_mean_and_plain_mean(seed):
    scores = _scores(runs=3 + seed, tasks=7, seed=seed)
    out = interval_estimates(scores, reps=20, seed=0)
    assert out["iqm"] == pytest.approx(trim_mean(scores.ravel(), 0.25), abs=1e-12)
    assert out["mean"] == pytest.approx(scores.mean(), abs=1e-12)
    assert out["std"] == pytest.approx(scores.std(ddof=0), abs=1e-12)
    assert (out["n_runs"], out["n_tasks"]) == scores.shape


def test_our_iqm_is_rliables_to_the_last_bit():
    from rliable import metrics

    from promptlam.stats import aggregate_iqm

    generator = np.random.default_rng(0)
    for runs in range(1, 6):
        for tasks in range(1, 5):
            scores = generator.integers(0, 26, (runs, tasks)) / 25  # success rates of 25 episodes: ties
            assert aggregate_iqm(scores) == metrics.aggregate_iqm(scores)


def test_ci_matches_an_independent_numpy_bootstrap_and_rliable_itself():
    from rliable import library, metrics

    scores = _scores(runs=5, tasks=10, seed=3)
    out = interval_estimates(scores, reps=2000, seed=7)
    low, high = _numpy_stratified_bootstrap(scores, reps=2000, seed=123)
    assert out["iqm_low"] == pytest.approx(low, abs=0.02)
    assert out["iqm_high"] == pytest.approx(high, abs=0.02)
    assert out["iqm_high"] - out["iqm_low"] > 0.02  # a real interval, not a degenerate one

    # rliable called directly: it resamples from NumPy's global RNG, so seed that too.
    np.random.seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, ci = library.get_interval_estimates(
            {"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_mean(s)]),
            reps=2000, confidence_interval_size=0.95, random_state=np.random.RandomState(7))
    assert [out["iqm_low"], out["iqm_high"]] == list(ci["x"][:, 0])
    assert [out["mean_low"], out["mean_high"]] == list(ci["x"][:, 1])


def test_same_seed_same_numbers_other_seed_other_numbers_and_global_rng_untouched():
    scores = _scores(seed=4)
    np.random.seed(99)
    before = np.random.random(3)
    np.random.seed(99)
    a = interval_estimates(scores, reps=300, seed=5)
    after = np.random.random(3)
    assert np.array_equal(before, after)  # our seeding of the global RNG is undone
    assert a == interval_estimates(scores, reps=300, seed=5)
    assert a["iqm_low"] != interval_estimates(scores, reps=300, seed=6)["iqm_low"]


def test_ci_contains_point_and_constant_or_single_run_ci_is_a_point():
    out = interval_estimates(_scores(seed=5), reps=500, seed=0)
    assert out["iqm_low"] <= out["iqm"] <= out["iqm_high"]
    assert out["mean_low"] <= out["mean"] <= out["mean_high"]

    const = interval_estimates(np.full((4, 6), 0.3), reps=50, seed=0)
    assert const["iqm_low"] == const["iqm_high"] == pytest.approx(0.3)
    assert const["std"] == 0.0

    one_run = _scores(runs=1, tasks=6)
    single = interval_estimates(one_run, reps=50, seed=0)
    assert single["iqm_low"] == single["iqm"] == single["iqm_high"]
    assert single["mean_low"] == pytest.approx(one_run.mean()) == single["mean_high"]

    point = interval_estimates(np.array([[0.4]]), reps=50, seed=0)
    assert point["iqm_low"] == point["iqm"] == point["iqm_high"] == 0.4
    assert point["std"] == 0.0

    with pytest.raises(ValueError):
        interval_estimates(np.array([0.1, 0.2]), reps=10, seed=0)


def test_summarise_normalises_by_reference_task_means():
    records = _records({
        "LAPO": {"reach": [0.2, 0.4], "push": [0.1, 0.3]},
        "BC, true actions": {"reach": [0.8, 0.8], "push": [0.4, 0.6]},
    })
    out = summarise(records, normalise_by="BC, true actions", reps=50, seed=0)
    assert list(out.columns) == SUMMARY_COLUMNS
    assert list(zip(out["label"], out["scale"])) == [
        ("LAPO", "raw"), ("BC, true actions", "raw"), ("LAPO", "normalised"), ("BC, true actions", "normalised")]
    row = out[(out["label"] == "LAPO") & (out["scale"] == "normalised")].iloc[0]
    # reference means: reach 0.8, push 0.5 -> LAPO normalised [[0.25, 0.2], [0.5, 0.6]]
    assert row["mean"] == pytest.approx(np.mean([0.25, 0.2, 0.5, 0.6]))
    assert row["iqm"] == pytest.approx(trim_mean([0.25, 0.2, 0.5, 0.6], 0.25))
    assert row["reference"] == "BC, true actions" and row["note"] == ""
    ref = out[(out["label"] == "BC, true actions") & (out["scale"] == "normalised")].iloc[0]
    assert ref["mean"] == pytest.approx(1.0)
    raw = out[(out["label"] == "LAPO") & (out["scale"] == "raw")].iloc[0]
    assert raw["mean"] == pytest.approx(0.25) and (raw["n_runs"], raw["n_tasks"]) == (2, 2)


def test_summarise_drops_zero_reference_tasks_with_a_note(caplog):
    records = _records({
        "LAPO": {"reach": [0.2, 0.4], "push": [0.1, 0.3]},
        "BC": {"reach": [0.5, 0.5], "push": [0.0, 0.0]},
    })
    with caplog.at_level("WARNING"):
        out = summarise(records, normalise_by="BC", reps=20, seed=0)
    norm = out[out["scale"] == "normalised"]
    assert list(norm["n_tasks"]) == [1, 1]
    assert norm.iloc[0]["mean"] == pytest.approx(0.6)
    assert all("push" in note for note in norm["note"])
    assert "push" in caplog.text


def test_summarise_raw_only_and_ragged_matrix_names_the_label():
    records = _records({"LAPO": {"reach": [0.2, 0.4]}, "LAPO+VLM (Molmo)": {"reach": [0.5, 0.7], "push": [0.1, 0.2]}})
    out = summarise(records, normalise_by=None, reps=20, seed=0)
    assert set(out["scale"]) == {"raw"} and list(out["label"]) == ["LAPO", "LAPO+VLM (Molmo)"]

    ragged = records[~((records["label"] == "LAPO+VLM (Molmo)") & (records["task"] == "push")
                       & (records["seed"] == 1))]
    with pytest.raises(ValueError, match=r"LAPO\+VLM \(Molmo\)"):
        summarise(ragged, normalise_by=None, reps=20, seed=0)


def test_plot_and_csv_are_written(tmp_path):
    records = _records({
        "LAPO": {"reach": [0.2, 0.4, 0.3], "push": [0.1, 0.3, 0.2]},
        "LAPO, no distractors": {"reach": [0.6, 0.7, 0.9], "push": [0.5, 0.4, 0.6]},
        "BC, true actions": {"reach": [0.9, 0.8, 1.0], "push": [0.6, 0.5, 0.7]},
    })
    summary = summarise(records, normalise_by="BC, true actions", reps=100, seed=0)
    for scale in ("raw", "normalised"):
        pdf = tmp_path / f"fig1_{scale}.pdf"
        panels = [Panel("seen backgrounds", summary, records, floor=0.1), Panel("unseen", summary, records)]
        plot_fig1(panels, pdf, scale=scale, title="MetaWorld")
        assert pdf.stat().st_size > 0 and pdf.read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob("*.tmp"))

    csv = tmp_path / "fig1.csv"
    write_fig1_csv(summary, records, csv)
    back = pd.read_csv(csv, keep_default_na=False)
    assert list(back.columns) == SUMMARY_COLUMNS
    assert list(back["label"]) == list(summary["label"])
    assert list(back["scale"]) == list(summary["scale"])
    np.testing.assert_allclose(back["iqm"], summary["iqm"], atol=1e-6)


def test_mean_confidence_interval_is_the_student_t_interval():
    from promptlam.stats import mean_confidence_interval

    mean, low, high = mean_confidence_interval(np.array([1.0, 2.0, 3.0]))
    # mean 2, standard error 1/sqrt(3), t(0.975, 2 dof) = 4.3027
    assert mean == 2.0 and high - mean == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4) and mean - low == high - mean
    assert mean_confidence_interval(np.array([0.5])) == (0.5, 0.5, 0.5)
