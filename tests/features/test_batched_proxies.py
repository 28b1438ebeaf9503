"""nwot and meco of cells run side by side equal those of each cell's own NB201Network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from metanas.features import batched_proxies
from metanas.features.batched_proxies import batched_scores, initial_conv_weights
from metanas.features.zero_cost import ZeroCostConfig, score_batch
from metanas.spaces.nb201 import NB201Arch, NB201Network

DEAD = "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"  # output reached only from 0
NO_PATH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"  # node 2 dead
SKIP_ONLY = "|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _cells(n: int = 12) -> list[NB201Arch]:
    return [NB201Arch.sample(i) for i in range(n)] + [
        NB201Arch.from_string(s) for s in (DEAD, NO_PATH, SKIP_ONLY, ALL_NONE)]


def _reference(arch: NB201Arch, x: torch.Tensor, C: int, N: int, seed: int) -> dict[str, float]:
    """nwot and meco by hooks on the cell's own network, in numpy (the definitions)."""
    torch.random.default_generator.manual_seed(seed)
    net = NB201Network(arch, C=C, N=N, in_channels=x.shape[1], num_classes=3)
    kernel = np.zeros((len(x), len(x)))
    terms = []

    def codes(_m, inputs) -> None:
        c = (inputs[0].reshape(len(x), -1) > 0).numpy().astype(np.float64)
        kernel[:] += c @ c.T + (1 - c) @ (1 - c).T

    def first_map(_m, _i, out) -> None:
        if out.ndim == 4 and out.shape[1] >= 2 and out.shape[2] * out.shape[3] >= 2:
            fm = out[0].reshape(out.shape[1], -1).numpy().astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.nan_to_num(np.corrcoef(fm), nan=0.0, posinf=0.0, neginf=0.0)
            terms.append(np.linalg.eigvalsh(corr)[0])

    hooks = [m.register_forward_pre_hook(codes) for m in net.modules() if isinstance(m, nn.ReLU)]
    hooks += [m.register_forward_hook(first_map) for m in net.modules()]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    sign, logdet = np.linalg.slogdet(kernel)
    return {"nwot": logdet if sign > 0 else -math.inf, "meco": float(sum(terms))}


@pytest.mark.parametrize("C,N,channels", [(8, 1, 3), (4, 2, 1)])
def test_weights_are_the_networks_own(C, N, channels):
    for arch in _cells(8):
        mine = initial_conv_weights(arch, C, N, channels, seed=5)
        torch.random.default_generator.manual_seed(5)
        net = NB201Network(arch, C=C, N=N, in_channels=channels, num_classes=4)
        convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == len(mine)
        assert all(torch.equal(a, b) for a, b in zip(convs, mine.values(), strict=True))


@pytest.mark.parametrize("C,N,side,channels",
                         [(8, 1, 16, 3), (4, 2, 8, 1), (3, 1, 4, 3), (2, 1, 8, 3), (1, 1, 8, 1)])
def test_scores_equal_each_cells_own_network(C, N, side, channels):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, channels, side, side, generator=g)
    cells = _cells()
    got = batched_scores(cells, x, C=C, N=N, seed=2, proxies=["nwot", "meco"])
    for i, arch in enumerate(cells):
        ref = _reference(arch, x, C, N, seed=2)
        if math.isinf(ref["nwot"]):
            assert got["nwot"][i] == -math.inf, arch
        else:
            assert got["nwot"][i] == pytest.approx(ref["nwot"], rel=1e-6), arch
        assert got["meco"][i] == pytest.approx(ref["meco"], rel=1e-6, abs=1e-9), arch
    assert got["nwot"][cells.index(NB201Arch.from_string(ALL_NONE))] == -math.inf
    assert np.isfinite(got["meco"]).all()


def test_a_cells_score_does_not_depend_on_its_company(monkeypatch):
    """Up to float rounding: alone, among others, or in chunks of 3."""
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cells = _cells()
    together = batched_scores(cells, x, C=4, N=1, seed=0, proxies=["meco", "nwot"])
    alone = [batched_scores([a], x, C=4, N=1, seed=0, proxies=["nwot", "meco"]) for a in cells]
    only = batched_scores(cells, x, C=4, N=1, seed=0, proxies=["meco"])
    assert list(only) == ["meco"]
    np.testing.assert_array_equal(only["meco"], together["meco"])  # nwot changes nothing
    monkeypatch.setattr(batched_proxies, "_CHUNK_ELEMENTS", 3 * 16 * (4 * 64 + 16))  # 3 a pass
    chunked = batched_scores(cells, x, C=4, N=1, seed=0, proxies=["nwot", "meco"])
    for p in ("nwot", "meco"):  # grouped convolutions of other sizes round differently
        np.testing.assert_allclose(together[p], [a[p][0] for a in alone], rtol=1e-6)
        np.testing.assert_allclose(together[p], chunked[p], rtol=1e-6)


def test_the_loss_pass_gives_the_same_nwot_and_meco():
    """With snip asked for too, nwot and meco come from hooks on each cell's own network (the
    pass snip needs anyway) through the same arithmetic: the same scores."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(12, 3, 8, 8, generator=g), torch.randint(0, 3, (12,), generator=g)
    config = ZeroCostConfig(C=4, N=1, batch_size=12)
    cells = _cells(6)
    side = score_batch(cells, x, y, num_classes=3, proxies="nwot,meco", config=config)
    hooked = score_batch(cells, x, y, num_classes=3, proxies="nwot,meco,snip", config=config)
    for a, b in zip(side, hooked, strict=True):
        for p in ("nwot", "meco"):
            assert b["scores"][p] == pytest.approx(a["scores"][p], rel=1e-6, abs=1e-9), a["arch"]
        assert b["scores"]["snip"] >= 0  # 0 where no path reaches the classifier
