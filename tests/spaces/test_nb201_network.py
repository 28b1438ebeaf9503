"""The NB201 network: shapes, exact NB201 ops and skeleton, parameter and MAC counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from metanas.errors import ArchitectureError, ConfigError
from metanas.spaces.nb201 import NB201Arch, NB201Network, count_macs, count_params
from metanas.spaces.nb201.network import (
    SIDE_DIVISOR,
    AvgPool,
    NB201Cell,
    ReLUConvBN,
    ResidualReduction,
    check_side,
    make_op,
    nb201_side,
)

CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is fastest and does not stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [8, 16, 32])
def test_output_shape(in_channels: int, size: int) -> None:
    net = NB201Network(MIXED_CELL, C=4, N=1, in_channels=in_channels, num_classes=7)
    out = net(torch.randn(3, in_channels, size, size))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, in_channels, size, size)).shape == (1, 7)


def test_network_accepts_arch_objects_and_strings() -> None:
    arch = NB201Arch.from_string(MIXED_CELL)
    assert NB201Network(arch, C=4, N=1).arch == NB201Network(MIXED_CELL, C=4, N=1).arch == arch
    with pytest.raises(ArchitectureError):
        NB201Network("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", C=4, N=1)


@pytest.mark.parametrize("kwargs", [dict(C=0), dict(N=0), dict(in_channels=0),
                                    dict(num_classes=1)])
def test_invalid_sizes_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        NB201Network(MIXED_CELL, **{"C": 4, "N": 1, **kwargs})


def test_none_edges_create_no_modules() -> None:
    arch = NB201Arch.from_string(
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
    )
    cell = NB201Cell(arch, 8)
    assert set(cell.edges.keys()) == {"1<-0", "3<-0", "3<-1"}
    assert isinstance(cell.edges["3<-0"], nn.Identity)
    assert isinstance(cell.edges["3<-1"], AvgPool)
    assert sum(isinstance(m, nn.Conv2d) for m in cell.modules()) == 1
    assert count_params(cell) == 8 * 8 * 9 + 2 * 8


def test_all_none_cell_has_no_modules_and_outputs_zeros() -> None:
    cell = NB201Cell(NB201Arch.from_string(ALL_NONE), 4)
    assert len(cell.edges) == 0
    assert count_params(cell) == 0
    x = torch.randn(2, 4, 6, 6)
    out = cell(x)
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(x))


def test_all_none_network_still_gives_logits() -> None:
    net = NB201Network(ALL_NONE, C=4, N=2, in_channels=3, num_classes=5)
    nn.init.normal_(net.classifier.bias)
    for train in (True, False):
        net.train(train)
        with torch.no_grad():
            logits = net(torch.randn(4, 3, 16, 16))
        assert logits.shape == (4, 5)
        assert torch.isfinite(logits).all()
        # the cells zero the signal, so every image gets the classifier's bias
        torch.testing.assert_close(logits, net.classifier.bias.expand(4, 5))


def test_cell_computes_the_nb201_node_sums() -> None:
    arch = NB201Arch.from_string(MIXED_CELL)
    cell = NB201Cell(arch, 4).eval()
    for m in cell.modules():  # non-trivial BN so a wrong wiring cannot hide
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    e = cell.edges
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        n1 = e["1<-0"](x)
        n2 = e["2<-0"](x) + e["2<-1"](n1)
        n3 = e["3<-0"](x) + e["3<-1"](n1) + e["3<-2"](n2)
        torch.testing.assert_close(cell(x), n3)


# ----- exact NB201 ops --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kernel"), [("nor_conv_3x3", 3), ("nor_conv_1x1", 1)])
def test_conv_ops_are_relu_conv_bn(name: str, kernel: int) -> None:
    op = make_op(name, 6)
    assert isinstance(op, ReLUConvBN)
    relu, conv, bn = list(op.children())
    assert isinstance(relu, nn.ReLU) and not relu.inplace
    assert isinstance(conv, nn.Conv2d)
    assert conv.bias is None
    assert conv.kernel_size == (kernel, kernel)
    assert conv.stride == (1, 1)
    assert conv.padding == (kernel // 2, kernel // 2)
    assert conv.in_channels == conv.out_channels == 6
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 6 and bn.affine
    assert count_params(op) == 6 * 6 * kernel * kernel + 2 * 6
    # behaviour: ReLU comes first, so negative inputs are indistinguishable from zeros
    op.eval()
    with torch.no_grad():
        neg = -torch.rand(1, 6, 5, 5)
        torch.testing.assert_close(op(neg), op(torch.zeros_like(neg)))
        assert op(torch.randn(1, 6, 5, 5)).shape == (1, 6, 5, 5)


def test_avg_pool_excludes_padding() -> None:
    op = make_op("avg_pool_3x3", 2)
    assert isinstance(op, AvgPool)
    assert op.kernel == 3 and op.stride == 1 and op.padding == 1
    out = op(torch.ones(1, 2, 4, 4))
    # with padding counted, the corner would be 4/9
    torch.testing.assert_close(out, torch.ones(1, 2, 4, 4))


def test_skip_is_identity_and_none_has_no_module() -> None:
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(make_op("skip_connect", 3)(x), x)
    with pytest.raises(ValueError):
        make_op("none", 3)
    with pytest.raises(ValueError):
        make_op("max_pool_3x3", 3)


def test_reduction_block_halves_size_and_doubles_channels() -> None:
    block = ResidualReduction(4, 8)
    assert block(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert block(torch.randn(2, 4, 16, 16)).shape == (2, 8, 8, 8)
    assert block.conv_a[1].stride == (2, 2) and block.conv_a[1].kernel_size == (3, 3)
    assert block.conv_b[1].stride == (1, 1)
    pool, conv = block.shortcut
    assert isinstance(pool, AvgPool) and pool.kernel == 2 and pool.stride == 2
    assert conv.kernel_size == (1, 1) and conv.bias is None
    # params: conv_a 4*8*9 + BN 16, conv_b 8*8*9 + BN 16, shortcut 4*8
    assert count_params(block) == 288 + 16 + 576 + 16 + 32


def test_skeleton_stages() -> None:
    net = NB201Network(MIXED_CELL, C=4, N=2, in_channels=3, num_classes=10)
    kinds = [type(m) for m in net.cells]
    assert kinds == [NB201Cell] * 2 + [ResidualReduction] + [NB201Cell] * 2 + \
        [ResidualReduction] + [NB201Cell] * 2
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
             for m in net.cells]
    net(torch.randn(2, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert shapes == [(4, 16, 16)] * 2 + [(8, 8, 8)] * 3 + [(16, 4, 4)] * 3
    assert net.classifier.in_features == 16 and net.classifier.out_features == 10
    assert net.features(torch.randn(2, 3, 16, 16)).shape == (2, 16)


# ----- parameter and MAC counts -----------------------------------------------------------------


def test_params_of_the_full_nb201_network() -> None:
    # C=16, N=5, 3 input channels, 10 classes; the cell has five nor_conv_3x3 and one skip.
    #   stem      conv 3->16 3x3: 3*16*9 = 432, BN(16): 32                              =     464
    #   stage 1   op at 16: 16*16*9 + 32 = 2,336; x5 ops x5 cells                        =  58,400
    #   reduce 1  conv_a 16*32*9 + 64 = 4,672; conv_b 32*32*9 + 64 = 9,280; 1x1 16*32 = 512
    #                                                                                  =  14,464
    #   stage 2   op at 32: 32*32*9 + 64 = 9,280; x25                                    = 232,000
    #   reduce 2  conv_a 32*64*9 + 128 = 18,560; conv_b 64*64*9 + 128 = 36,992; 1x1 2,048
    #                                                                                  =  57,600
    #   stage 3   op at 64: 64*64*9 + 128 = 36,992; x25                                  = 924,800
    #   head BN(64) 128, classifier 64*10 + 10 = 650                                    =     778
    #   total 464 + 58,400 + 14,464 + 232,000 + 57,600 + 924,800 + 778                  = 1,288,506
    net = NB201Network(CONV_CELL, C=16, N=5, in_channels=3, num_classes=10)
    assert count_params(net) == 1_288_506
    # the same skeleton with an all-none cell keeps only stem, reductions and head:
    # 464 + 14,464 + 57,600 + 778 = 73,306
    assert count_params(NB201Network(ALL_NONE, C=16, N=5)) == 73_306


def test_macs_by_hand_for_a_small_network() -> None:
    # all-none cell, C=4, N=1, gray 8 px, 10 classes (MACs = output elements * kernel volume):
    #   stem 1->4 3x3 at 8x8: 4*64 * 9           = 2,304
    #   reduce 1 (4->8, 4x4): conv_a 8*16 * 36   = 4,608; conv_b 8*16 * 72 = 9,216; 1x1 8*16*4 = 512
    #   reduce 2 (8->16, 2x2): conv_a 16*4 * 72  = 4,608; conv_b 16*4 * 144 = 9,216; 1x1 16*4*8 = 512
    #   classifier 16*10                         =   160
    net = NB201Network(ALL_NONE, C=4, N=1, in_channels=1, num_classes=10)
    assert count_macs(net, 8) == 2304 + 4608 + 9216 + 512 + 4608 + 9216 + 512 + 160 == 31_136
    # each 3x3 conv op of a cell at stage 1 adds 4*64*36 MACs
    one_conv = NB201Network("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                            C=4, N=1, in_channels=1, num_classes=10)
    assert count_macs(one_conv, 8) - 31_136 == 4 * 64 * 36 + 8 * 16 * 72 + 16 * 4 * 144


def test_macs_positive_and_scale_with_resolution() -> None:
    net = NB201Network(CONV_CELL, C=8, N=1, in_channels=3, num_classes=10)
    m16, m32 = count_macs(net, 16), count_macs(net, 32)
    assert m16 > 0
    assert 3.9 < m32 / m16 <= 4.0  # convs scale with the area, the classifier does not
    assert count_macs(net, 16) == m16  # hooks are removed: a second count is not doubled
    assert all(not m._forward_hooks for m in net.modules())


def test_count_macs_restores_mode_and_leaves_bn_stats_alone() -> None:
    net = NB201Network(CONV_CELL, C=4, N=1, in_channels=3, num_classes=10)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs(net, 16)
    assert net.training and all(m.training for m in net.modules())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    net.eval()
    count_macs(net, 16)
    assert not net.training and not any(m.training for m in net.modules())


def test_count_macs_uses_configured_input_channels() -> None:
    gray = NB201Network(CONV_CELL, C=4, N=1, in_channels=1, num_classes=10)
    rgb = NB201Network(CONV_CELL, C=4, N=1, in_channels=3, num_classes=10)
    # only the stem differs: 2 extra input channels * 9 * C * 16*16 positions
    assert count_macs(rgb, 16) - count_macs(gray, 16) == 2 * 9 * 4 * 256
    assert count_macs(gray, 16, in_channels=1) == count_macs(gray, 16)


@settings(max_examples=60, deadline=None)
@given(kernel_stride_padding=st.sampled_from([(3, 1, 1), (2, 2, 0), (3, 2, 1)]),
       channels=st.integers(1, 5), height=st.integers(1, 12), width=st.integers(1, 12),
       seed=st.integers(0, 2**16))
def test_avg_pool_is_torchs_pooling_without_padding_counted(kernel_stride_padding, channels,
                                                            height, width, seed) -> None:
    """The depthwise-convolution pooling gives nn.AvgPool2d(count_include_pad=False)'s values
    and gradients (float64, so the comparison is tight on every CPU and thread count)."""
    k, s, p = kernel_stride_padding
    if height + 2 * p < k or width + 2 * p < k:
        return
    x = torch.randn(2, channels, height, width, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed), requires_grad=True)
    ours = AvgPool(k, s, p)(x)
    theirs = nn.AvgPool2d(k, s, p, count_include_pad=False)(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-12, atol=1e-12)
    assert not list(AvgPool(k, s, p).parameters()) and not AvgPool(k, s, p).state_dict()


@pytest.mark.parametrize("side", range(4, 21))
def test_the_sides_the_skeleton_takes(side):
    """A side divisible by 4 runs; any other fails check_side with a clear error (in the
    network a shape mismatch, or at 6 px a 1-pixel shortcut silently broadcast over the
    2-pixel branch), and nb201_side gives the largest side below it that runs."""
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    net = NB201Network(arch, C=2, N=1)
    fitted = nb201_side(side)
    assert fitted <= side and fitted % SIDE_DIVISOR == 0 and side - fitted < SIDE_DIVISOR
    assert net(torch.rand(2, 3, fitted, fitted)).shape == (2, 10)
    if side % SIDE_DIVISOR:
        with pytest.raises(ConfigError, match=f"{side} px.*divisible by 4.*e.g. {fitted}"):
            check_side(side)
    else:
        check_side(side)
