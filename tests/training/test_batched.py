"""Batched training of several NB201 cells as one grouped model equals one-at-a-time training."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from metanas.data import load_dataset
from metanas.errors import ConfigError
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import Task, make_task
from metanas.training.batched import (
    BatchedNB201Network,
    _BatchedCell,
    _per_model_loss,
    effective_ops,
    train_architectures_batched,
)
from metanas.training.recipes import get_recipe
from metanas.training.trainer import build_model, train_architecture

ARCHS = [
    # conv-heavy
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    # none edges, every node alive
    "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|",
    # parameter-free: avg_pool and skip only
    "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|",
    # dead nodes 1 and 2: their outgoing convs never run in NB201Cell
    "|none~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|",
]
RECIPE = get_recipe("cpu-tiny", epochs=2)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task() -> Task:
    # 10 classes x 40 labelled images (32 train + 8 val) at 8 px: 10 steps per epoch
    return make_task(load_dataset("digits"), resolution=8, max_train_per_class=40, seed=0)


@pytest.fixture(scope="module")
def singles(task):
    return [train_architecture(a, task, RECIPE, seed=0, return_model=True) for a in ARCHS]


@pytest.fixture(scope="module")
def batched(task):
    archs = [NB201Arch.from_string(a) for a in ARCHS]
    return train_architectures_batched(archs, task, RECIPE, seed=0, return_model=True)


def _assert_same(single, batched_result, task: Task) -> None:
    """Same training, compared where it is stable across CPUs and thread counts: accuracies
    within 3 samples or 3% of the split, losses within 2%. Float-order drift over ~20 SGD
    steps, measured: <= 1 sample and 1e-4 relative on one CPU; on another (Intel Xeon, one
    thread) 4 of 359 test samples and 1e-3 relative for the conv-heavy cell, whose accuracy
    after 2 epochs is 23% with many images near a decision boundary. The four cells differ
    from each other by 16 to 131 test samples."""
    assert batched_result.arch == single.arch
    for split, a, b in (("val", single.val_acc, batched_result.val_acc),
                        ("test", single.test_acc, batched_result.test_acc)):
        n = len(task.y_val if split == "val" else task.y_test)
        assert abs(a - b) <= max(3 / n, 0.03) + 1e-6, (split, a, b)
    for key in ("train_loss", "val_loss", "test_loss"):
        a, b = getattr(single, key), getattr(batched_result, key)
        assert abs(a - b) <= 2e-2 * abs(a), (key, a, b)
    for key in ("params", "macs", "recipe", "recipe_hash", "seed", "epochs", "device"):
        assert getattr(batched_result, key) == getattr(single, key), key


def test_initial_weights_equal_the_trainers(task) -> None:
    nets = []
    for a in ARCHS:
        torch.manual_seed(3)
        nets.append(build_model(a, task, RECIPE))
    model = BatchedNB201Network(ARCHS, **nets[0].config)
    for b, net in enumerate(nets):
        model.load_slot(b, net)
    x = task.x_train[:8]
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (len(ARCHS), 8, task.num_classes)
        for b, net in enumerate(nets):
            torch.testing.assert_close(logits[b], net(x), atol=1e-5, rtol=1e-5)


def test_batched_matches_one_at_a_time(task, singles, batched) -> None:
    results, _model = batched
    assert len(results) == len(ARCHS)
    for (single, _net), res in zip(singles, results, strict=True):
        _assert_same(single, res, task)
        assert res.seconds > 0


def test_one_step_outputs_and_gradients_match(task) -> None:
    """The tight check: one forward/backward of the batched model equals the B single ones.

    Grouped and plain convolutions sum in different orders, so after many SGD steps weights
    drift apart chaotically (seen: 4e-3 on one CPU after 2 epochs); one step is stable.
    """
    nets = []
    for a in ARCHS:
        torch.manual_seed(0)
        nets.append(build_model(a, task, RECIPE).train())
    model = BatchedNB201Network(ARCHS, **nets[0].config).train()
    for b, net in enumerate(nets):
        model.load_slot(b, net)
    x, y = task.x_train[:16], task.y_train[:16]
    losses = _per_model_loss(model(x), y, 0.0)
    losses.sum().backward()
    for b, net in enumerate(nets):
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        torch.testing.assert_close(losses[b], loss, atol=1e-5, rtol=1e-5)
    # the batched gradients, read back through export(), are each network's own gradients
    grads = copy.deepcopy(model)
    with torch.no_grad():
        for g, p in zip(grads.parameters(), model.parameters(), strict=True):
            g.copy_(p.grad)
    for b, (a, net) in enumerate(zip(ARCHS, nets, strict=True)):
        exported = dict(grads.export(b, build_model(a, task, RECIPE)).named_parameters())
        compared = 0
        for name, p in net.named_parameters():
            if p.grad is None:  # an op the cell never runs (edge out of a dead node)
                continue
            torch.testing.assert_close(exported[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)
            compared += 1
        assert compared > 0


def test_unused_slots_stay_zero(batched) -> None:
    _results, model = batched
    # op slots a model does not run got zero gradients and no weight decay: still exactly zero
    checked = 0
    for layer in model.cells:
        if not isinstance(layer, _BatchedCell):
            continue
        c = layer.channels
        for key, conv in layer.convs.items():
            k, op = key.split("_", 1)
            for b, eff in enumerate(model.eff_ops):
                if eff[int(k)] == op:
                    continue
                sl = slice(b * c, (b + 1) * c)
                for tensor in (conv.conv.weight[sl], conv.bn.weight[sl], conv.bn.bias[sl]):
                    assert torch.count_nonzero(tensor) == 0, (key, b)
                checked += 1
    assert checked > 0


def test_strings_and_a_batch_of_one(task, singles) -> None:
    (res,) = train_architectures_batched([ARCHS[1]], task, RECIPE, seed=0)
    _assert_same(singles[1][0], res, task)


def test_duplicates_in_a_batch(task, singles) -> None:
    results = train_architectures_batched([ARCHS[0], ARCHS[2], ARCHS[0]], task, RECIPE, seed=0)
    _assert_same(singles[0][0], results[0], task)
    _assert_same(singles[2][0], results[1], task)
    _assert_same(singles[0][0], results[2], task)


def test_label_smoothing_and_skipped_last_batch(task) -> None:
    # 320 train images in batches of 29 leave a last batch of 1, which the trainer skips
    recipe = get_recipe("cpu-tiny", epochs=1, batch_size=29, label_smoothing=0.1, augment="crop")
    archs = ARCHS[1:3]
    results = train_architectures_batched(archs, task, recipe, seed=5)
    for a, res in zip(archs, results, strict=True):
        _assert_same(train_architecture(a, task, recipe, seed=5), res, task)


def test_effective_ops_and_errors() -> None:
    assert effective_ops(ARCHS[3]) == (
        "none", "none", "none", "nor_conv_1x1", "none", "none")
    assert effective_ops(ARCHS[0]) == NB201Arch.from_string(ARCHS[0]).ops
    with pytest.raises(ConfigError):
        train_architectures_batched([], None, RECIPE)  # type: ignore[arg-type]
