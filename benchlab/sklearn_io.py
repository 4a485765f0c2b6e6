"""Safe serialisation of fitted scikit-learn estimators for the artifact cache (skops, not pickle).

skops (https://skops.readthedocs.io) stores an estimator as a zip of a JSON schema and numpy
arrays and rebuilds it only from types the loader is told to trust. A cache file is untrusted
input, so before skops sees it we read its schema and require every node to be on an explicit
allow-list: the estimator classes benchlab's victims create, the numpy and builtin containers
their fitted state needs, and nothing that loads a callable (functions, methods, partials,
``__reduce__`` constructors). Anything else -- ``FunctionTransformer(func=<any sklearn
function>)`` included -- is refused with :class:`UntrustedArtifact`, and the runner refits.
The bytes travel as a uint8 tensor, so the cache's safetensors file and SHA-256 check apply unchanged.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import torch

# (module, class) -> the skops loader that may rebuild it. Estimators: what the victims in
# plugins/benchlab_baselines/victims.py build (a forest's trees included).
ESTIMATORS = {
    ("sklearn.ensemble._forest", "RandomForestClassifier"): "ObjectNode",
    ("sklearn.tree._classes", "DecisionTreeClassifier"): "ObjectNode",
    ("sklearn.tree._tree", "Tree"): "TreeNode",
    ("sklearn.svm._classes", "SVC"): "ObjectNode",
}
_NUMPY_SCALARS = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64", "ndarray")
STATE_TYPES = {
    **{("builtins", name): loader for name, loader in (
        ("dict", "DictNode"), ("list", "ListNode"), ("tuple", "TupleNode"))},
    **{("numpy", name): "NdArrayNode" for name in _NUMPY_SCALARS},
    ("numpy", "dtype"): "DTypeNode",
    ("numpy.random.mtrand", "RandomState"): "RandomStateNode",
}
# JSON literals and type objects of plain values (a ``dtype=float`` parameter, a None).
_VALUE_LOADERS = {"JsonNode": {"str", "int", "float", "bool", "NoneType"},
                  "TypeNode": {"str", "int", "float", "bool", "NoneType", "object"}}
ALLOWED = {**ESTIMATORS, **STATE_TYPES}


class UntrustedArtifact(ValueError):
    """A serialised estimator that is malformed or names a type outside the allow-list."""


def estimator_to_tensor(estimator) -> torch.Tensor:
    import skops.io

    return torch.from_numpy(np.frombuffer(skops.io.dumps(estimator), dtype=np.uint8).copy())


def estimator_from_tensor(tensor: torch.Tensor):
    """The estimator in ``tensor``, rebuilt only if every node of its schema is allow-listed."""
    import skops.io

    data = tensor.cpu().numpy().tobytes()
    trusted = sorted(_checked_types(data))
    try:
        return skops.io.loads(data, trusted=trusted)
    except Exception as error:  # malformed state for an allowed type: still an unusable artifact
        raise UntrustedArtifact(f"serialised estimator does not load: {type(error).__name__}: {error}") from None


def _checked_types(data: bytes) -> set[str]:
    """Every ``module.Class`` the schema names; raises UntrustedArtifact on anything not allowed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise UntrustedArtifact(f"not a skops archive: {error}") from None
    names: set[str] = set()
    refused: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        if "__loader__" not in node:
            continue
        module, cls, loader = node.get("__module__"), node.get("__class__"), node["__loader__"]
        name = f"{module}.{cls}"
        if module == "builtins" and cls in _VALUE_LOADERS.get(loader, ()):
            continue
        if ALLOWED.get((module, cls)) != loader:
            refused.add(f"{name} ({loader})")
        elif module != "builtins":
            names.add(name)
    if refused:
        raise UntrustedArtifact("serialised estimator names types outside the allow-list: "
                                f"{', '.join(sorted(refused))}")
    return names
