"""Pictures of a rollout file for people: a contact sheet (PNG) and a short clip (GIF)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw

from promptlam.data.rollout_file import RolloutFile
from promptlam.io import atomic_output

LABEL_WIDTH = 78


def _label(text: str, height: int) -> np.ndarray:
    image = Image.new("RGB", (LABEL_WIDTH, height), "white")
    ImageDraw.Draw(image).text((4, height // 2 - 6), text, fill="black")
    return np.asarray(image)


def _upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2) if factor > 1 else frames


def contact_sheet(rollouts: RolloutFile, trajectories: int = 2, columns: int = 8, scale: int = 1) -> np.ndarray:
    """Clean and distracted twins side by side: two rows per trajectory, steps evenly spaced."""
    blocks = []
    for index in range(min(trajectories, rollouts.n_trajectories)):
        rows = rollouts.rows(index)
        steps = np.unique(np.linspace(0, rows.stop - rows.start - 1, columns).round().astype(int))
        picked = rows.start + steps
        for kind in ("clean", "distracted"):
            frames = _upscale(rollouts[f"frames/{kind}"][picked], scale)
            strip = np.concatenate(list(frames), axis=1)
            name = f"#{index} {kind}"
            blocks.append(np.concatenate([_label(name, strip.shape[0]), strip], axis=1))
        width = max(block.shape[1] for block in blocks)
        blocks = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    return np.concatenate(blocks, axis=0)


def clip(rollouts: RolloutFile, trajectory: int = 0, max_frames: int = 60, scale: int = 2) -> np.ndarray:
    """Frames of one trajectory with clean | distracted side by side, at most ``max_frames``."""
    rows = rollouts.rows(trajectory)
    picked = np.arange(rows.start, rows.stop)[:max_frames]
    clean = _upscale(rollouts["frames/clean"][picked], scale)
    distracted = _upscale(rollouts["frames/distracted"][picked], scale)
    gap = np.full((*clean.shape[:2], 4, 3), 255, np.uint8)
    return np.concatenate([clean, gap, distracted], axis=2)


def write_previews(source: str | Path, sheet: str | Path, gif: str | Path, fps: int = 10) -> None:
    """Write the contact sheet PNG and the GIF of ``source``."""
    with RolloutFile(source) as rollouts:
        with atomic_output(sheet) as tmp:
            Image.fromarray(contact_sheet(rollouts)).save(tmp, format="PNG")
        with atomic_output(gif) as tmp:
            iio.imwrite(tmp, clip(rollouts), extension=".gif", duration=1000 / fps, loop=0)
