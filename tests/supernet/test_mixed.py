"""The shared mixed op: op weights from logits, one-hot equals the chosen op, temperatures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metanas.errors import ConfigError
from metanas.supernet import MixedOp, TemperatureSchedule, Zero, mix_weights


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _ops() -> list[nn.Module]:
    return [Zero(), nn.Identity(), nn.Conv2d(3, 3, 3, padding=1), nn.AvgPool2d(3, 1, 1)]


@pytest.mark.parametrize("mode", ["softmax", "gumbel", "hard"])
def test_weights_sum_to_one(mode: str) -> None:
    logits = torch.randn(6, 5, requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    for tau in (0.1, 1.0, 5.0):
        w = mix_weights(logits, mode, tau, gen).weights
        assert w.shape == (6, 5)
        assert torch.allclose(w.sum(-1), torch.ones(6), atol=1e-5)
        assert (w >= -1e-6).all()
        w.sum().backward()  # differentiable in every training mode


def test_gumbel_noise_is_fresh_and_seeded() -> None:
    logits = torch.zeros(6, 5)
    gen = torch.Generator().manual_seed(3)
    a = mix_weights(logits, "gumbel", 1.0, gen).weights
    b = mix_weights(logits, "gumbel", 1.0, gen).weights
    assert not torch.allclose(a, b)
    again = mix_weights(logits, "gumbel", 1.0, torch.Generator().manual_seed(3)).weights
    assert torch.equal(a, again)
    # frequencies of the Gumbel-max follow softmax(logits)
    logits = torch.tensor([[2.0, 0.0, -1.0]]).expand(4000, 3)
    idx = mix_weights(logits, "hard", 1.0, gen).active
    freq = torch.bincount(idx, minlength=3).float() / len(idx)
    assert torch.allclose(freq, torch.softmax(logits[0], -1), atol=0.03)


def test_hard_weights_are_one_hot_with_gradient() -> None:
    logits = torch.randn(6, 5, requires_grad=True)
    w = mix_weights(logits, "hard", 0.5, torch.Generator().manual_seed(0))
    assert torch.allclose(w.weights.detach(), nn.functional.one_hot(w.active, 5).float())
    (w.weights * torch.arange(5.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_mixed_op_with_extreme_logits_equals_chosen_op(k: int) -> None:
    op = MixedOp(_ops())
    x = torch.randn(2, 3, 8, 8)
    logits = torch.full((1, 4), -1e4)
    logits[0, k] = 1e4
    for mode in ("softmax", "gumbel", "argmax"):
        w = mix_weights(logits, mode, 1.0, torch.Generator().manual_seed(0))
        out = op(x, w.weights[0], None if w.active is None else int(w.active[0]))
        assert torch.allclose(out, op.ops[k](x), atol=1e-6), mode


def test_mixed_op_is_the_weighted_sum() -> None:
    op = MixedOp(_ops())
    x = torch.randn(2, 3, 8, 8)
    w = torch.softmax(torch.randn(4), 0)
    expected = sum(w[i] * m(x) for i, m in enumerate(op.ops))
    assert torch.allclose(op(x, w), expected, atol=1e-6)
    # all weight on ``none``: zeros of the right shape
    assert torch.equal(op(x, torch.tensor([1.0, 0, 0, 0])), torch.zeros_like(x))


def test_temperature_schedule() -> None:
    exp = TemperatureSchedule(1.0, 0.1, 10, "exp")
    assert exp(0) == pytest.approx(1.0)
    assert exp(5) == pytest.approx(0.1**0.5)
    assert exp(10) == pytest.approx(0.1) and exp(100) == pytest.approx(0.1)
    lin = TemperatureSchedule(10.0, 0.1, 4, "linear")
    assert [round(lin(s), 4) for s in range(6)] == [10.0, 7.525, 5.05, 2.575, 0.1, 0.1]
    assert TemperatureSchedule(2.0, 0.1, 5, "constant")(3) == 2.0
    values = [exp(s) for s in range(11)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(ConfigError):
        TemperatureSchedule(1.0, 0.0, 10)
    with pytest.raises(ConfigError):
        TemperatureSchedule(1.0, 0.5, 10, "cosine")
    with pytest.raises(ConfigError):
        mix_weights(torch.zeros(2, 2), "sparsemax")
