"""Downstream: latent and true-action behaviour cloning, the decoder, online evaluation, Figure 1."""

import json

import numpy as np
import pytest
import torch

from promptlam.config import validate_config
from promptlam.data.labelled import write_labelled_subset
from promptlam.errors import UserError
from promptlam.lam.data import TaskFiles, TransitionData
from promptlam.lam.train import load_trained, train_run
from promptlam.policy.evaluate import evaluate
from promptlam.policy.train import label_transitions, load_policy, train_decoder, train_policy
from promptlam.runs import PolicyKey, RunKey

from conftest import TINY

TASKS = ["reach-v3"]
SMALL = {
    "lam": {"encoder_channels": [4, 8], "hidden_dim": 32, "max_offset": 3, "steps": 4, "batch_size": 8,
            "log_every": 2, "checkpoint_every": 4},
    "bc": {"encoder_channels": [4, 8], "hidden_dim": 32, "steps": 4, "batch_size": 8, "log_every": 2},
    "decoder": {"hidden_dim": 16, "updates": 20, "batch_size": 8},
    "evaluation": {"episodes": 3, "max_steps": 4, "videos": 1},
}


def small_config(**sections):
    data = {**TINY, **SMALL}
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return validate_config(data, "test config")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, rollout_path):
    """A LAM run, its latent policy and a decoder on two labelled trajectories, in one folder tree."""
    root = tmp_path_factory.mktemp("downstream")
    config = small_config()
    key = PolicyKey(0, RunKey("lapo", "pixels", "absolute", 8, 0))
    train_run(config, key.lam, [TaskFiles(rollout_path)], root / key.lam.path, TASKS, progress=False)
    bc = train_policy(config, key, [rollout_path], root / key.path, TASKS, root / key.lam.path, progress=False)
    labelled = root / "labelled.h5"
    write_labelled_subset(rollout_path, 2, config.seed, labelled)
    decoder = train_decoder(config, key, 2, [labelled], [rollout_path], root / key.path, root / key.decoder_path(2), TASKS)
    return {"root": root, "config": config, "key": key, "bc": bc, "decoder": decoder}


def test_latent_policy_and_decoder_train(trained):
    assert np.isfinite(trained["bc"]["final_loss"]) and trained["bc"]["label_variance"] > 0
    assert trained["bc"]["label_seconds"] >= 0
    assert [row["step"] for row in trained["bc"]["curve"]] == [2, 4]
    decoder = trained["decoder"]
    assert decoder["budget"] == 2 and decoder["transitions"] > 0 and np.isfinite(decoder["train_mse"])
    assert (trained["root"] / trained["key"].decoder_path(2) / "decoder.safetensors").exists()


def test_true_action_policy_fits_its_batches_better_with_training(tmp_path, rollout_path):
    short = train_policy(small_config(bc={"steps": 2, "log_every": 1}), PolicyKey(0), [rollout_path], tmp_path / "a", TASKS,
                         progress=False)
    longer = train_policy(small_config(bc={"steps": 60, "log_every": 10, "learning_rate": 1e-3}), PolicyKey(0),
                          [rollout_path], tmp_path / "b", TASKS, progress=False)
    assert longer["final_loss"] < short["curve"][0]["loss"]


def test_a_killed_bc_job_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, rollout_path):
    from safetensors.torch import load_file

    config = small_config(bc={"steps": 12, "log_every": 2, "checkpoint_every": 4, "augment": True})
    whole = train_policy(config, PolicyKey(0), [rollout_path], tmp_path / "whole", TASKS, progress=False)
    killed = tmp_path / "killed"
    assert train_policy(config, PolicyKey(0), [rollout_path], killed, TASKS, progress=False, stop_after=6) is None
    assert (killed / "checkpoint.pt").exists() and not (killed / "policy.safetensors").exists()  # step 4 saved
    resumed = train_policy(config, PolicyKey(0), [rollout_path], killed, TASKS, progress=False)
    assert resumed["curve"] == whole["curve"]
    before, after = load_file(tmp_path / "whole/policy.safetensors"), load_file(killed / "policy.safetensors")
    assert all(before[name].equal(after[name]) for name in before)
    with pytest.raises(UserError, match=r"config.bc.learning_rate differs"):  # a checkpoint of another config
        train_policy(small_config(bc={"steps": 12, "checkpoint_every": 4, "augment": True, "learning_rate": 1.0}), PolicyKey(0),
                     [rollout_path], killed, TASKS, progress=False)


