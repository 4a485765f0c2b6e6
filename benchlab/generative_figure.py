"""The generative cell's figure: clean test inputs, their reconstructions, and samples, one row each.

Saved as PNG in ``<cache root>/figures/generative/`` (``benchlab run --out DIR``: under ``DIR/cache``),
named after the cell; nothing is written without a cache (a bare Context in unit tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

FIGURE_COLUMNS = 10


def figure_name(dataset: str, attack: str, defense: str, victim: str, seed: int) -> str:
    text = f"{dataset}-{attack}-{defense}-{victim}-seed{seed}"
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text)[:200] + ".png"


def save_generative_figure(images: dict[str, torch.Tensor], title: str, path: Path,
                           columns: int = FIGURE_COLUMNS) -> Path:
    """Rows ``test``, ``recon`` (of those test images) and ``samples``; ``columns`` images each."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    rows = [("clean test", images["test"]), ("reconstruction", images["recon"]), ("sample", images["samples"])]
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0 + 0.5), squeeze=False)
    for r, (label, batch) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(batch):
                image = batch[c].detach().float().cpu().clamp(0, 1)
                gray = image.shape[0] == 1
                pixels = (image[0] if gray else image.permute(1, 2, 0)).numpy()
                ax.imshow(pixels, cmap="gray" if gray else None,
                          vmin=0, vmax=1, interpolation="nearest")
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
