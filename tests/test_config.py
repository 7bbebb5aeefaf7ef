import json
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from promptlam.config import (
    Config, ConfigError, json_schema, load_config, markdown_reference, validate_config,
)
from promptlam.tasks import MT10

from conftest import REPO, tiny_config


def test_defaults_are_valid_and_paper_scale():
    config = Config()
    assert config.tasks == list(MT10)
    assert config.render.resolution == 128
    assert config.rollouts.labelled_budgets == [2, 4, 8, 16, 32, 64, 128]


def test_rollout_record_ignores_labelled_budgets():
    """Adding a labelled budget must not change what a rollout depends on (a rule parameter)."""
    few = validate_config({"rollouts": {"train_trajectories": 8, "labelled_budgets": [2]}})
    more = validate_config({"rollouts": {"train_trajectories": 8, "labelled_budgets": [2, 4, 8]}})
    assert few.rollout_section() == more.rollout_section()
    assert set(few.rollout_section()) == {"seed", "render", "distractors", "rollouts"}
    noisier = validate_config({"rollouts": {"train_trajectories": 8, "labelled_budgets": [2],
                                            "action_noise": {"std": 0.3}}})
    assert noisier.rollout_section() != few.rollout_section()
    validate_config(few.rollout_section())  # a recorded rollout config validates on its own


def test_config_yaml_is_the_defaults_written_out():
    config = load_config([REPO / "config.yaml"])
    assert config.model_copy(update={"targets": Config().targets}) == Config()
    assert Config().targets.items() <= config.targets.items()
    assert config.targets["molmo-7b-d-focus"].prompt.startswith("Do not describe background features.")


def test_smoke_profile_overrides_merge_deeply():
    config = load_config([REPO / "config.yaml", REPO / "profiles/smoke/smoke.yaml"])
    assert config.render.resolution == 64
    assert config.render.camera == "corner"  # untouched keys of an overridden section survive
    assert config.rollouts.action_noise.std == Config().rollouts.action_noise.std


@pytest.mark.parametrize("data, fragment", [
    ({"rollouts": {"action_repeat": 0}}, "rollouts.action_repeat: Input should be greater than or equal to 1"),
    ({"render": {"resolution": "big"}}, "render.resolution: Input should be a valid integer"),
    ({"render": {"colour": 1}}, "render.colour: unknown key"),
    ({"tasks": ["reach-v2"]}, "tasks: unknown task 'reach-v2'"),
    ({"tasks": ["reach-v3", "reach-v3"]}, "tasks: tasks are listed more than once"),
    ({"distractors": {"source": "folder"}}, "distractors.folder must name a folder"),
    ({"rollouts": {"train_trajectories": 3}}, "labelled_budgets [4, 8, 16, 32, 64, 128] exceed train_trajectories=3"),
])
def test_bad_config_is_a_one_line_error_naming_the_key(data, fragment):
    with pytest.raises(ConfigError) as error:
        validate_config(data, "config.yaml")
    message = str(error.value)
    assert fragment in message and message.startswith("config.yaml: ")
    assert "\n" not in message


def test_unreadable_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "missing.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([broken])
    with pytest.raises(ConfigError, match="--config-json: not valid JSON"):
        load_config([], ["{seed: 1}"])


def test_committed_schema_and_reference_are_current():
    committed = json.loads((REPO / "schemas/config.schema.json").read_text())
    assert committed == json_schema(), "run `make schema` after changing src/promptlam/config.py"
    assert (REPO / "docs/config.md").read_text() == markdown_reference() + "\n", "run `make schema`"


def test_every_key_is_documented():
    def walk(schema, defs):
        for name, prop in schema.get("properties", {}).items():
            if "$ref" in prop:
                prop = {**defs[prop["$ref"].split("/")[-1]], **prop}
            assert prop.get("description"), f"config key {name!r} has no description"
            walk(prop, defs)

    schema = json_schema()
    walk(schema, schema["$defs"])


def test_snakemake_schema_validation_accepts_config_and_rejects_bad_types():
    schema = str(REPO / "schemas/config.schema.json")
    good = yaml.safe_load((REPO / "config.yaml").read_text())
    snakemake_validate(good, schema, set_default=False)
    with pytest.raises(Exception, match="action_repeat"):
        snakemake_validate({**good, "rollouts": {**good["rollouts"], "action_repeat": "four"}}, schema, set_default=False)


@pytest.mark.parametrize("config_text, profile, message", [
    ("rollouts:\n  action_repeat: -2\n", False, "rollouts.action_repeat: Input should be greater than or equal to 1"),
    ("tasks: [reach]\n", False, "tasks: unknown task 'reach'"),
    ("colour: red\n", False, "colour: unknown key"),
    ("distractors: {source: folder, folder: EMPTY}\n", False, "distractors.folder: no videos in"),
    ("seed: 1\n", True, "--configfile replaced the profile's own config file profiles/smoke/smoke.yaml"),
])
def test_snakemake_stops_before_any_job_in_one_line_naming_the_key(tmp_path, config_text, profile, message):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_text.replace("EMPTY", str(tmp_path / "empty")))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
         "--directory", str(tmp_path), "--configfile", str(bad),
         *(["--profile", str(REPO / "profiles/smoke")] if profile else [])],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode != 0
    errors = [line for line in run.stderr.strip().splitlines() if not line.startswith("Using profile")]  # Snakemake's
    assert len(errors) == 1 and errors[0].startswith("promptlam: error: ") and message in errors[0], run.stderr[-2000:]
    if not profile:
        assert str(bad) in errors[0] or "distractors" in errors[0]  # the file, or the folder, is named
    assert not (tmp_path / "data").exists()


def test_a_dry_run_stops_in_one_line_on_a_model_it_would_need_but_not_once_the_target_exists(tmp_path):
    import os

    target = "data/targets/molmo-7b-d-focus/reach-v3.h5"
    environ = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}  # an empty cache

    def dry_run():
        return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                               "--cores", "1", "--directory", str(tmp_path), target],
                              capture_output=True, text=True, timeout=120, env=environ)

    run = dry_run()
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith(
        "promptlam: error: targets.molmo-7b-d-focus: allenai/Molmo-7B-D-0924 at revision")
    assert "not in the local Hugging Face cache" in run.stderr and "models download" in run.stderr
    (tmp_path / target).parent.mkdir(parents=True)
    (tmp_path / target).touch()  # computed elsewhere: nothing to load here
    assert dry_run().returncode == 0


def test_torch_threads_sets_torch_in_every_command_and_is_recorded(tmp_path):
    """The config key `torch_threads`: each command's torch computes with that many threads (the
    bytes of trained weights depend on it), and a run's record says so."""
    from promptlam.runs import RunKey, run_record

    script = ("import sys, torch; from promptlam.cli import main; torch.set_num_threads(2); "
              "code = main(sys.argv[1:]); print(torch.get_num_threads()); raise SystemExit(code)")
    for overrides, threads in (('{"torch_threads": 1}', "1"), ("{}", "2")):
        done = subprocess.run([sys.executable, "-c", script, "plan", "--config", str(REPO / "config.yaml"),
                               "--config-json", overrides, "fig1"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == threads
    run = RunKey("lapo", "pixels", "absolute", 16, 0)
    assert "torch_threads" not in run_record(tiny_config(), run, ["reach-v3"])
    assert run_record(tiny_config(torch_threads=1), run, ["reach-v3"])["torch_threads"] == 1