def test_transitions_are_labelled_once_by_the_frozen_idm(trained, rollout_path):
    """Each transition's label is the IDM's latent of (o_t, o_{t+1}), at the transition's flat
    index, the index a BC batch carries."""
    root, key, config = trained["root"], trained["key"], trained["config"]
    data = TransitionData([TaskFiles(rollout_path)], config.lam.frame_stack, 1)
    idm = load_trained(root / key.lam.path, config, key.lam, TASKS, data.frame_size)
    labels = label_transitions(idm, data, torch.device("cpu"), progress=False, batch_size=5)
    assert labels.shape == (len(data), 8)
    batch = data.batch(*data.sample(seed=0, step=3, batch_size=7))
    with torch.no_grad():
        direct = idm.infer_latent(batch["obs"], batch["future"])[0]
    torch.testing.assert_close(labels[batch["index"]], direct, rtol=1e-5, atol=1e-5)


def _evaluate(trained, outs, workers):
    root, key = trained["root"], trained["key"]
    return evaluate(trained["config"], key, TASKS, [trained["rollouts"]], outs, root / key.path, 2,
                    root / key.decoder_path(2), workers=workers, progress=False)


def test_evaluation_is_reproducible_per_episode_whatever_the_processes(trained, rollout_path, tmp_path):
    trained = {**trained, "rollouts": rollout_path}
    both = {"eval": tmp_path / "one/eval.json", "train": tmp_path / "one/seen.json"}
    alone = _evaluate(trained, both, workers=1)["eval"]
    parallel = _evaluate(trained, {"eval": tmp_path / "two/eval.json"}, workers=2)["eval"]
    three = _evaluate(trained, {"train": tmp_path / "three/seen.json", "eval": tmp_path / "three/eval.json"}, workers=3)
    episodes = alone["tasks"]["reach-v3"]["episodes"]
    assert [e["index"] for e in episodes] == [0, 1, 2]
    assert all(1 <= e["steps"] <= 4 for e in episodes)
    assert episodes == parallel["tasks"]["reach-v3"]["episodes"]  # seeds, steps, returns, successes
    assert episodes == three["eval"]["tasks"]["reach-v3"]["episodes"]
    assert len({e["seed"] for e in episodes}) == 3
    assert alone["success_rate"] == np.mean([e["success"] for e in episodes])
    written = json.loads((tmp_path / "one/eval.json").read_text())
    assert written["record"]["budget"] == 2 and written["episodes_per_task"] == 3
    assert written["background"] == "eval"
    gif = tmp_path / "one/videos/reach-v3-eval-episode0.gif"
    import imageio.v3 as iio

    assert iio.imread(gif).shape[:3] == (episodes[0]["steps"] + 1, 256, 256)  # every frame, enlarged
    assert not (tmp_path / "one/videos/reach-v3-eval-episode1.gif").exists()
    seen = json.loads((tmp_path / "one/seen.json").read_text())
    assert seen["background"] == "train" and seen["tasks"] == three["train"]["tasks"]
    assert [e["seed"] for e in seen["tasks"]["reach-v3"]["episodes"]] == [e["seed"] for e in episodes]  # same layouts
    assert (tmp_path / "one/videos/reach-v3-train-episode0.gif").exists()


def test_episodes_are_shared_out_in_runs_of_equal_length():
    from promptlam.policy.evaluate import balanced_segments

    units = [("a", "train", "a.h5"), ("b", "train", "b.h5"), ("c", "train", "c.h5")]
    shares = balanced_segments(units, episodes=5, workers=2)
    assert [sum(len(s.episodes) for s in share) for share in shares] == [8, 7]
    assert [(s.task, s.episodes) for s in shares[0]] == [("a", (0, 1, 2, 3, 4)), ("b", (0, 1, 2))]
    assert [(s.task, s.episodes) for s in shares[1]] == [("b", (3, 4)), ("c", (0, 1, 2, 3, 4))]
    assert len(balanced_segments(units[:1], episodes=2, workers=4)) == 2  # never an empty share


def test_random_actions_give_the_floor_under_the_same_protocol(rollout_path, tmp_path):
    config = small_config(evaluation={"episodes": 3, "videos": 1})
    first = evaluate(config, None, TASKS, [rollout_path], {"eval": tmp_path / "a.json"}, workers=1, progress=False)["eval"]
    again = evaluate(config, None, TASKS, [rollout_path], {"eval": tmp_path / "b.json"}, workers=2, progress=False)["eval"]
    assert first["tasks"] == again["tasks"]  # seeded by the episode, whatever the processes
    assert first["record"] == {"stage": "random-actions", "seed": config.seed, "tasks": TASKS}
    returns = {e["return"] for e in first["tasks"]["reach-v3"]["episodes"]}
    assert len(returns) == 3  # different random actions per episode
    assert not (tmp_path / "videos").exists()


