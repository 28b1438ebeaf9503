"""NB201 and DARTS supernets: shapes, heads, the NB201 equivalence with NB201Network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metanas.errors import ConfigError
from metanas.spaces.darts import DartsGenotype
from metanas.spaces.nb201 import NB201Arch, NB201Network
from metanas.supernet import DartsSupernet, NB201Supernet, build_supernet


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


@pytest.mark.parametrize("arch", [CELL, "|skip_connect~0|+|none~0|nor_conv_3x3~1|+"
                                        "|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"])
def test_nb201_supernet_with_fixed_cell_is_that_network(arch: str) -> None:
    net = NB201Supernet(C=4, N=2, resolutions=(16,), feature_size=16, num_classes=5)
    for p in net.parameters():  # non-trivial BN affine parameters and statistics
        p.data.add_(0.1 * torch.randn_like(p))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(3, 3, 16, 16)
    exported = net.export_network(arch, 16)
    # the export has exactly NB201Network's structure: its state loads into a fresh one
    fresh = NB201Network(arch, C=4, N=2, in_channels=3, num_classes=5)
    state = {k: v for k, v in exported.state_dict().items() if not k.startswith("stem.")}
    fresh.stem = exported.stem
    fresh.load_state_dict({**state, **{f"stem.{k}": v for k, v in
                                        exported.stem.state_dict().items()}})
    fresh.eval()
    with torch.no_grad():
        inside = net(x, net.arch_weights_for(arch))
        assert torch.allclose(inside, exported(x), atol=1e-5)
        assert torch.allclose(inside, fresh(x), atol=1e-5)
        # the grayscale input is repeated to 3 channels by the head
        g = torch.randn(2, 1, 16, 16)
        assert torch.allclose(net(g, net.arch_weights_for(arch)), exported(g), atol=1e-5)


def test_nb201_stem_is_nb201_stem_at_feature_size() -> None:
    net = NB201Supernet(C=4, N=1, resolutions=(16, 32, 64), feature_size=16)
    ref = NB201Network(CELL, C=4, N=1)
    head = net.heads.head_for(16)
    assert [type(m) for m in head[1:]] == [type(m) for m in ref.stem]
    for r in (16, 32, 64):
        out = net.heads(torch.randn(2, 3, r, r))
        assert out.shape == (2, 4, 16, 16)
    with pytest.raises(ConfigError, match="no input head for 24"):
        net.heads(torch.randn(2, 3, 24, 24))
    with pytest.raises(ConfigError, match="power of 2"):
        NB201Supernet(C=4, resolutions=(24,), feature_size=16)


def test_classifier_is_per_task_and_not_meta_state() -> None:
    net = NB201Supernet(C=4, N=1, resolutions=(16,))
    net.reset_classifier(7)
    assert net.classifier.out_features == 7
    assert float(net.classifier.weight.detach().abs().sum()) == 0.0
    out = net(torch.randn(4, 3, 16, 16))
    assert torch.allclose(torch.softmax(out, 1), torch.full((4, 7), 1 / 7))
    state = net.meta_state()
    assert not any(k.startswith("classifier") for k in state)
    assert "arch.cell" in state and state["arch.cell"].shape == (6, 5)
    assert not any("num_batches_tracked" in k for k in state)
    ids = {id(p) for p in net.arch_parameters()}
    assert all(id(p) not in ids for p in net.weight_parameters())


@pytest.mark.parametrize("mode", ["gumbel", "softmax", "hard"])
def test_gradients_reach_weights_and_logits(mode: str) -> None:
    for net in (NB201Supernet(C=4, N=1, resolutions=(16,)),
                DartsSupernet(C=4, layers=3, resolutions=(16,), feature_size=8)):
        net.reset_classifier(3)
        torch.nn.init.normal_(net.classifier.weight)
        w = net.sample_weights(mode, 1.0, torch.Generator().manual_seed(0))
        loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 3, 16, 16), w),
                                                 torch.tensor([0, 1, 2, 0]))
        loss.backward()
        for p in net.arch_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0


def test_darts_supernet_shapes_and_tables() -> None:
    net = DartsSupernet(C=4, layers=3, resolutions=(16, 32), feature_size=8, num_classes=4)
    assert set(net.arch) == {"normal", "reduce"}
    assert net.arch["normal"].shape == (14, 8)
    assert [c.reduction for c in net.cells] == [False, True, True]
    for r in (16, 32):
        assert net(torch.randn(2, 3, r, r)).shape == (2, 4)
    # a derived genotype runs inside the supernet (two ops per node: one-hot rows per edge)
    geno = DartsGenotype.sample(0)
    tables = geno.one_hot()
    for name in tables:  # rows of unused edges: route to ``none``
        unused = tables[name].sum(1) == 0
        tables[name][unused, 0] = 1.0
    out = net(torch.randn(2, 3, 16, 16), net.fixed_weights(tables))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_build_supernet_round_trips_config() -> None:
    for net in (NB201Supernet(C=4, N=2, resolutions=(16, 32)),
                DartsSupernet(C=4, layers=4, resolutions=(8,), feature_size=8)):
        clone = build_supernet(net.config)
        assert type(clone) is type(net) and clone.config == net.config
        assert {k: v.shape for k, v in clone.meta_state().items()} == \
            {k: v.shape for k, v in net.meta_state().items()}
    with pytest.raises(ConfigError):
        build_supernet({"space": "nasnet"})


def test_probabilities_uniform_at_init() -> None:
    probs = NB201Supernet(C=4, resolutions=(16,)).probabilities()["cell"]
    assert np.allclose(probs, 0.2)
    arch = NB201Arch.from_probabilities(probs + np.eye(6, 5) * 0.1)
    assert arch.op_indices == (0, 1, 2, 3, 4, 0)
