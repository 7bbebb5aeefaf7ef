"""Background videos for Distracting MetaWorld: seeded procedural clips or a folder of user videos.

A split (train or eval) owns a ``VideoBank``: a list of video names and a loader that turns a
name into frames ``uint8 [L, size, size, 3]``. The train and eval banks never share a video.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from promptlam.config import DistractorConfig
from promptlam.errors import UserError
from promptlam.seeding import seed_sequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".gif", ".mp4", ".avi", ".mov", ".webm", ".mkv")


class VideoSourceError(UserError):
    """A video folder that cannot serve as a distractor source; one line naming the path."""


# ------------------------------------------------------------------------------------ procedural
def _tileable_texture(rng: np.random.Generator, size: int, cells: float, channels: int) -> np.ndarray:
    """Smooth random texture in [0, 1] that wraps around at its borders (so pans never show a seam).

    White noise low-pass filtered in Fourier space: blobs about ``size / cells`` pixels wide.
    """
    noise = rng.standard_normal((channels, size, size))
    frequency = np.fft.fftfreq(size)
    radius2 = frequency[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    spectrum = np.fft.rfft2(noise) * np.exp(-radius2 * (size / cells) ** 2)
    texture = np.fft.irfft2(spectrum, s=(size, size)).transpose(1, 2, 0)
    low, high = texture.min(), texture.max()
    return ((texture - low) / max(high - low, 1e-9)).astype(np.float32)


def procedural_video(seed_sequence: np.random.SeedSequence, size: int, length: int, shapes: int,
                     speed: float = 1.0) -> np.ndarray:
    """A seeded clip with rich motion: a panning colour texture, flowing noise and moving shapes.

    Deliberately unlike the scene (no single colour, nothing static) so that a model predicting
    pixels has every reason to spend its latent on the background.
    """
    rng = np.random.default_rng(seed_sequence)
    canvas = 2 * size
    base = _tileable_texture(rng, canvas, rng.uniform(3, 7), 3)
    palette = rng.random((2, 3)).astype(np.float32)
    base = palette[0] + (palette[1] - palette[0]) * base  # tint towards a random colour pair
    flow = _tileable_texture(rng, canvas, rng.uniform(6, 12), 1)[..., 0] - 0.5

    def velocity(scale: float) -> np.ndarray:
        angle = rng.uniform(0, 2 * np.pi)
        return speed * scale * rng.uniform(0.5, 1.0) * np.array([np.cos(angle), np.sin(angle)])

    pan, flow_drift = velocity(size / 40), velocity(size / 25)
    pixels = np.arange(size)

    def window(texture: np.ndarray, offset: np.ndarray) -> np.ndarray:
        oy, ox = offset.astype(int) % canvas
        return texture[np.ix_((pixels + oy) % canvas, (pixels + ox) % canvas)]

    n = shapes
    centre = rng.uniform(0, size, (n, 2))
    shape_velocity = np.array([velocity(size / 30) for _ in range(n)]).reshape(n, 2)
    radius = rng.uniform(0.08, 0.25, (n, 2)) * size
    angle = rng.uniform(0, np.pi, n)
    spin = speed * rng.uniform(-0.1, 0.1, n)
    kind = rng.integers(0, 3, n)  # 0 ellipse, 1 rectangle, 2 ring
    colour = rng.random((n, 3)).astype(np.float32)
    stripes = rng.uniform(0.15, 0.6, n)

    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for t in range(length):
        pulse = 0.5 + 0.5 * np.sin(0.15 * speed * t)
        frame = window(base, pan * t) * (1.0 + pulse * window(flow, flow_drift * t)[..., None])
        for k in range(n):
            # Work inside the shape's bounding box only: shapes cover a small part of the frame.
            reach = np.hypot(*radius[k])
            y0, x0 = np.maximum(np.floor(centre[k] - reach).astype(int), 0)
            y1, x1 = np.minimum(np.ceil(centre[k] + reach).astype(int) + 1, size)
            if y0 < y1 and x0 < x1:
                dy = (np.arange(y0, y1) - centre[k, 0])[:, None]
                dx = (np.arange(x0, x1) - centre[k, 1])[None, :]
                cos, sin = np.cos(angle[k]), np.sin(angle[k])
                u = (cos * dx + sin * dy) / radius[k, 1]
                v = (-sin * dx + cos * dy) / radius[k, 0]
                if kind[k] == 1:
                    mask = (np.abs(u) < 1.0) & (np.abs(v) < 1.0)
                else:
                    r2 = u * u + v * v
                    mask = (r2 < 1.0) & (r2 > 0.4) if kind[k] == 2 else r2 < 1.0
                shade = 0.7 + 0.3 * np.sign(np.sin(u * radius[k, 1] * stripes[k]))
                patch = frame[y0:y1, x0:x1]
                patch[mask] = (colour[k] * shade[..., None].astype(np.float32))[mask]
            # Shapes bounce off the borders so they stay in view.
            centre[k] += shape_velocity[k]
            outside = (centre[k] < 0) | (centre[k] > size)
            shape_velocity[k, outside] *= -1
            centre[k] = np.clip(centre[k], 0, size)
            angle[k] += spin[k]
        frames[t] = np.clip(frame * 255.0, 0, 255).astype(np.uint8)
    return frames


# ---------------------------------------------------------------------------------------- folders
def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` x ``size`` RGB (grey and RGBA become RGB)."""
    from PIL import Image

    pil = Image.fromarray(image).convert("RGB")
    width, height = pil.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    pil = pil.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(pil, dtype=np.uint8)


