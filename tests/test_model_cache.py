"""The config's hub models: listing, the cache check before any job (pass and fail), and the CLI.

Everything runs against a Hugging Face cache laid out by the test in a temporary folder, with
HF_HUB_OFFLINE=1 and sockets refused: the check must never touch the network.
"""

import json
import socket

import pytest

from promptlam.cli import main
from promptlam.config import validate_config
from promptlam.errors import UserError
from promptlam.vlm.cache import cached_snapshot, check_models_cached, download_models, hub_models

MOLMO = "allenai/Molmo-7B-D-0924"
MOLMO_REV = "1721478b71306fb7dc671176d5c204dc7a4d27d7"
CLIP = "openai/clip-vit-large-patch14"
CLIP_REV = "c" * 40
PROMPT = "Focus on the robot arm and the {object}."


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: the offline flag set and every socket connection refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("the cache check tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def make_config(tmp_path, **extra_targets):
    """A config with hub targets (Molmo pinned, its comparison variant sharing it, CLIP pinned) and
    targets without a hub model: a local folder, the packaged EfficientNet weights, pixels."""
    local = tmp_path / "models" / "tiny" / "clip"
    local.mkdir(parents=True, exist_ok=True)
    (local / "config.json").write_text("{}")
    targets = {
        "molmo": {"kind": "vlm", "family": "molmo", "model": MOLMO, "revision": MOLMO_REV, "prompt": PROMPT},
        "molmo-again": {"kind": "vlm", "family": "molmo", "model": MOLMO, "revision": MOLMO_REV, "prompt": PROMPT,
                        "pooling": "last"},
        "clip": {"kind": "embedding", "family": "clip", "model": CLIP, "revision": CLIP_REV},
        "tiny-clip": {"kind": "embedding", "family": "clip", "model": str(local)},
        "effnet": {"kind": "embedding", "family": "efficientnet_lite0", "model": "efficientnet-lite0"},
        "pixels": {"kind": "pixels"},
        **extra_targets,
    }
    return validate_config({"targets": targets})


def snapshot(cache, model, revision, files):
    """Lay out a cached snapshot as huggingface_hub does: blobs, a snapshot folder of links, refs/main."""
    repo = cache / ("models--" + model.replace("/", "--"))
    folder = repo / "snapshots" / revision
    folder.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for index, (name, content) in enumerate(files.items()):
        blob = repo / "blobs" / f"{index:040d}"
        blob.write_text(content)
        (folder / name).symlink_to(blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return folder


MOLMO_FILES = {
    "config.json": json.dumps({"auto_map": {"AutoConfig": "config_molmo.MolmoConfig",
                                            "AutoModelForCausalLM": "modeling_molmo.MolmoForCausalLM"}}),
    "preprocessor_config.json": json.dumps({"auto_map": {
        "AutoImageProcessor": "image_preprocessing_molmo.MolmoImageProcessor",
        "AutoProcessor": "preprocessing_molmo.MolmoProcessor"}}),
    "config_molmo.py": "", "modeling_molmo.py": "", "preprocessing_molmo.py": "", "image_preprocessing_molmo.py": "",
    "model.safetensors.index.json": json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                                               "b": "model-00002-of-00002.safetensors"}}),
    "model-00001-of-00002.safetensors": "x", "model-00002-of-00002.safetensors": "x",
}
CLIP_FILES = {"config.json": "{}", "model.safetensors": "x"}


def test_hub_models_lists_each_pinned_hub_model_once_and_skips_the_rest(tmp_path):
    pins = hub_models(make_config(tmp_path))
    assert [(p.model, p.revision, p.targets) for p in pins] == [
        (MOLMO, MOLMO_REV, ("molmo", "molmo-again")), (CLIP, CLIP_REV, ("clip",))]
    assert [p.model for p in hub_models(make_config(tmp_path), ["clip", "pixels"])] == [CLIP]
    assert hub_models(make_config(tmp_path), ["pixels", "effnet", "tiny-clip"]) == []
    with pytest.raises(UserError, match="unknown target"):
        hub_models(make_config(tmp_path), ["nope"])


def test_check_passes_when_every_needed_model_is_cached(tmp_path):
    cache = tmp_path / "hub"
    snapshot(cache, MOLMO, MOLMO_REV, MOLMO_FILES)
    snapshot(cache, CLIP, CLIP_REV, CLIP_FILES)
    check_models_cached(make_config(tmp_path), cache_dir=cache)
    folder, why = cached_snapshot(hub_models(make_config(tmp_path), ["molmo"])[0], cache)
    assert folder == cache / "models--allenai--Molmo-7B-D-0924" / "snapshots" / MOLMO_REV and why == ""


