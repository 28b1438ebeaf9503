"""Zero-cost proxies: determinism, agreement with the counters, sanity of the ranking, and the
documented behaviour on degenerate inputs (tiny networks, 8 px digits)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from metanas import api
from metanas.cli import app
from metanas.data import from_arrays, load_dataset
from metanas.errors import ConfigError, DatasetError
from metanas.features.zero_cost import (
    PROXIES,
    ZeroCostConfig,
    check_proxies,
    proxy_batch,
    score_cell,
    score_cells,
)
from metanas.methods.interface import Budget
from metanas.spaces.nb201 import NB201Network, count_macs, count_params
from metanas.tasks import make_task

TINY = ZeroCostConfig(C=4, N=1, batch_size=16, seed=0)
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"
NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
MIXED = "|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"


@pytest.fixture(scope="module")
def task():
    return make_task(load_dataset("digits"), resolution=8, max_train_per_class=20)


def test_deterministic_for_a_seed(task):
    a = score_cells(task, [MIXED, CONV], config=TINY)
    b = score_cells(task, [MIXED, CONV], config=TINY)
    assert [r["scores"] for r in a] == [r["scores"] for r in b]
    assert list(a[0]["scores"]) == list(PROXIES)
    assert all(math.isfinite(v) for r in a for v in r["scores"].values())
    other = score_cells(task, [MIXED], config=ZeroCostConfig(C=4, N=1, batch_size=16, seed=1))
    assert other[0]["scores"]["nwot"] != a[0]["scores"]["nwot"]  # another batch and init
    assert set(a[0]["seconds"]) == set(PROXIES) and a[0]["seconds_total"] > 0


def test_params_and_flops_are_the_counters(task):
    r = score_cells(task, [MIXED], proxies="params,flops", config=TINY)[0]
    net = NB201Network(MIXED, C=4, N=1, in_channels=task.channels, num_classes=task.num_classes)
    assert r["scores"]["params"] == count_params(net)
    assert r["scores"]["flops"] == count_macs(net, 8, task.channels)


def test_conv_cell_ranks_above_pool_and_none(task):
    res = {r["arch"]: r for r in score_cells(task, [CONV, POOL, NONE],
                                             proxies="synflow,nwot,meco", config=TINY)}
    for p in ("synflow", "nwot", "meco"):  # meco: the all-none cell adds only the stem's terms
        assert res[CONV]["scores"][p] > res[POOL]["scores"][p] > res[NONE]["scores"][p]
    # the all-none cell has no path from input to output: -inf with a flag, never NaN
    assert res[NONE]["scores"]["nwot"] == -math.inf
    assert "nwot" in res[NONE]["nonfinite"] and not res[CONV]["nonfinite"]


def test_proxy_names_are_checked():
    assert check_proxies("nwot, Grad-Norm") == ("nwot", "grad_norm")
    with pytest.raises(ConfigError, match="unknown zero-cost proxy 'nwott'.*available"):
        check_proxies("nwot,nwott")
    with pytest.raises(ConfigError):
        ZeroCostConfig(batch_size=1)


def test_one_class_batch_is_an_error_for_loss_based_proxies(task):
    x, y = proxy_batch(task, 16, 0)
    y = torch.zeros_like(y)
    with pytest.raises(DatasetError, match="single class"):
        score_cell(MIXED, x, y, num_classes=10, proxies="snip", config=TINY)
    r = score_cell(MIXED, x, y, num_classes=10, proxies="nwot,jacov,synflow", config=TINY)
    assert all(math.isfinite(v) for v in r["scores"].values())


def test_constant_images_are_an_error_for_data_dependent_proxies(task):
    x, y = proxy_batch(task, 16, 0)
    x = torch.full_like(x, 0.5)
    with pytest.raises(DatasetError, match="identical"):
        score_cell(MIXED, x, y, num_classes=10, proxies="nwot", config=TINY)
    r = score_cell(MIXED, x, y, num_classes=10, proxies="synflow,params", config=TINY)
    assert all(math.isfinite(v) for v in r["scores"].values())


def test_tiny_images_are_an_error(task):
    x, y = proxy_batch(task, 16, 0)
    with pytest.raises(ConfigError, match="at least 4x4"):
        score_cell(MIXED, x[:, :, :1, :1], y, num_classes=10, config=TINY)
    with pytest.raises(ConfigError, match="--resolution 1 px"):
        api.zero_cost("digits", archs=[MIXED], resolution=1, C=4, N=1)


def test_a_side_the_network_cannot_halve_twice_is_an_error_or_rounded_down(task):
    """5 or 10 px would leave the reduction's two branches a pixel apart: an explicit side
    is a clear error, a default one is rounded down to a multiple of 4."""
    x, y = proxy_batch(task, 16, 0)
    with pytest.raises(ConfigError, match="divisible by 4"):
        score_cell(MIXED, x[:, :, :6, :6], y, num_classes=10, config=TINY)
    with pytest.raises(ConfigError, match="--resolution 10 px.*e.g. 8"):
        api.zero_cost("digits", archs=[MIXED], resolution=10, C=4, N=1)
    rng = np.random.default_rng(0)
    small = from_arrays(rng.integers(0, 255, (40, 10, 10, 3), dtype=np.uint8),
                        np.repeat(np.arange(4), 10), name="ten-px")
    res = api.zero_cost(small, archs=[MIXED], C=4, N=1, batch_size=8)
    assert res["task"]["resolution"] == 8 and math.isfinite(res["cells"][0]["scores"]["nwot"])
    found = api.search(small, method="zero-cost", top=1, budget=Budget(evaluations=3))
    assert found.details["resolution"] == 8


def test_api_returns_scores_and_seconds_per_cell():
    res = api.zero_cost("digits", sample=2, proxies="nwot,params", C=4, N=1, resolution=8,
                        batch_size=16)
    assert res["proxies"] == ["nwot", "params"] and len(res["cells"]) == 2
    assert res["config"] == {"C": 4, "N": 1, "batch_size": 16, "seed": 0, "zico_batches": 2,
                             "resolution": 8}
    for cell in res["cells"]:
        assert set(cell["scores"]) == {"nwot", "params"} and cell["seconds_total"] > 0
    with pytest.raises(ConfigError, match="archs or sample"):
        api.zero_cost("digits")


def test_cli_table_json_and_bad_proxy(tmp_path):
    runner = CliRunner()
    out = tmp_path / "zc.json"
    res = runner.invoke(app, ["zero-cost", "--dataset", "digits", "--arch", CONV, "--arch", NONE,
                              "--proxies", "synflow,params", "--C", "4", "--N", "1",
                              "--batch-size", "16", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "synflow" in res.output and "could not be computed" in res.output
    payload = json.loads(out.read_text())
    assert payload["cells"][1]["scores"]["synflow"] is None  # -inf is null in JSON
    bad = runner.invoke(app, ["zero-cost", "--dataset", "digits", "--sample", "2",
                              "--proxies", "nwot,bogus"])
    assert bad.exit_code == 2
    assert len(bad.output.strip().splitlines()) == 1 and "bogus" in bad.output


def test_weighted_rank_vote():
    """Equal weights are the plain vote; weights move the vote towards their ballot."""
    from metanas.features.zero_cost import rank_vote

    results = [{"scores": {"a": a, "b": b}} for a, b in [(3, 1), (2, 2), (1, 3), (0, 0)]]
    plain = rank_vote(results, ["a", "b"], prior_order=True)
    assert np.allclose(rank_vote(results, ["a", "b"], prior_order=True, weights=[2, 2, 2]), plain)
    only_b = rank_vote(results, ["a", "b"], prior_order=True, weights=[0, 0, 1])
    assert int(np.argmax(only_b)) == 2 and int(np.argmax(plain)) == 0
    for bad in ([1, 1], [1, -1, 1], [0, 0, 0], [1, float("nan"), 1]):
        with pytest.raises(ConfigError, match="weights"):
            rank_vote(results, ["a", "b"], prior_order=True, weights=bad)


def test_value_net_rerank_weights_option():
    res = api.search("digits", top=3, options={"rerank": "nwot,zico", "rerank_weights": "0,1,1"})
    assert res.details["rerank_weights"] == [0.0, 1.0, 1.0]
    for bad in ("1,1,1", "a,b", "1,-1", "0,0"):  # the default vote: the network, then nwot
        with pytest.raises(ConfigError, match="rerank_weights"):
            api.search("digits", top=3, options={"rerank_weights": bad})


def test_meco_sums_min_eigenvalues_of_channel_correlations(task):
    """MeCo by numpy on the first image's feature maps of every module (a constant channel's
    undefined correlations count as 0) equals the proxy; each term lies in [0, 1]; label-free."""
    x, y = proxy_batch(task, 16, 0)
    got = score_cell(MIXED, x, torch.zeros_like(y), num_classes=10, proxies="meco",
                     config=TINY)["scores"]["meco"]
    torch.manual_seed(TINY.seed)
    net = NB201Network(MIXED, C=4, N=1, in_channels=task.channels, num_classes=10)
    maps = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: maps.append(out[0].detach().numpy()))
             for m in net.modules()]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    terms = []
    for fm in maps:
        if fm.ndim == 3 and fm.shape[1] * fm.shape[2] > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.nan_to_num(np.corrcoef(fm.reshape(len(fm), -1).astype(np.float64)),
                                     nan=0.0, posinf=0.0, neginf=0.0)
            terms.append(np.linalg.eigvalsh(corr)[0])
    assert len(terms) > 10 and all(-1e-9 <= t <= 1 + 1e-9 for t in terms)
    assert got == pytest.approx(sum(terms), rel=1e-4, abs=1e-6)
    # one channel has no correlation matrix: those maps add nothing, never an error or NaN
    one = score_cell(MIXED, x, y, num_classes=10, proxies="meco",
                     config=ZeroCostConfig(C=1, N=1, batch_size=16))["scores"]["meco"]
    assert math.isfinite(one)


def test_cli_help_names_every_proxy():
    """The help text is written out (the CLI does not import torch to print it): it must not
    fall behind the proxies that exist."""
    out = CliRunner().invoke(app, ["zero-cost", "--help"], terminal_width=200).output
    assert all(p in out for p in PROXIES), [p for p in PROXIES if p not in out]
