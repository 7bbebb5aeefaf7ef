"""Atomic artifact output (promptlam.io)."""

import os
import stat

import pytest
import torch

from promptlam.io import atomic_output
from promptlam.runs import save_weights


def test_weights_get_an_ordinary_files_mode_not_the_owner_only_mode_safetensors_writes(tmp_path):
    mask = os.umask(0o022)
    try:
        save_weights(tmp_path, "model.safetensors", torch.nn.Linear(2, 2), {"seed": 0}, {"steps": 1})
    finally:
        os.umask(mask)
    for name in ("model.safetensors", "run.json", "metrics.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
