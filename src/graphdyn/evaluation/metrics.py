"""One-step test metrics: MSE on the learned target and on the next position.

Both are means over every scalar coordinate (PyTorch ``MSELoss`` convention, as in the ESTAG
paper), weighted by batch size, in physical units (the target scale is undone).
"""

from __future__ import annotations

import numpy as np
import torch

from graphdyn.data.windows import WindowDataset
from graphdyn.simulator import LearnedSimulator


@torch.no_grad()
def test_metrics(simulator: LearnedSimulator, dataset: WindowDataset, batch_size: int = 2000, device: torch.device | str = "cpu") -> dict[str, float]:
    """``{"target_mse", "pos_mse", "samples"}`` over all windows of ``dataset``."""
    simulator.eval()
    dtype = simulator.dtype
    total_target = total_pos = 0.0
    count = 0
    for start in range(0, len(dataset), batch_size):
        batch = dataset.batch(np.arange(start, min(start + batch_size, len(dataset)))).to(device, dtype)
        pred = simulator.predict(batch)
        target = simulator.training_target(batch) * simulator.target_scale
        x_next, _ = simulator.integrate(batch, pred)
        n = batch.batch_size
        total_target += torch.mean((pred - target) ** 2).item() * n
        total_pos += torch.mean((x_next - batch.target_x) ** 2).item() * n
        count += n
    return {"target_mse": total_target / count, "pos_mse": total_pos / count, "samples": count}
