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
def transition_features(models: dict[str, torch.nn.Module], data: TransitionData, device: torch.device,
                        horizon: int = 1, batch_size: int = 256) -> dict[str, np.ndarray]:
    """For every t with t + horizon inside its trajectory: each model's latent action between o_t
    and o_{t+horizon} (under the model's name), the state at t, and the executed action and
    injected noise averaged over steps t .. t+horizon-1. Frames are read once for all models."""
    columns: dict[str, list[np.ndarray]] = {"state": [], "action": [], "noise": []}
    for index, (start, length) in enumerate(zip(data.starts, data.lengths)):
        count = int(length) - horizon
        if count <= 0:
            continue
        owner, start = int(data.owners[index]), int(start)
        columns["state"].append(data._dataset(owner, "state")[start:start + count])
        for name, dataset in (("action", "action"), ("noise", "action_noise")):
            steps = data._dataset(owner, dataset)[start:start + count + horizon - 1]
            columns[name].append(np.lib.stride_tricks.sliding_window_view(steps, horizon, axis=0).mean(axis=-1))
    trajectory = np.concatenate([np.full(max(n - horizon, 0), i) for i, n in enumerate(data.lengths)])
    t = np.concatenate([np.arange(max(n - horizon, 0)) for n in data.lengths])
    latents: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for first in range(0, len(t), batch_size):
        chunk = slice(first, first + batch_size)
        batch = data.batch(trajectory[chunk], t[chunk], np.full(len(t[chunk]), horizon))
        obs, future = batch["obs"].to(device), batch["future"].to(device)
        for name, model in models.items():
            latents[name].append(model.infer_latent(obs, future)[0].float().cpu().numpy())
    features = {name: np.concatenate(values) for name, values in columns.items()}
    return features | {name: np.concatenate(values) for name, values in latents.items()}


def heldout_probes(fit: dict[str, np.ndarray], held: dict[str, np.ndarray], ridge: float,
                   latents: tuple[str, ...] = ("latent", "untrained_latent")) -> dict[str, dict[str, float]]:
    """Held-out MSE of every probe, with the variance of what it predicts (the no-information MSE).

    Features: each latent in ``latents``, the state, and each latent together with the state
    (``<latent>+state``: below ``state`` only if the latent adds action information the state
    lacks). The noise probe also reports ``true_action``, the executed action itself as the
    feature: the floor for any latent, since the expert partly compensates correlated noise.
    """
    def with_derived(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        combined = {f"{name}+state": np.concatenate([columns[name], columns["state"]], axis=1) for name in latents}
        return columns | combined | {"true_action": columns["action"]}

    fit, held = with_derived(fit), with_derived(held)
    features = (*latents, "state", *(f"{name}+state" for name in latents))
    results = {}
    for name in ("action", "noise"):
        varies = fit[name].std(axis=0) > 1e-9  # e.g. no gripper noise: nothing to predict there
        y_fit, y_held = fit[name][:, varies], held[name][:, varies]
        chosen = (*features, "true_action") if name == "noise" else features
        results[name] = {feature: probe_mse(fit[feature], y_fit, held[feature], y_held, ridge) for feature in chosen}
        results[name]["variance"] = float(np.mean(y_held.var(axis=0)))
    return results
