"""Comparison figures (`figures.comparisons`): target variants, which runs each reads, the numbers,
the figure and its LaTeX table, and config errors."""

import json

import pandas as pd
import pytest

from promptlam.config import ConfigError, validate_config, variant_name
from promptlam.figures import REFERENCE_GROUP, comparison_inputs, comparison_points, letter, make_comparison

from conftest import TINY

TASKS = ["reach-v3", "drawer-close-v3"]
VLM = {"kind": "vlm", "family": "molmo2", "model": "models/tiny/molmo2", "prompt": "Focus on the {object}.",
       "precision": "fp32", "image_size": 32}
CLIP = {"kind": "embedding", "family": "clip", "model": "models/tiny/clip", "precision": "fp32"}
PROMPTS = {"targets": ["vlm"], "vary": "prompt", "values": ["Describe the image.", "Focus on the {object}."],
           "style": "box", "entries": [{"label": "LAPO", "method": "lapo", "target": "pixels"}],
           "latent_dim": 8, "labelled_budget": 2, "seeds": [0, 1], "bootstrap_reps": 200}


def comparison_config(**comparisons):
    return validate_config({**TINY, "tasks": TASKS, "evaluation": {"backgrounds": ["train", "eval"]},
                            "targets": {"pixels": {"kind": "pixels"}, "vlm": VLM, "clip": CLIP},
                            "figures": {"sweeps": {}, "comparisons": comparisons, "summary": None, "screening_transfer": None,
                                        "fig1": {"entries": [{"label": "BC", "method": "bc-actions"}],
                                                 "labelled_budget": 2, "normalise_by": None}}})


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_a_varied_prompt_makes_one_variant_target_per_new_value():
    config = comparison_config(prompts=PROMPTS)
    variant = variant_name("vlm", "prompt", "Describe the image.")
    assert variant.startswith("vlm+prompt-") and len(variant) == len("vlm+prompt-") + 8  # spaces: hashed
    assert set(config.targets) == {"pixels", "vlm", "clip", variant}
    assert config.targets[variant].prompt == "Describe the image."
    assert config.targets[variant].model_dump(exclude={"prompt"}) == config.targets["vlm"].model_dump(exclude={"prompt"})
    # the value equal to the target's own prompt is the target itself; the config re-validates as it was dumped
    assert [target for _, _, target in config.comparison_variants("prompts")] == [variant, "vlm"]
    assert validate_config(config.model_dump(mode="json")).targets == config.targets
    assert variant_name("vlm", "layers", [-1, -2]) == "vlm+layers--1_-2"
    assert variant_name("vlm", "pooling", "last") == "vlm+pooling-last"


def test_a_comparison_reads_each_bar_and_writes_figure_csv_and_latex(tmp_path):
    config = comparison_config(prompts=PROMPTS)
    config.check_figures()
    inputs = comparison_inputs(config, "prompts")
    variant = variant_name("vlm", "prompt", "Describe the image.")
    assert f"runs/lam/target/{variant}/absolute/ld8/s1/metrics.json" in inputs
    assert "runs/lam/target/vlm/absolute/ld8/s0/decoder/n2/eval-eval.json" in inputs
    assert "runs/lam/lapo/pixels/absolute/ld8/s1/decoder/n2/eval-train.json" in inputs
    # 3 bars x 2 seeds x (2 evaluations + metrics)
    assert len(inputs) == 3 * 2 * 3
    rates = {"A": 0.2, "B": 0.6, "LAPO": 0.1}
    for point in comparison_points(config, "prompts"):
        label = point.columns["label"]
        for background in ("train", "eval"):
            _write(tmp_path / point.key.eval_path(point.budget, background),
                   {"seed": point.seed, "tasks": {task: {"success_rate": rates[label]} for task in TASKS}})
        relative = {"A": 0.9, "B": 0.5, "LAPO": 0.95}[label] + 0.01 * point.seed
        _write(tmp_path / point.key.lam.path / "metrics.json",
               {"heldout_probe": {"action_xyz": {"latent": relative * 2, "variance": 2.0},
                                  "residual": {"latent+expert": 0.5 * relative, "expert": 0.5}}})
    paths = {suffix: tmp_path / f"prompts.{suffix}" for suffix in ("pdf", "csv", "tex")}
    table = make_comparison(config, "prompts", tmp_path, paths["pdf"], paths["csv"], paths["tex"])
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    written = pd.read_csv(paths["csv"], keep_default_na=False)
    # 3 bars x (2 probes + 2 background splits)
    assert len(written) == len(table) == 3 * 4
    success = table[(table.metric == "success_iqm") & (table.background == "eval")].set_index("label")
    assert success.loc["B", "estimate"] == pytest.approx(0.6) and success.loc["LAPO", "group"] == REFERENCE_GROUP
    assert success.loc["A", "value"] == "Describe the image." and success.loc["A", "target"] == variant
    probe = table[table.metric == "probe_action_xyz"].set_index("label")
    assert probe.loc["B", "estimate"] == pytest.approx(0.505) and probe.loc["B", "runs"] == 2
    assert probe.loc["B", "low"] < 0.505 < probe.loc["B", "high"]
    residual = table[table.metric == "probe_residual"].set_index("label")
    assert residual.loc["A", "estimate"] == pytest.approx(0.905)
    latex = paths["tex"].read_text()
    assert latex.startswith("\\begin{tabular}") and "0.600 [0.600, 0.600]" in latex and "LAPO" in latex


