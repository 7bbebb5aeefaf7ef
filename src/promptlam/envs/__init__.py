"""Distracting MetaWorld: rendering, background videos and the gymnasium environment."""

import os

# MuJoCo picks its GL backend when it is first imported; unset, rendering dies with a FatalError
# on headless machines. EGL works with Mesa (CPU) and with NVIDIA drivers (GPU nodes); set
# MUJOCO_GL=osmesa to use OSMesa instead.
os.environ.setdefault("MUJOCO_GL", "egl")
