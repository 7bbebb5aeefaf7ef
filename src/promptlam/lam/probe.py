"""Linear probes: how much of the action a latent action carries, on held-out trajectories.

An expert's action is largely a function of the state, so a latent that only encodes where the
arm is can probe the action well. The probes therefore predict four quantities over the steps
t .. t+h-1 of a latent of (o_t, o_{t+h}):

- `action_xyz`: the executed movement (x, y, z), the mean over the steps;
- `gripper`: the executed gripper command (reported apart: it is nearly constant per task, so
  the state, which identifies the task, predicts it and a latent need not);
- `residual`: executed action minus the clipped expert action, the realised part of the
  injected noise: what the executed action adds to the expert's plan (the state predicts little
  of it, only through the noise's correlation in time);
- `hand_change`: the hand's displacement s_{t+h} - s_t (x, y, z);

from the features `latent` (the trained IDM), `untrained_latent` (the same architecture at
initialisation: random features of two frames already reveal the state and some motion),
`state` (the 39-d state at t), `latent+state` and `untrained_latent+state` (the test of action
information beyond the state: below `state` only if the latent adds to it), and, for `residual`
and `hand_change`, `action+state`: the executed action with the state, the best a linear probe
can do knowing the true action (the floor for `latent+state`).

A linear probe from the state cannot subtract the expert's part of the action, a saturating,
nonlinear function of the state, so `action+state` leaves most of the residual unexplained. The
residual is therefore also probed with the clipped expert action as the state's summary:
`expert` (the clipped expert action, mean over the steps), `latent+expert` and
`untrained_latent+expert`, whose floor (`action+expert`) is zero: the residual is the executed
action minus the expert's. Each quantity also reports its `variance`, the MSE of predicting the
mean (no information).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from promptlam.tasks import HAND_POSITION, MOVEMENT

if TYPE_CHECKING:  # torch is imported where latents are computed: the tables and figures need none
    import torch

    from promptlam.lam.data import TransitionData

QUANTITIES = ("action_xyz", "gripper", "residual", "hand_change")
"""What the probes predict, in the order of tables and figures."""

FEATURES = ("latent", "untrained_latent", "state", "latent+state", "untrained_latent+state", "action+state",
            "expert", "latent+expert", "untrained_latent+expert")
"""What the probes predict from, in the order of tables and figures."""

FLOORED = ("residual", "hand_change")
"""Quantities probed from ``action+state`` too (for the action itself that would be trivial)."""

BY_EXPERT = ("residual",)
"""Quantities probed with the clipped expert action as the state's summary too."""


def ridge_fit(features: np.ndarray, targets: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares with an intercept on standardised features; returns (W, b, mean, scale)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-8
    x = (features - mean) / scale
    gram = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ (targets - targets.mean(axis=0)))
    return weights, targets.mean(axis=0), mean, scale


def probe_mse(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
              ridge: float) -> float:
    """Mean squared error of a ridge probe fit on train and evaluated on test (mean over outputs)."""
    weights, bias, mean, scale = ridge_fit(train_x.astype(np.float64), train_y.astype(np.float64), ridge)
    prediction = ((test_x - mean) / scale) @ weights + bias
    return float(np.mean((prediction - test_y) ** 2))


def window_mean(steps: np.ndarray, horizon: int) -> np.ndarray:
    """Row t: the mean of ``steps[t : t + horizon]`` (len(steps) - horizon + 1 rows)."""
    return np.lib.stride_tricks.sliding_window_view(steps, horizon, axis=0).mean(axis=-1)


def probe_quantities(state: np.ndarray, action: np.ndarray, expert_action: np.ndarray,
                     horizon: int) -> dict[str, np.ndarray]:
    """The probed quantities of one trajectory (rows = its frames) for every t with t + horizon
    inside it, and the features that come from the data: `state` at t and `action` (mean over
    the steps). The expert's action is stored as the expert gave it: clipped here, as the env
    clips what it executes, so that the residual is the noise that was realised."""
    count = len(state) - horizon
    steps = slice(0, count + horizon - 1)
    action_mean = window_mean(action[steps], horizon)
    expert_mean = window_mean(np.clip(expert_action[steps], -1, 1), horizon)
    return {
        "state": state[:count], "action": action_mean, "expert": expert_mean,
        "action_xyz": action_mean[:, MOVEMENT], "gripper": action_mean[:, 3:4], "residual": action_mean - expert_mean,
        "hand_change": state[horizon:count + horizon, HAND_POSITION] - state[:count, HAND_POSITION],
    }


def transition_features(models: dict[str, torch.nn.Module], data: TransitionData, device: torch.device,
                        horizon: int = 1, batch_size: int = 256) -> dict[str, np.ndarray]:
    """For every t with t + horizon inside its trajectory: each model's latent action between o_t
    and o_{t+horizon} (under the model's name) and the columns of ``probe_quantities``. Frames are
    read once for all models."""
    import torch

    columns: dict[str, list[np.ndarray]] = {}
    for index, (start, length) in enumerate(zip(data.starts, data.lengths)):
        if int(length) <= horizon:
            continue
        owner, rows = int(data.owners[index]), slice(int(start), int(start) + int(length))
        quantities = probe_quantities(*(data._dataset(owner, name)[rows] for name in ("state", "action", "expert_action")),
                                      horizon)
        for name, values in quantities.items():
            columns.setdefault(name, []).append(values)
    trajectory = np.concatenate([np.full(max(n - horizon, 0), i) for i, n in enumerate(data.lengths)])
    t = np.concatenate([np.arange(max(n - horizon, 0)) for n in data.lengths])
    latents: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for first in range(0, len(t), batch_size):
        chunk = slice(first, first + batch_size)
        batch = data.batch(trajectory[chunk], t[chunk], np.full(len(t[chunk]), horizon))
        obs, future = batch["obs"].to(device), batch["future"].to(device)
        with torch.no_grad():
            for name, model in models.items():
                latents[name].append(model.infer_latent(obs, future)[0].float().cpu().numpy())
    features = {name: np.concatenate(values) for name, values in columns.items()}
    return features | {name: np.concatenate(values) for name, values in latents.items()}


def heldout_probes(fit: dict[str, np.ndarray], held: dict[str, np.ndarray], ridge: float,
                   latents: tuple[str, ...] = ("latent", "untrained_latent")) -> dict[str, dict[str, float]]:
    """Held-out MSE of every probe of ``QUANTITIES`` from every feature of ``FEATURES`` (of the
    latents in ``latents``), with the variance of what it predicts. A quantity with no variation
    in the fit set (e.g. the gripper of tasks that never change it) is left out, as are its
    constant dimensions (e.g. the residual's gripper without gripper noise)."""
    def with_combined(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        combined = {f"{name}+{base}": np.concatenate([columns[name], columns[base]], axis=1)
                    for name in (*latents, "action") for base in ("state", "expert")}
        return columns | combined

    fit, held = with_combined(fit), with_combined(held)
    results = {}
    for quantity in QUANTITIES:
        varies = fit[quantity].std(axis=0) > 1e-9
        if not varies.any():
            continue
        y_fit, y_held = fit[quantity][:, varies], held[quantity][:, varies]
        features = [*latents, "state", *(f"{name}+state" for name in latents)]
        if quantity in FLOORED:
            features.append("action+state")
        if quantity in BY_EXPERT:
            features += ["expert", *(f"{name}+expert" for name in latents)]
        results[quantity] = {feature: probe_mse(fit[feature], y_fit, held[feature], y_held, ridge) for feature in features}
        results[quantity]["variance"] = float(np.mean(y_held.var(axis=0)))
    return results
