"""Seeds for every random generator, derived from the config seed and named keys.

Every stochastic choice in the workflow draws from ``numpy.random.SeedSequence`` entropy made of
the config seed and a path of keys (stage, task, split, index), so that adding a task or a
trajectory never shifts the random numbers of another, and the same config gives the same data.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key_int(key: str | int) -> int:
    if isinstance(key, (int, np.integer)):
        if key < 0:
            raise ValueError(f"seed keys must be non-negative, got {key}")
        return int(key)
    return zlib.crc32(str(key).encode())


def seed_sequence(seed: int, *keys: str | int) -> np.random.SeedSequence:
    """A SeedSequence that depends on ``seed`` and on every key, strings hashed stably."""
    return np.random.SeedSequence([_key_int(seed), *(_key_int(k) for k in keys)])


def rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A numpy Generator seeded from ``seed`` and ``keys``."""
    return np.random.default_rng(seed_sequence(seed, *keys))


def derive_seed(seed: int, *keys: str | int) -> int:
    """A 31-bit integer seed for APIs that take an int (gymnasium, MetaWorld, torch)."""
    return int(seed_sequence(seed, *keys).generate_state(1, np.uint32)[0] >> 1)
