import numpy as np
import pytest
from PIL import Image

from promptlam.config import DistractorConfig
from promptlam.envs.distractors import (
    VideoSourceError, discover_folder_videos, make_video_bank, playback_index, procedural_video,
)
from promptlam.seeding import seed_sequence


def test_procedural_video_is_seeded():
    a = procedural_video(seed_sequence(1, "v"), 32, 6, shapes=4)
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, procedural_video(seed_sequence(1, "v"), 32, 6, shapes=4))
    assert not np.array_equal(a, procedural_video(seed_sequence(2, "v"), 32, 6, shapes=4))


def test_procedural_video_has_rich_motion():
    video = procedural_video(seed_sequence(0, "v"), 64, 20, shapes=6).astype(np.float32)
    # Not one colour, not a static texture: colour varies within frames and frames change a lot.
    assert video.std(axis=(1, 2)).mean() > 20
    changed = (np.abs(np.diff(video, axis=0)).max(axis=-1) > 10).mean(axis=(1, 2))
    assert changed.min() > 0.05, "every frame should move a visible share of its pixels"


@pytest.mark.parametrize("mode, expected", [
    ("loop", [0, 1, 2, 3, 0, 1, 2, 3, 0]),
    ("bounce", [0, 1, 2, 3, 2, 1, 0, 1, 2]),
])
def test_playback(mode, expected):
    assert [playback_index(i, 4, mode) for i in range(9)] == expected
    assert playback_index(7, 1, mode) == 0


def test_procedural_banks_of_the_two_splits_are_disjoint():
    config = DistractorConfig(procedural={"train_videos": 2, "eval_videos": 2, "length": 3})
    train = make_video_bank(config, "train", 16, seed=0)
    evaluation = make_video_bank(config, "eval", 16, seed=0)
    assert not set(train.names) & set(evaluation.names)
    frames_train = [train.frames(name) for name in train.names]
    frames_eval = [evaluation.frames(name) for name in evaluation.names]
    assert all(not np.array_equal(a, b) for a in frames_train for b in frames_eval)


def _write_frames(folder, count, size=(40, 30), colour=(200, 10, 10)):
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", size, tuple(min(255, c + 10 * i) for c in colour)).save(folder / f"{i:05d}.jpg")


def test_davis_layout_uses_its_split_lists(tmp_path):
    for name in ("bear", "boat", "camel"):
        _write_frames(tmp_path / "JPEGImages/480p" / name, 3)
    (tmp_path / "ImageSets/2017").mkdir(parents=True)
    (tmp_path / "ImageSets/2017/train.txt").write_text("bear\nboat\n")
    (tmp_path / "ImageSets/2017/val.txt").write_text("camel\n")
    splits = discover_folder_videos(tmp_path, eval_fraction=0.5)
    assert [p.name for p in splits["train"]] == ["bear", "boat"]
    assert [p.name for p in splits["eval"]] == ["camel"]
    bank = make_video_bank(DistractorConfig(source="folder", folder=str(tmp_path)), "eval", 16, seed=0)
    frames = bank.frames("camel")
    assert frames.shape == (3, 16, 16, 3)  # centre-cropped to a square and resized


def test_plain_folder_of_frame_folders_and_gifs(tmp_path):
    _write_frames(tmp_path / "a", 2)
    _write_frames(tmp_path / "b", 2)
    frames = [Image.new("RGB", (20, 20), (0, 0, 40 * i)) for i in range(4)]
    frames[0].save(tmp_path / "c.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "notes.txt").write_text("not a video")
    splits = discover_folder_videos(tmp_path, eval_fraction=0.34)
    names = {split: {p.name for p in paths} for split, paths in splits.items()}
    assert names["train"] | names["eval"] == {"a", "b", "c.gif"}
    assert not names["train"] & names["eval"] and len(names["eval"]) == 1
    bank = make_video_bank(DistractorConfig(source="folder", folder=str(tmp_path), eval_fraction=0.34), "train", 8, 0)
    assert all(bank.frames(name).shape[1:] == (8, 8, 3) for name in bank.names)


def test_bad_video_folders_fail_with_one_line(tmp_path):
    with pytest.raises(VideoSourceError, match="is not a folder"):
        discover_folder_videos(tmp_path / "missing", 0.3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoSourceError, match="no videos in"):
        discover_folder_videos(tmp_path / "empty", 0.3)
    _write_frames(tmp_path / "one" / "only", 2)
    with pytest.raises(VideoSourceError, match="leaves no videos for the train split"):
        discover_folder_videos(tmp_path / "one", 0.3)
    fake = tmp_path / "fake"
    for video in ("a", "b", "c"):
        (fake / video).mkdir(parents=True)
        (fake / video / "00000.jpg").write_text("not an image")
    with pytest.raises(VideoSourceError, match=r"00000.jpg: cannot read image \(.*\); expected a frame") as error:
        bank = make_video_bank(DistractorConfig(source="folder", folder=str(fake)), "train", 8, 0)
        bank.frames(bank.names[0])
    assert "\n" not in str(error.value) and "pip install" not in str(error.value)
