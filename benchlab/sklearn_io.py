"""Safe serialisation of fitted scikit-learn estimators for the artifact cache (skops, not pickle).

skops (https://skops.readthedocs.io) stores an estimator as a zip of JSON schemas and numpy
arrays and rebuilds it only from types the loader is told to trust, so loading never executes
code from the file. We trust scikit-learn's own types and nothing else: a cached file naming any
other type (a tampered or foreign artifact) is refused, and the runner refits the model.
The bytes travel as a uint8 tensor, so the cache's safetensors file and SHA-256 check apply unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

TRUSTED_PREFIXES = ("sklearn.",)


class UntrustedArtifact(ValueError):
    """A serialised estimator that names types outside scikit-learn."""


def estimator_to_tensor(estimator) -> torch.Tensor:
    import skops.io

    return torch.from_numpy(np.frombuffer(skops.io.dumps(estimator), dtype=np.uint8).copy())


def estimator_from_tensor(tensor: torch.Tensor):
    import skops.io

    data = tensor.cpu().numpy().tobytes()
    untrusted = skops.io.get_untrusted_types(data=data)
    foreign = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise UntrustedArtifact(f"serialised estimator names types outside scikit-learn: {', '.join(foreign)}")
    return skops.io.loads(data, trusted=untrusted)