def test_check_fails_in_one_line_naming_target_model_revision_and_command(tmp_path):
    cache = tmp_path / "hub"
    snapshot(cache, CLIP, CLIP_REV, CLIP_FILES)
    config = make_config(tmp_path)
    with pytest.raises(UserError) as error:
        check_models_cached(config, cache_dir=cache, config_hint="--config config.yaml")
    message = str(error.value)
    assert "\n" not in message
    for part in ("targets.molmo:", MOLMO, MOLMO_REV, "promptlam models download --config config.yaml",
                 f"hf download {MOLMO} --revision {MOLMO_REV}"):
        assert part in message
    # only the targets the requested jobs need count
    check_models_cached(config, ["clip", "pixels"], cache_dir=cache)


def test_check_fails_on_another_revision_than_the_pinned_one(tmp_path):
    cache = tmp_path / "hub"
    snapshot(cache, MOLMO, "d" * 40, MOLMO_FILES)
    with pytest.raises(UserError, match=f"{MOLMO} at revision {MOLMO_REV} is not in the local"):
        check_models_cached(make_config(tmp_path), ["molmo"], cache_dir=cache)


@pytest.mark.parametrize("dropped", ["model-00002-of-00002.safetensors", "modeling_molmo.py",
                                     "image_preprocessing_molmo.py", "config.json"])
def test_check_fails_on_an_interrupted_download(tmp_path, dropped):
    cache = tmp_path / "hub"
    snapshot(cache, MOLMO, MOLMO_REV, {k: v for k, v in MOLMO_FILES.items() if k != dropped})
    with pytest.raises(UserError, match=f"{dropped}.*interrupted download"):
        check_models_cached(make_config(tmp_path), ["molmo"], cache_dir=cache)


def test_check_fails_on_an_unpinned_model(tmp_path):
    cache = tmp_path / "hub"
    snapshot(cache, "org/unpinned", "e" * 40, CLIP_FILES)
    config = make_config(tmp_path, unpinned={"kind": "embedding", "family": "dinov2", "model": "org/unpinned"})
    with pytest.raises(UserError, match="targets.unpinned: org/unpinned has no pinned revision"):
        check_models_cached(config, ["unpinned"], cache_dir=cache)


def test_download_dry_run_names_every_model_at_its_revision(tmp_path):
    done = download_models(make_config(tmp_path), dry_run=True)
    assert [pin.hf_command() for pin, _ in done] == [f"hf download {MOLMO} --revision {MOLMO_REV}",
                                                      f"hf download {CLIP} --revision {CLIP_REV}"]


def test_cli_models_check_and_download_dry_run(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # the default cache_dir
    config = tmp_path / "config.json"  # JSON is YAML
    config.write_text(json.dumps({"targets": {
        "molmo": {"kind": "vlm", "family": "molmo", "model": MOLMO, "revision": MOLMO_REV, "prompt": PROMPT}}}))
    assert main(["models", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("promptlam: error: targets.molmo:") and f"--config {config}" in err
    snapshot(cache, MOLMO, MOLMO_REV, MOLMO_FILES)
    assert main(["models", "check", "--config", str(config)]) == 0
    assert main(["models", "download", "--dry-run", "--config", str(config)]) == 0
    assert f"hf download {MOLMO} --revision {MOLMO_REV}" in capsys.readouterr().out


def test_a_revision_in_another_format_than_the_family_loads_is_one_line(tmp_path, monkeypatch):
    """Phi-4's original hub revisions are remote code (model_type "phi4mm"); its family loads the
    transformers-native format only, and says so before loading anything."""
    import huggingface_hub.constants

    from promptlam.config import VLMTarget
    from promptlam.vlm.families import get_family
    from promptlam.vlm.loading import resolve_source

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    family = get_family("phi4_multimodal")
    model = "microsoft/Phi-4-multimodal-instruct"
    snapshot(cache, model, "a" * 40, {"config.json": json.dumps({"model_type": "phi4mm"}), "model.safetensors": "x"})
    target = VLMTarget(kind="vlm", family="phi4_multimodal", model=model, revision="a" * 40, prompt=PROMPT)
    with pytest.raises(UserError) as error:
        resolve_source(target, family, "targets.phi")
    message = str(error.value)
    assert "\n" not in message and message.startswith("targets.phi.revision: ")
    assert "model_type 'phi4mm'" in message and "'phi4_multimodal'" in message

    native = "b" * 40  # a snapshot in the family's format passes (in another cache: snapshot() reuses blob names)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub2"))
    snapshot(tmp_path / "hub2", model, native, {"config.json": json.dumps({"model_type": "phi4_multimodal"}),
                                                "model.safetensors": "x"})
    assert resolve_source(target.model_copy(update={"revision": native}), family, "targets.phi").commit == native

    folder = tmp_path / "saved"  # a local folder gets the same check
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "phi4mm"}))
    with pytest.raises(UserError, match=r"^targets.phi.model: .*model_type 'phi4mm'"):
        resolve_source(target.model_copy(update={"model": str(folder)}), family, "targets.phi")
