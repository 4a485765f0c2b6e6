"""DeepConfuse's diagnostic figures: deep-feature PCA (Figure 3), test confusion matrix (Figure 10) and
the generator's per-trial convergence.

Files go to ``$BENCHLAB_FIGURES`` when set, else to ``<cache root>/figures/deepconfuse/`` (for
``benchlab run --out DIR`` that is ``DIR/cache/figures/deepconfuse/``); with neither (a bare
Context, as in unit tests) nothing is written. Names carry dataset, attack, victim, seed and a
short hash of the victim's test predictions, which tells apart cells that differ only in defense.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import torch

from benchlab import Context

ENV = "BENCHLAB_FIGURES"


def figure_dir(ctx: Context) -> Path | None:
    """Where this cell's figures go, or None when no location is configured."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return ctx.artifact_dir("figures", "deepconfuse")


def figure_stem(ctx: Context, attack_spec: str, predictions: torch.Tensor) -> str:
    victim = ctx.victim.spec if ctx.victim is not None else "victim"
    digest = hashlib.sha256(predictions.cpu().numpy().astype(np.int64).tobytes()).hexdigest()[:8]
    text = f"{ctx.info.name}-{attack_spec}-{victim}-seed{ctx.seed}-{digest}"
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix: entry (i, j) is the share of class-i inputs predicted j."""
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (labels.cpu().numpy(), predictions.cpu().numpy()), 1)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def save_confusion(matrix: np.ndarray, class_names, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    ticks = range(len(matrix))
    names = list(class_names) or [str(i) for i in ticks]
    ax.set_xticks(ticks, names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_feature_pca(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                     test_labels: torch.Tensor, title: str, path: Path) -> Path:
    """Figure 3: PCA fitted on the features of the poisoned training data; clean test data projected."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(train_features.cpu().numpy())
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharex=True, sharey=True)
    parts = ((axes[0], train_features, train_labels, "poisoned training data"),
             (axes[1], test_features, test_labels, "clean test data"))
    for ax, features, labels, name in parts:
        points = pca.transform(features.cpu().numpy())
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=4, vmin=-0.5,
                             vmax=9.5)
        ax.set_title(name, fontsize=9)
    fig.colorbar(scatter, ax=axes, label="class", ticks=range(10))
    fig.suptitle(title, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_convergence(diagnostics: np.ndarray, fields: tuple[str, ...], title: str, path: Path) -> Path:
    """The generator's training, trial by trial: one panel per diagnostic (objective, class share,
    the surrogate's clean accuracy), so a user sees whether it converges."""
    plt = _pyplot()
    diagnostics = np.asarray(diagnostics, dtype=float).reshape(-1, len(fields))
    fig, axes = plt.subplots(1, len(fields), figsize=(3.2 * len(fields), 3))
    trials = np.arange(1, len(diagnostics) + 1)
    for ax, column, name in zip(axes, diagnostics.T, fields):
        ax.plot(trials, column, marker="o", markersize=3)
        ax.set_xlabel("trial")
        ax.set_title(name.replace("_", " "), fontsize=9)
        if name != "objective":
            ax.set_ylim(0, 1)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