def _read_frames(path: Path, size: int) -> np.ndarray:
    import imageio.v3 as iio

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images = []
        for file in files:
            try:
                images.append(iio.imread(file))
            except Exception as exc:  # imageio's errors for a file that is not an image suggest plugins
                raise VideoSourceError(f"{file}: cannot read image ({type(exc).__name__}); expected a "
                                       f"frame of the video folder {path}") from None
    else:
        try:
            images = list(iio.imiter(path))
        except Exception as exc:  # imageio raises many types for unreadable or unsupported files
            raise VideoSourceError(f"{path}: cannot read video ({type(exc).__name__}: {exc})") from None
    if not images:
        raise VideoSourceError(f"{path}: video has no frames")
    return np.stack([_fit(np.asarray(image), size) for image in images])


def _is_video(path: Path) -> bool:
    if path.is_dir():
        return any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())
    return path.suffix.lower() in VIDEO_SUFFIXES


def discover_folder_videos(folder: str | Path, eval_fraction: float) -> dict[str, list[Path]]:
    """Split a user folder's videos into disjoint train and eval lists.

    DAVIS-2017 roots use their ``ImageSets/2017/{train,val}.txt`` lists (val is our eval split);
    otherwise videos are ordered by a hash of their name and the last ``eval_fraction`` held out,
    so the split does not depend on the seed or on which other videos are present.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise VideoSourceError(f"distractors.folder: {root} is not a folder")
    davis = root / "JPEGImages" / "480p"
    video_root = davis if davis.is_dir() else root
    videos = {p.name: p for p in sorted(video_root.iterdir()) if _is_video(p)}
    if not videos:
        raise VideoSourceError(
            f"distractors.folder: no videos in {video_root} (expected sub-folders of "
            f"{'/'.join(IMAGE_SUFFIXES)} frames, video files, or DAVIS JPEGImages/480p/<video>/)"
        )
    lists = root / "ImageSets" / "2017"
    if davis.is_dir() and (lists / "train.txt").is_file() and (lists / "val.txt").is_file():
        split_names = {
            split: [line.strip() for line in (lists / f"{name}.txt").read_text().split() if line.strip() in videos]
            for split, name in (("train", "train"), ("eval", "val"))
        }
    else:
        ordered = sorted(videos, key=lambda name: (zlib.crc32(name.encode()), name))
        n_eval = max(1, round(eval_fraction * len(ordered)))
        split_names = {"train": ordered[: len(ordered) - n_eval], "eval": ordered[len(ordered) - n_eval:]}
    for split, names in split_names.items():
        if not names:
            raise VideoSourceError(
                f"distractors.folder: {root} leaves no videos for the {split} split "
                f"({len(videos)} videos found; train and eval need at least one each)"
            )
    return {split: [videos[name] for name in names] for split, names in split_names.items()}


# ------------------------------------------------------------------------------------------ banks
class VideoBank:
    """The videos one split draws from, loaded on demand and kept in a memory-bounded LRU cache.

    At the default settings every video of a split fits the cache, so each is made once per job.
    """

    def __init__(self, names: list[str], load: Callable[[str], np.ndarray],
                 cache_bytes: int = 384 * 2**20) -> None:
        if not names:
            raise VideoSourceError("a video bank needs at least one video")
        self.names = list(names)
        self._load = load
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_bytes = cache_bytes

    def __len__(self) -> int:
        return len(self.names)

    def frames(self, name: str) -> np.ndarray:
        """The frames of video ``name``, uint8 [L, size, size, 3]."""
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        frames = self._load(name)
        self._cache[name] = frames
        while len(self._cache) > 1 and sum(v.nbytes for v in self._cache.values()) > self._cache_bytes:
            self._cache.popitem(last=False)
        return frames

    def sample(self, rng: np.random.Generator, random_start: bool) -> tuple[str, np.ndarray, int]:
        """Choose a video and a start frame: (name, frames, start)."""
        name = self.names[int(rng.integers(len(self.names)))]
        frames = self.frames(name)
        start = int(rng.integers(len(frames))) if random_start else 0
        return name, frames, start


def playback_index(position: int, length: int, mode: str) -> int:
    """Frame shown at ``position`` frames after a video's first frame, for a clip of ``length``."""
    if length == 1:
        return 0
    if mode == "loop":
        return position % length
    period = 2 * (length - 1)  # bounce: 0 1 .. L-1 L-2 .. 1 0 1 ..
    phase = position % period
    return phase if phase < length else period - phase


def make_video_bank(config: DistractorConfig, split: str, size: int, seed: int) -> VideoBank:
    """The video bank of ``split``; fails at once (before any rendering) on a bad folder."""
    if config.source == "procedural":
        proc = config.procedural
        count = proc.train_videos if split == "train" else proc.eval_videos
        names = [f"procedural-{split}-{i:03d}" for i in range(count)]

        def load(name: str) -> np.ndarray:
            index = int(name.rsplit("-", 1)[1])
            sequence = seed_sequence(seed, "distractor-video", split, index)
            return procedural_video(sequence, size, proc.length, proc.shapes, proc.speed)

        return VideoBank(names, load)

    paths = {p.name: p for p in discover_folder_videos(config.folder, config.eval_fraction)[split]}
    return VideoBank(sorted(paths), lambda name: _read_frames(paths[name], size))