def test_episodes_the_background_cannot_change_are_played_once_and_reported_for_every_split(rollout_path, tmp_path):
    from promptlam.policy.evaluate import backgrounds_matter
    from promptlam.runs import RunKey

    assert not backgrounds_matter(None)
    assert not backgrounds_matter(PolicyKey(0, RunKey("target-clean", "clean-16", "absolute", 8, 0)))
    assert backgrounds_matter(PolicyKey(0, RunKey("target", "clean-16", "delta", 8, 0)))
    assert backgrounds_matter(PolicyKey(0))
    config = small_config(evaluation={"episodes": 2})
    outs = {"train": tmp_path / "seen.json", "eval": tmp_path / "unseen.json"}
    both = evaluate(config, None, TASKS, [rollout_path], outs, workers=1, progress=False)
    alone = evaluate(config, None, TASKS, [rollout_path], {"eval": tmp_path / "alone.json"}, workers=1,
                     progress=False)["eval"]
    assert both["train"]["tasks"] == both["eval"]["tasks"] == alone["tasks"]
    assert [both[b]["played_with_background"] for b in ("train", "eval")] == ["train", "train"]
    assert json.loads(outs["eval"].read_text())["background"] == "eval"


def test_a_killed_evaluation_reruns_cleanly(trained, rollout_path, tmp_path):
    out = tmp_path / "eval.json"
    out.with_name("eval.json.tmp").write_text('{"half": ')  # what a kill mid-write would leave
    result = _evaluate({**trained, "rollouts": rollout_path}, {"eval": out}, workers=1)["eval"]
    assert json.loads(out.read_text())["success_rate"] == result["success_rate"]
    assert not out.with_name("eval.json.tmp").exists()


def test_stages_refuse_artifacts_made_under_another_config(trained, rollout_path, tmp_path):
    root, key = trained["root"], trained["key"]
    with pytest.raises(UserError, match=r"config.bc.learning_rate differs"):
        load_policy(root / key.path, small_config(bc={"learning_rate": 1.0}), key, TASKS, 64)
    with pytest.raises(UserError, match=r"decoder.updates differs"):
        evaluate(small_config(decoder={"updates": 7}), key, TASKS, [rollout_path], {"eval": tmp_path / "e.json"},
                 root / key.path, 2, root / key.decoder_path(2), workers=1, progress=False)
    with pytest.raises(UserError, match=r"config.lam.learning_rate differs"):
        train_policy(small_config(lam={"learning_rate": 1.0}), key, [rollout_path], tmp_path / "bc", TASKS,
                     root / key.lam.path, progress=False)
    with pytest.raises(UserError, match="no readable policy.safetensors"):
        load_policy(tmp_path / "missing", trained["config"], key, TASKS, 64)


def test_true_action_policy_is_evaluated_without_a_decoder(rollout_path, tmp_path):
    config = small_config(evaluation={"episodes": 2, "videos": 0})
    key = PolicyKey(1)
    train_policy(config, key, [rollout_path], tmp_path / key.path, TASKS, progress=False)
    result = evaluate(config, key, TASKS, [rollout_path], {"eval": tmp_path / "eval.json"}, tmp_path / key.path,
                      workers=1, progress=False)["eval"]
    assert result["budget"] is None and len(result["tasks"]["reach-v3"]["episodes"]) == 2
    assert not (tmp_path / "videos").exists()


def _fake_eval(path, seed, rates):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seed": seed, "tasks": {task: {"success_rate": rate} for task, rate in rates.items()}}))


