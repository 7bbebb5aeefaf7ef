"""The Distracting MetaWorld env: compositing, twins, seeding, action repeat, upright frames."""

import numpy as np
import pytest

from promptlam.config import RenderConfig
from promptlam.envs.distracting import DistractingMetaWorld, make_metaworld_env
from promptlam.envs.factory import make_env
from promptlam.envs.rendering import SceneRenderer

from conftest import tiny_config


@pytest.fixture(scope="module")
def env():
    environment = make_env(tiny_config(), "reach-v3", "train")
    yield environment
    environment.close()


def test_observation_layout(env):
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert observation["pixels"].shape == (64, 64, 3)
    assert info["success"] is False and info["video_frame"] >= 0


def test_background_shows_the_video_and_the_robot_does_not(env):
    observation, _ = env.reset(seed=1)
    background = env.background_mask
    video = env._frames[env.video_frame]
    pixels, clean = observation["pixels"], observation["clean"]
    assert 0.2 < background.mean() < 0.8
    np.testing.assert_array_equal(pixels[background], video[background])
    np.testing.assert_array_equal(pixels[~background], clean[~background])
    # The gripper, projected into the frame, is in front of the background: its pixel is the
    # robot's own colour in both twins.
    x, y = env._renderer.project(env._env.data, env._env.tcp_center).astype(int)
    assert not background[y, x]
    np.testing.assert_array_equal(pixels[y, x], clean[y, x])
    # The top-left corner of the pulled-back corner camera sees only background (floor and sky).
    assert background[:4, :4].all()
    np.testing.assert_array_equal(pixels[:4, :4], video[:4, :4])


def test_clean_twin_is_the_plain_render_of_the_same_state(env):
    observation, _ = env.reset(seed=2)
    observation, *_ = env.step(np.array([0.5, -0.5, 0.2, 0.0]))
    plain = env._renderer._renderer
    plain.update_scene(env._env.data, camera=env._renderer.camera_id)
    np.testing.assert_array_equal(observation["clean"], np.ascontiguousarray(plain.render()[::-1, ::-1]))


def test_reset_seed_fixes_layout_video_and_frames(env):
    first, _ = env.reset(seed=7)
    episode = env.episode
    second, _ = env.reset(seed=7)
    assert env.episode.video == episode.video and env.episode.video_start == episode.video_start
    np.testing.assert_array_equal(env.episode.layout, episode.layout)
    np.testing.assert_array_equal(first["pixels"], second["pixels"])
    env.reset(seed=8)
    assert not np.array_equal(env.episode.layout, episode.layout)


def test_action_repeat_and_video_advance_per_env_step():
    config = tiny_config(rollouts={"action_repeat": 3, "episode": {"max_steps": 4}},
                         distractors={"playback": "loop", "random_start": False})
    env = make_env(config, "reach-v3", "train")
    try:
        _, info = env.reset(seed=0)
        assert info["video_frame"] == 0
        for step in range(1, 5):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            assert info["env_steps"] == 3 * step
            assert info["video_frame"] == (3 * step) % config.distractors.procedural.length
            assert not terminated and truncated == (step == 4)
    finally:
        env.close()


def test_actions_move_the_gripper_visibly(env):
    env.reset(seed=3)
    before = env._renderer.project(env._env.data, env._env.tcp_center)
    for _ in range(3):
        _, _, _, _, info = env.step(np.array([1.0, 0.0, 0.0, 0.0]))
    assert np.linalg.norm(info["gripper_px"] - before) > 1.0


def test_without_distractors_the_twins_are_equal():
    env = make_env(tiny_config(distractors={"enabled": False}), "reach-v3", "train")
    try:
        observation, info = env.reset(seed=0)
        np.testing.assert_array_equal(observation["pixels"], observation["clean"])
        assert info["video_frame"] == -1 and env.episode.video == ""
    finally:
        env.close()


def test_upright_is_a_half_turn_not_a_flip():
    frames = {}
    for upright in (True, False):
        environment = make_metaworld_env("reach-v3")
        environment.seed(0)
        environment.reset()
        renderer = SceneRenderer(environment.model, RenderConfig(resolution=48, upright=upright))
        frames[upright], _ = renderer.render(environment.data)
        renderer.close()
        environment.close()
    np.testing.assert_array_equal(frames[True], np.rot90(frames[False], 2))


def test_two_envs_in_one_process_render_their_own_scenes():
    config = tiny_config()
    alone = make_env(config, "reach-v3", "train")
    expected = alone.reset(seed=5)[0]["clean"]
    alone.close()
    first = make_env(config, "reach-v3", "train")
    second = make_env(config, "drawer-close-v3", "train")
    try:
        second.reset(seed=5)
        np.testing.assert_array_equal(first.reset(seed=5)[0]["clean"], expected)
    finally:
        first.close()
        second.close()


def test_unknown_camera_is_a_clear_error():
    environment = make_metaworld_env("reach-v3")
    with pytest.raises(ValueError, match="render.camera: no camera 'side'"):
        SceneRenderer(environment.model, RenderConfig(camera="side"))
    environment.close()


def test_env_rejects_unknown_task_before_rendering():
    with pytest.raises(ValueError, match="unknown task 'reach'"):
        DistractingMetaWorld("reach", RenderConfig(), tiny_config().distractors, "train", seed=0)
