"""Distracting MetaWorld: a gymnasium env that renders every step twice from one physics state.

``pixels`` is the distracted frame (a background video composited behind the scene through the
segmentation mask) and ``clean`` its distractor-free twin; ``state`` is MetaWorld's 39-d vector.
The same class serves data collection and online evaluation, so both see identical rendering.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from promptlam.config import DistractorConfig, RenderConfig
from promptlam.envs.distractors import VideoBank, make_video_bank, playback_index
from promptlam.envs.rendering import SceneRenderer
from promptlam.tasks import ACTION_DIM, STATE_DIM, check_split, check_task


def make_metaworld_env(task: str) -> Any:
    """A MetaWorld v3 env whose object and goal layout is drawn anew at each reset from its seed.

    MetaWorld freezes the layout per task variation; we set one variation (for the task's fixed
    settings) and then switch the env to its seeded layout sampler, so ``env.seed(s)`` before a
    reset fixes that episode's layout.
    """
    import metaworld

    check_task(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark = metaworld.MT1(task, seed=0)
        env = benchmark.train_classes[task]()
        env.set_task(benchmark.train_tasks[0])
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    return env


def expert_policy(task: str) -> Any:
    """MetaWorld's scripted expert for ``task``; ``policy.get_action(state)`` gives its action."""
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[check_task(task)]()


@dataclass(frozen=True)
class EpisodeInfo:
    """What fixes an episode besides the actions: recorded with every trajectory."""

    layout: np.ndarray
    """MetaWorld's random vector of object and goal positions."""
    video: str
    """Name of the background video ('' without distractors)."""
    video_start: int
    """Frame of the video shown at the episode's first step."""


class DistractingMetaWorld(gym.Env):
    """MetaWorld with a moving video background, rendered as clean and distracted twins.

    One recorded step holds the action for ``action_repeat`` environment steps; the background
    video advances one frame per environment step. ``reset(seed=s)`` fixes the episode: layout,
    video and start frame all derive from ``s``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str, render: RenderConfig, distractors: DistractorConfig, split: str,
                 seed: int, action_repeat: int = 1, max_steps: int = 100) -> None:
        check_split(split)
        if action_repeat < 1 or max_steps < 1:
            raise ValueError(f"action_repeat and max_steps must be >= 1, got {action_repeat}, {max_steps}")
        self.task, self.split = task, split
        self.render_config, self.distractor_config = render, distractors
        self.action_repeat, self.max_steps = action_repeat, max_steps
        self.render_mode = "rgb_array"
        # Videos first: a bad folder fails before MuJoCo and GL are set up.
        self.videos: VideoBank | None = (
            make_video_bank(distractors, split, render.resolution, seed) if distractors.enabled else None
        )
        self._env = make_metaworld_env(task)
        # Recorded episodes may be longer than MetaWorld's 500-step cap once actions repeat.
        self._env.max_path_length = max_steps * action_repeat
        self._renderer = SceneRenderer(self._env.model, render)
        size = render.resolution
        frame_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({
            "pixels": frame_space,
            "clean": frame_space,
            "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float64),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._frames: np.ndarray | None = None
        self._video_start = 0
        self._env_steps = 0
        self._steps = 0
        self._last: dict[str, np.ndarray] = {}
        self._background: np.ndarray | None = None
        self.episode: EpisodeInfo | None = None

    # ------------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        layout_seed = int(self.np_random.integers(2**31 - 1))
        self._env.seed(layout_seed)
        state, _ = self._env.reset()
        name = ""
        if self.videos is not None:
            name, self._frames, self._video_start = self.videos.sample(
                self.np_random, self.distractor_config.random_start
            )
        self._env_steps = self._steps = 0
        self.episode = EpisodeInfo(np.array(self._env._last_rand_vec, copy=True), name, self._video_start)
        observation = self._observe(state)
        return observation, self._info(success=False)

    def step(self, action: np.ndarray):
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        reward, truncated = 0.0, False
        for _ in range(self.action_repeat):
            state, step_reward, _, truncated, info = self._env.step(action)
            reward += float(step_reward)
            self._env_steps += 1
            if truncated:
                break
        self._steps += 1
        truncated = truncated or self._steps >= self.max_steps
        success = bool(info["success"])
        return self._observe(state), reward, False, truncated, self._info(success)

    def render(self) -> np.ndarray:
        """The last distracted frame."""
        return self._last["pixels"]

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None
            self._env.close()

    # ------------------------------------------------------------------------------------ helpers
    @property
    def video_frame(self) -> int:
        """Index of the background video frame in the current observation (-1 without video)."""
        if self._frames is None:
            return -1
        mode = self.distractor_config.playback
        return playback_index(self._video_start + self._env_steps, len(self._frames), mode)

    def _observe(self, state: np.ndarray) -> dict[str, np.ndarray]:
        clean, background = self._renderer.render(self._env.data)
        if self._frames is None:
            pixels = clean
        else:
            pixels = np.where(background[..., None], self._frames[self.video_frame], clean)
        self._last = {"pixels": pixels, "clean": clean, "state": np.asarray(state, dtype=np.float64)}
        self._background = background
        return dict(self._last)

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "success": success,
            "gripper_px": self._renderer.project(self._env.data, self._env.tcp_center),
            "video_frame": self.video_frame,
            "env_steps": self._env_steps,
        }

    @property
    def background_mask(self) -> np.ndarray:
        """Background pixels of the current observation (True where the video shows)."""
        return self._background