def test_fig1_reads_every_evaluation_and_writes_pdf_and_csv(tmp_path):
    import pandas as pd

    from promptlam.figures import RANDOM_LABEL, fig1_evaluations, fig1_inputs, make_fig1

    tasks = ["reach-v3", "drawer-close-v3"]
    config = validate_config({**TINY, "tasks": tasks, "evaluation": {"backgrounds": ["train", "eval"]},
                              "figures": {"fig1": {
        "entries": [{"label": "LAPO", "method": "lapo", "target": "pixels"},
                    {"label": "BC", "method": "bc-actions"}],
        "latent_dim": 8, "seeds": [0, 1], "labelled_budget": 2, "normalise_by": "BC", "bootstrap_reps": 200},
        "sweeps": {"latent_dim": None, "labelled_budget": None}, "comparisons": {}, "summary": None,
        "screening_transfer": None}})
    config.check_figures()
    evaluations = fig1_evaluations(config)
    assert evaluations["eval"]["LAPO"][1] == "runs/lam/lapo/pixels/absolute/ld8/s1/decoder/n2/eval-eval.json"
    assert evaluations["train"]["BC"][0] == "runs/bc-actions/s0/eval-train.json"
    assert "runs/random-actions/eval-train.json" in fig1_inputs(config)
    rates = {"LAPO": [{"reach-v3": 0.2, "drawer-close-v3": 0.4}, {"reach-v3": 0.4, "drawer-close-v3": 0.4}],
             "BC": [{"reach-v3": 0.8, "drawer-close-v3": 0.8}, {"reach-v3": 0.8, "drawer-close-v3": 0.8}]}
    for background, labels in evaluations.items():
        for label, paths in labels.items():
            for seed, path in enumerate(paths):
                scale = 1.0 if background == "train" else 0.5
                _fake_eval(tmp_path / path, seed, {t: r * scale for t, r in rates[label][seed].items()})
        _fake_eval(tmp_path / f"runs/random-actions/eval-{background}.json", 0, {"reach-v3": 0.0, "drawer-close-v3": 0.3})
    summary = make_fig1(config, tmp_path, tmp_path / "fig1.pdf", tmp_path / "fig1.csv")
    assert (tmp_path / "fig1.pdf").read_bytes().startswith(b"%PDF")
    table = pd.read_csv(tmp_path / "fig1.csv")
    raw = table[(table.scale == "raw") & (table.background == "train")].set_index("label")
    assert raw.loc["LAPO", "mean"] == pytest.approx(0.35) and raw.loc["BC", "iqm"] == pytest.approx(0.8)
    unseen = table[(table.scale == "raw") & (table.background == "eval")].set_index("label")
    assert unseen.loc["LAPO", "mean"] == pytest.approx(0.175)
    assert raw.loc[RANDOM_LABEL, "mean"] == pytest.approx(0.15) and raw.loc[RANDOM_LABEL, "n_runs"] == 1
    normalised = summary[(summary.scale == "normalised") & (summary.background == "train")].set_index("label")
    assert normalised.loc["LAPO", "mean"] == pytest.approx(0.35 / 0.8)
    (tmp_path / evaluations["eval"]["BC"][1]).unlink()
    with pytest.raises(UserError, match="runs/bc-actions/s1/eval-eval.json: no readable evaluation"):
        make_fig1(config, tmp_path, tmp_path / "fig1.pdf", tmp_path / "fig1.csv")


def test_figure_config_errors_name_the_key():
    from promptlam.config import ConfigError

    base = {**TINY, "figures": {"fig1": {"entries": [{"label": "A", "method": "lapo", "target": "state"}],
                                         "labelled_budget": 2, "normalise_by": None}}}
    with pytest.raises(ConfigError, match=r"figures.fig1.entries.0: lapo predicts pixels or clean targets"):
        validate_config(base).check_figures()
    base["figures"]["fig1"].update(entries=[{"label": "A", "method": "bc-actions"}], labelled_budget=3)
    with pytest.raises(ConfigError, match=r"figures.fig1.labelled_budget: 3 is not one of"):
        validate_config(base).check_figures()
    base["figures"]["fig1"].update(labelled_budget=2, normalise_by="B")
    with pytest.raises(ConfigError, match=r"figures.fig1.normalise_by: no entry labelled 'B'"):
        validate_config(base).check_figures()


def test_lam_probe_table_summarises_seeds_with_t_intervals(tmp_path):
    import pandas as pd

    from promptlam.figures import lam_probe_table

    config = validate_config({**TINY, "lam": {"runs": [{"method": "lapo", "target": "pixels", "latent_dims": [8],
                                                         "seeds": [0, 1, 2]}]}})
    for seed, mse in enumerate([0.1, 0.2, 0.3]):
        probes = {"action_xyz": {"latent": mse, "state": 0.5, "variance": 0.5},
                  "residual": {"latent+state": 0.2, "action+state": 0.1, "variance": 0.25}}
        path = tmp_path / f"runs/lam/lapo/pixels/absolute/ld8/s{seed}/metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"heldout_probe_by_horizon": {"1": probes}}))
    summary, runs = lam_probe_table(config, tmp_path)
    assert len(runs) == 3 * 4
    row = summary[(summary.predicts == "action_xyz") & (summary.feature == "latent")].iloc[0]
    assert row.seeds == 3 and row.mse == pytest.approx(0.2) and row.relative_mse == pytest.approx(0.4)
    assert row.formulation == "absolute"
    assert row.mse_high - row.mse == pytest.approx(4.3027 * 0.1 / np.sqrt(3), rel=1e-3)
    assert set(summary[summary.predicts == "residual"].feature) == {"latent+state", "action+state"}
    from promptlam.figures import make_lam_probes

    make_lam_probes(config, tmp_path, tmp_path / "probes.pdf", tmp_path / "probes.csv")
    assert (tmp_path / "probes.pdf").read_bytes().startswith(b"%PDF")
    assert len(pd.read_csv(tmp_path / "probes.csv")) == len(summary)
    (tmp_path / "runs/lam/lapo/pixels/absolute/ld8/s2/metrics.json").unlink()
    with pytest.raises(UserError, match="s2/metrics.json: no readable LAM metrics"):
        lam_probe_table(config, tmp_path)
