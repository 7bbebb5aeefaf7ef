"""Linear probes: how much of the true action a latent action carries, on held-out trajectories.

A latent that only encodes where the arm is can probe well, because an expert's action is
largely a function of the state. So besides latent -> action we report latent -> injected action
noise (the part of the action no state predicts), state -> action and state -> noise (what the
state alone explains), and the same architecture untrained (random features of the frames).
"""

from __future__ import annotations

import numpy as np
import torch

from promptlam.lam.data import TransitionData


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


@torch.no_grad()
def transition_features(model: torch.nn.Module | None, data: TransitionData, device: torch.device,
                        horizon: int = 1, batch_size: int = 256) -> dict[str, np.ndarray]:
    """For every t with t + horizon inside its trajectory: the latent action between o_t and
    o_{t+horizon} (if a model is given), the state at t, and the executed action and injected
    noise averaged over steps t .. t+horizon-1."""
    trajectory = np.concatenate([np.full(max(n - horizon, 0), i) for i, n in enumerate(data.lengths)])
    t = np.concatenate([np.arange(max(n - horizon, 0)) for n in data.lengths])
    columns: dict[str, list[np.ndarray]] = {"latent": [], "state": [], "action": [], "noise": []}
    for first in range(0, len(t), batch_size):
        chunk = slice(first, first + batch_size)
        for i, step in zip(trajectory[chunk], t[chunk]):
            owner, row = int(data.owners[i]), int(data.starts[i]) + int(step)
            columns["state"].append(data._dataset(owner, "state")[row])
            columns["action"].append(data._dataset(owner, "action")[row:row + horizon].mean(axis=0))
            columns["noise"].append(data._dataset(owner, "action_noise")[row:row + horizon].mean(axis=0))
        if model is not None:
            batch = data.batch(trajectory[chunk], t[chunk], np.full(len(t[chunk]), horizon))
            latent, _ = model.infer_latent(batch["obs"].to(device), batch["future"].to(device))
            columns["latent"].append(latent.float().cpu().numpy())
    return {name: np.concatenate(values) if name == "latent" else np.stack(values)
            for name, values in columns.items() if values}


def heldout_probes(fit: dict[str, np.ndarray], held: dict[str, np.ndarray], untrained_fit: dict[str, np.ndarray],
                   untrained_held: dict[str, np.ndarray], ridge: float) -> dict[str, dict[str, float]]:
    """Held-out MSE of every probe, with the variance of what it predicts (the no-information MSE)."""
    results = {}
    for name in ("action", "noise"):
        varies = fit[name].std(axis=0) > 1e-9  # e.g. no gripper noise: nothing to predict there
        y_fit, y_held = fit[name][:, varies], held[name][:, varies]
        results[name] = {
            "latent": probe_mse(fit["latent"], y_fit, held["latent"], y_held, ridge),
            "untrained_latent": probe_mse(untrained_fit["latent"], y_fit, untrained_held["latent"], y_held, ridge),
            "state": probe_mse(fit["state"], y_fit, held["state"], y_held, ridge),
            "variance": float(np.mean(y_held.var(axis=0))),
        }
    return results
