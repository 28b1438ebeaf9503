"""A synthetic knowledge base whose best architecture depends on the task, so learning can fail."""

from __future__ import annotations

import numpy as np
import pytest

from metanas.features.metafeatures import FEATURE_NAMES
from metanas.kb import KnowledgeBase
from metanas.spaces.nb201 import NB201Arch


def synthetic_accuracy(arch: NB201Arch, roughness: float) -> float:
    """Rough tasks reward 3x3 convolutions, smooth ones reward pooling and skips."""
    ops = np.array(arch.op_indices)
    conv = np.sum(ops == 3) + 0.5 * np.sum(ops == 2)
    smooth = np.sum(ops == 4) + 0.5 * np.sum(ops == 1)
    w = np.tanh(3 * (roughness - 0.5))
    return float(0.5 + 0.04 * w * (conv - smooth) + 0.01 * np.sum(ops == 0) * -1)


@pytest.fixture(scope="session")
def synthetic_kb(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("kb") / "synthetic.db"
    rng = np.random.default_rng(0)
    with KnowledgeBase(path) as kb:
        for t in range(24):
            rough = float(rng.uniform(0, 1))
            feats = {name: float(rng.normal()) for name in FEATURE_NAMES}
            feats["roughness"] = rough
            tid = kb.add_task(f"task{t:03d}", name=f"synthetic-{t}", source="synthetic",
                              resolution=16, meta_features=feats)
            for _ in range(40):
                arch = NB201Arch.sample(rng)
                aid = kb.add_architecture(arch.to_string(), canonical=arch.canonical_hash())
                acc = synthetic_accuracy(arch, rough) + rng.normal(0, 0.005)
                kb.add_evaluation(tid, aid, recipe="synthetic", recipe_hash="s", seed=0,
                                  metrics={"val_acc": acc, "test_acc": acc})
    return str(path)