def test_targets_all_compares_every_vlm_and_embedding_target_and_formulation_varies_the_runs():
    config = comparison_config(every={"targets": "all", "latent_dim": 8, "labelled_budget": 2,
                                      "metrics": ["probe_action_xyz"]},
                               forms={"targets": ["clip"], "vary": "formulation", "values": ["absolute", "delta"],
                                      "latent_dim": 8, "metrics": ["probe_action_xyz"]})
    config.check_figures()
    assert config.comparison_targets("every") == ["vlm", "clip"]
    # probes only: no evaluation is read, so no policy is trained for it
    assert all(path.endswith("metrics.json") for path in comparison_inputs(config, "every"))
    assert {point.key.lam.formulation for point in comparison_points(config, "forms")} == {"absolute", "delta"}
    assert {point.columns["label"] for point in comparison_points(config, "forms")} == {"A", "B"}


@pytest.mark.parametrize("change, message", [
    ({"targets": ["nope"]}, r"figures.comparisons.c.targets: no target 'nope'"),
    ({"targets": ["vlm"], "method": "target", "vary": "formulation", "values": ["absolute", "weird"]},
     r"figures.comparisons.c: values: formulations are absolute, delta, conditioned"),
    ({"labelled_budget": 3}, r"figures.comparisons.c.labelled_budget: \[3\] not in rollouts.labelled_budgets"),
    ({"entries": [{"label": "vlm", "method": "lapo", "target": "pixels"}]}, r"labels must differ from the target names"),
])
def test_comparison_config_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        comparison_config(c={**PROMPTS, **change}).check_figures()


@pytest.mark.parametrize("change, message", [
    ({"targets": ["clip"]}, r"figures.comparisons.c.values: 'Describe the image.' is no prompt \(Value error, "
                            r"prompt is read by pooling text_patches only"),
    ({"targets": ["clip"], "vary": "layers", "values": [-1, -2], "style": "bars"},
     r"figures.comparisons.c.vary: target 'clip' \(embedding\) has no setting 'layers'"),
    ({"vary": "pooling", "values": ["mean_all", "median"]}, r"figures.comparisons.c.values: 'median' is no pooling"),
    ({"vary": None, "values": []}, r"style box draws a box over the variants"),
    ({"values": ["one"]}, r"vary: prompt needs at least two values"),
    ({"targets": "all"}, r"targets: all takes no variants"),
])
def test_variant_errors_are_one_line_at_validation(change, message):
    with pytest.raises(ConfigError, match=message):
        comparison_config(c={**PROMPTS, **change})


def test_a_comparison_and_a_sweep_cannot_share_a_name():
    sweep = {"axis": "latent_dim", "values": [4, 8], "entries": [{"label": "BC", "method": "bc-actions"}],
             "labelled_budget": 2}
    data = comparison_config(c=PROMPTS).model_dump(mode="json")
    data["figures"]["sweeps"] = {"c": sweep}
    with pytest.raises(ConfigError, match="a sweep has the same name"):
        validate_config(data).check_figures()


