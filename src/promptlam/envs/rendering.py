"""Offscreen rendering of a MuJoCo scene: a colour frame plus the mask of its background pixels.

The mask comes from MuJoCo's segmentation render of the same scene update, so that whatever is
in front of the background (robot, table, objects, goal marker sites) keeps correct occlusion
when a video is composited behind it.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from promptlam.config import RenderConfig
from promptlam.errors import UserError

BACKGROUND_GEOMS = ("floor",)
"""Geoms that count as background besides empty space (the skybox): MetaWorld's floor plane."""


class SceneRenderer:
    """Renders one camera of a model; owns the only GL context its process should have.

    The constructor adjusts the model's camera (pull-back, field of view) and visual quality, so
    build it right after the environment and before anything else renders that model.
    """

    def __init__(self, model: mujoco.MjModel, config: RenderConfig) -> None:
        self.config = config
        self.size = config.resolution
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, config.camera)
        if self.camera_id < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise UserError(f"render.camera: no camera {config.camera!r} in the scene; it has {names}")
        self._adjust_camera(model)
        global_ = model.vis.global_
        global_.offwidth = max(global_.offwidth, self.size)
        global_.offheight = max(global_.offheight, self.size)
        if config.quality == "fast":
            # Multisampling is fixed when the GL context is made: set it before the Renderer.
            model.vis.quality.offsamples = 0
        try:
            self._renderer = mujoco.Renderer(model, self.size, self.size)
        except mujoco.FatalError as exc:
            raise RuntimeError(
                f"cannot create an OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {exc}. "
                "Set MUJOCO_GL=egl or osmesa before anything imports mujoco."
            ) from None
        if config.quality == "fast":
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._background_ids = np.array(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name) for name in BACKGROUND_GEOMS]
        )
        self._background_ids = self._background_ids[self._background_ids >= 0]
        self._model = model

    def _adjust_camera(self, model: mujoco.MjModel) -> None:
        cam = self.camera_id
        if self.config.fovy is not None:
            model.cam_fovy[cam] = self.config.fovy
        if self.config.camera_pullback:
            # The camera looks along its local -z axis; move it back along that axis, expressed
            # in the frame of the body that carries it (cam_pos is body-relative).
            rotation = np.zeros(9)
            mujoco.mju_quat2Mat(rotation, model.cam_quat[cam])
            forward = -rotation.reshape(3, 3)[:, 2]
            model.cam_pos[cam] = model.cam_pos[cam] - self.config.camera_pullback * forward

    def _orient(self, image: np.ndarray) -> np.ndarray:
        # The corner cameras render upside down; a 180-degree turn (not a flip) puts them upright.
        # The copy also gives torch-friendly positive strides.
        if self.config.upright:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def render(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Render the current state: (rgb uint8 [H, W, 3], background bool [H, W])."""
        renderer = self._renderer
        renderer.update_scene(data, camera=self.camera_id)
        rgb = renderer.render()
        renderer.enable_segmentation_rendering()
        try:
            segmentation = renderer.render()
        finally:
            renderer.disable_segmentation_rendering()
        object_id, object_type = segmentation[..., 0], segmentation[..., 1]
        background = object_id == -1
        if self._background_ids.size:
            background |= (object_type == mujoco.mjtObj.mjOBJ_GEOM) & np.isin(object_id, self._background_ids)
        return self._orient(rgb), self._orient(background)

    def project(self, data: mujoco.MjData, point: np.ndarray) -> np.ndarray:
        """Pixel coordinates (x right, y down, in the frames as returned) of a world point."""
        cam = self.camera_id
        rotation = data.cam_xmat[cam].reshape(3, 3)
        in_camera = rotation.T @ (np.asarray(point, dtype=np.float64) - data.cam_xpos[cam])
        focal = (self.size / 2) / np.tan(np.deg2rad(self._model.cam_fovy[cam]) / 2)
        depth = -in_camera[2]
        x = self.size / 2 + focal * in_camera[0] / depth
        y = self.size / 2 - focal * in_camera[1] / depth
        if self.config.upright:
            x, y = self.size - x, self.size - y
        return np.array([x, y])

    def close(self) -> None:
        """Free the GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
