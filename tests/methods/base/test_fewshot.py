"""The few-shot variant: episodes, MAML through the supernet (first and second order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metanas.errors import DatasetError
from metanas.methods.base.fewshot import (
    Conv4,
    EpisodeSource,
    Learner,
    MAMLConfig,
    cell_network,
    load_omniglot,
    maml_evaluate,
    maml_train,
    search_cell,
)
from metanas.supernet import NB201Supernet


@pytest.fixture(scope="module")
def source() -> EpisodeSource:
    """Digits as 10 'characters' of 16 px."""
    from metanas.data import load_dataset

    d = load_dataset("digits", progress=False)
    x = torch.nn.functional.interpolate(torch.from_numpy(np.array(d.x_train)).float().permute(0, 3, 1, 2)
                                        / 16.0, size=(16, 16), mode="bilinear")
    x = (x - x.mean()) / x.std()
    return EpisodeSource(x, [np.flatnonzero(d.y_train == c) for c in range(10)], "digits")


def test_episodes_are_seeded_and_disjoint(source) -> None:
    xs, ys, xq, yq = source.episode(3, 5, 2, 4, seed=1)
    assert xs.shape == (10, 1, 16, 16) and xq.shape == (20, 1, 16, 16)
    assert ys.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and len(yq) == 20
    again = source.episode(3, 5, 2, 4, seed=1)
    assert torch.equal(xs, again[0]) and torch.equal(xq, again[2])
    assert not torch.equal(xs, source.episode(4, 5, 2, 4, seed=1)[0])
    flat_s, flat_q = xs.flatten(1), xq.flatten(1)
    assert not any(torch.equal(a, b) for a in flat_s for b in flat_q)


def test_maml_learns_and_search_moves_logits(source) -> None:
    torch.manual_seed(0)
    cfg = MAMLConfig(n_way=3, k_shot=2, q_query=3, iterations=3, meta_batch=2, inner_steps=2,
                     test_inner_steps=2)
    model = Conv4(hidden=8, resolution=16, num_classes=3)
    before = [p.detach().clone() for p in model.features.parameters()]
    log = maml_train(model, source, cfg)
    assert len(log) == 3 and all(0 <= r["accuracy"] <= 1 for r in log)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.features.parameters(),
                                                     strict=True))
    res = maml_evaluate(model, source, cfg, episodes=4)
    assert res["episodes"] == 4 and 0 <= res["mean"] <= 1 and res["ci95"] >= 0
    arch, net, _ = search_cell(source, cfg, C=4, resolution=16, feature_size=16)
    assert not np.allclose(net.probabilities()["cell"], 0.2)
    cell = cell_network(arch, C=4, resolution=16, feature_size=16, n_way=3)
    assert cell(torch.randn(2, 1, 16, 16)).shape == (2, 3)


def test_second_order_differs_from_first_order(source) -> None:
    grads = {}
    for first in (True, False):
        torch.manual_seed(0)
        net = NB201Supernet(C=4, resolutions=(16,), feature_size=16, num_classes=3)
        cfg = MAMLConfig(n_way=3, k_shot=2, q_query=2, inner_steps=2, first_order=first,
                         sampling="softmax")
        learner = Learner(net, cfg)
        xs, ys, xq, yq = source.episode(0, 3, 2, 2)
        fast = learner.adapt(xs, ys, 2, create_graph=not first, gen=None)
        torch.nn.functional.cross_entropy(learner.forward(fast, xq, None), yq).backward()
        grads[first] = net.arch["cell"].grad.clone()
    assert grads[True].abs().sum() > 0 and grads[False].abs().sum() > 0
    assert not torch.allclose(grads[True], grads[False])


def test_load_omniglot_rejects_other_files(tmp_path) -> None:
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(DatasetError, match="Omniglot"):
        load_omniglot(bad)