def test_letters_name_any_number_of_values():
    assert [letter(i) for i in (0, 1, 25, 26, 27, 52)] == ["A", "B", "Z", "AA", "AB", "BA"]


def test_the_summary_sets_each_claim_beside_its_measurement(tmp_path):
    from promptlam.figures import fig1_evaluations
    from promptlam.summary import CLAIMS, make_summary

    data = comparison_config(prompts=PROMPTS).model_dump(mode="json")
    data["targets"]["clean"] = {"kind": "clean"}
    data["figures"]["comparisons"]["bench"] = {"targets": "all", "latent_dim": 8, "labelled_budget": 2, "seeds": [0, 1],
                                               "bootstrap_reps": 200}
    data["figures"]["fig1"] = {"entries": [{"label": "LAPO", "method": "lapo", "target": "pixels"},
                                           {"label": "VLM", "method": "target", "target": "vlm"},
                                           {"label": "clean", "method": "lapo-clean", "target": "clean"}],
                               "latent_dim": 8, "labelled_budget": 2, "seeds": [0, 1], "normalise_by": None,
                               "random_floor": False, "bootstrap_reps": 200}
    data["figures"]["summary"] = {"vlm": "VLM", "baseline": "LAPO", "distractor_free": "clean", "benchmark": "bench",
                                  "prompts": "prompts"}
    config = validate_config(data)
    config.check_figures()
    success = {"pixels": 0.1, "vlm": 0.5, "clean": 0.7, "clip": 0.2, "A": 0.2, "B": 0.5}
    for name in ("bench", "prompts"):
        for point in comparison_points(config, name):
            rate = success.get(point.columns["label"], success.get(point.key.lam.target))
            for background in ("train", "eval"):
                _write(tmp_path / point.key.eval_path(point.budget, background),
                       {"seed": point.seed, "tasks": {task: {"success_rate": rate + 0.05 * point.seed} for task in TASKS}})
            _write(tmp_path / point.key.lam.path / "metrics.json",
                   {"heldout_probe": {"action_xyz": {"latent": 1.0 - rate, "variance": 1.0},
                                      "residual": {"latent+expert": 1.0, "expert": 1.0}}})
        make_comparison(config, name, tmp_path, tmp_path / f"figures/{name}.pdf", tmp_path / f"figures/{name}.csv",
                        tmp_path / f"tables/{name}.tex")
    for background, labels in fig1_evaluations(config).items():
        for label, paths in labels.items():
            for seed, path in enumerate(paths):
                rate = {"LAPO": 0.1, "VLM": 0.5, "clean": 0.7}[label] + 0.05 * seed
                _write(tmp_path / path, {"seed": seed, "tasks": {task: {"success_rate": rate} for task in TASKS}})
    text = make_summary(config, tmp_path, tmp_path / "summary.csv", tmp_path / "summary.txt")
    table = pd.read_csv(tmp_path / "summary.csv").fillna({"background": ""}).set_index(["claim", "background"])
    assert set(table.index.get_level_values(0)) == set(CLAIMS)
    beats = table.loc[("vlm_beats_lapo", "eval")]
    assert beats.estimate == pytest.approx(0.4) and beats.low <= 0.4 <= beats.high and beats.agrees == "yes"
    assert "ratio" in beats.note
    assert table.loc[("gap_recovered", "train")].estimate == pytest.approx(0.4 / 0.6)
    assert table.loc[("embeddings_worse", "eval")].agrees == "yes"  # vlm 0.5/0.55 against clip 0.2/0.25
    assert table.loc[("molmo_best", "eval")].agrees == "yes"  # molmo2 is a Molmo, its interval above clip's
    robust = table.loc[("molmo_most_robust", "eval")]
    assert robust.agrees == "not assessed" and robust.estimate == pytest.approx(0.3)  # one VLM: nothing to rank
    assert table.loc[("newer_not_better", "")].agrees == "not assessed"
    assert text.startswith("The paper's claims") and "up to 6x" in text


def test_screening_runs_live_apart_and_record_their_data_while_full_runs_record_as_before():
    from promptlam.runs import PolicyKey, RunKey, policy_record, run_record, screen_trajectories

    config = comparison_config()
    full = RunKey("lapo", "pixels", "absolute", 8, 0)
    screened = full.on(64)
    assert full.path == "runs/lam/lapo/pixels/absolute/ld8/s0"
    assert screened.path == "runs/screen64/lam/lapo/pixels/absolute/ld8/s0"
    assert PolicyKey(1, trajectories=64).path == "runs/screen64/bc-actions/s1"
    assert screen_trajectories("/screen64") == 64 and screen_trajectories("") is None
    assert "trajectories" not in run_record(config, full, TASKS)["run"]  # earlier artifacts stay valid
    assert run_record(config, screened, TASKS)["run"]["trajectories"] == 64
    assert policy_record(config, PolicyKey(0, screened), TASKS)["trajectories"] == 64
    assert "trajectories" not in policy_record(config, PolicyKey(0, full), TASKS)
    # the switch moves every figure's runs
    data = config.model_dump(mode="json") | {"screening": 16}
    data["figures"]["comparisons"] = {"c": PROMPTS}
    screening = validate_config(data)
    assert all(path.startswith("runs/screen16/") for path in comparison_inputs(screening, "c"))


def test_screening_subsets_split_the_total_evenly_outside_the_held_out_trajectories(rollout_path):
    from promptlam.errors import UserError
    from promptlam.lam.data import TaskFiles, screening_subsets

    files = [TaskFiles(rollout_path)] * 2  # 4 trajectories each, the last one held out at 0.2
    assert screening_subsets(files, None, 0.2) is None
    assert [list(s) for s in screening_subsets(files, 5, 0.2)] == [[0, 1, 2], [0, 1]]
    with pytest.raises(UserError, match="screening: 7 trajectories take 4 of .* which has 3 outside"):
        screening_subsets(files, 7, 0.2)
    with pytest.raises(UserError, match="cannot give each of the 2 tasks one"):
        screening_subsets(files, 1, 0.2)


def test_screening_transfer_correlates_the_rankings_per_seed(tmp_path):
    from promptlam.figures import make_transfer, transfer_inputs, transfer_runs

    data = comparison_config(every={"targets": "all", "entries": [{"label": "LAPO", "method": "lapo", "target": "pixels"}],
                                    "latent_dim": 8, "seeds": [0, 1, 2], "metrics": ["probe_action_xyz"]}
                             ).model_dump(mode="json")
    data["figures"]["screening_transfer"] = {"comparison": "every", "trajectories": 4}
    config = validate_config(data)
    config.check_figures()
    inputs = transfer_inputs(config)
    assert "runs/screen4/lam/target/clip/absolute/ld8/s2/metrics.json" in inputs
    assert "runs/lam/lapo/pixels/absolute/ld8/s0/metrics.json" in inputs and len(inputs) == 3 * 3 * 2
    full = {"vlm": 0.3, "clip": 0.6, "LAPO": 0.9}
    for columns, run_full, run_screen in transfer_runs(config):
        value = full[columns["label"]]
        for run, relative in ((run_full, value), (run_screen, value + 0.05 if run_full.seed < 2 else 1.2 - value)):
            _write(tmp_path / run.path / "metrics.json",
                   {"heldout_probe": {"action_xyz": {"latent": relative, "variance": 1.0}}})
    table = make_transfer(config, tmp_path, tmp_path / "t.pdf", tmp_path / "t.csv").set_index("statistic")
    assert (tmp_path / "t.pdf").read_bytes().startswith(b"%PDF")
    # seeds 0 and 1 keep the order (1), seed 2 reverses it (-1): mean 1/3, an interval spanning 0
    for statistic in ("spearman", "kendall"):
        row = table.loc[statistic]
        assert row.estimate == pytest.approx(1 / 3) and row.low < 0 < row.high and row.runs == 3
    probes = table.loc["probe_action_xyz"].set_index(["label", "data"])
    assert probes.loc[("clip", "full"), "estimate"] == pytest.approx(0.6)
    assert probes.loc[("clip", "screen4"), "estimate"] == pytest.approx((0.65 * 2 + 0.6) / 3)
