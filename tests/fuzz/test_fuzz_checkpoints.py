"""Checkpoints: every kind shipped in metanas/assets, with mutated metadata (JSON fields
replaced by huge, negative, wrong-typed values; entries dropped), mutated tensors (reshaped,
retyped, NaN, dropped, added) and damaged header bytes. Loaded through each method's loader."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from metanas.methods.metad2a.extractor import load_extractor
from metanas.methods.registry import get_method
from metanas.paths import assets_dir

from .conftest import FUZZ, loads_cleanly

LOADERS = {
    "value_net.safetensors": get_method("value-net").load_class().load,
    "base_nb201.safetensors": get_method("base").load_class().load,
    "metad2a.safetensors": get_method("metad2a").load_class().load,
    "metad2a_extractor.safetensors": load_extractor,
    "transfer.safetensors": get_method("fisher-nearest").load_class().load,
}
VALUES = st.one_of(st.sampled_from([0, -1, 1.5, 10**6, 10**30, "abc", None, [], {}, True]),
                   st.integers(-5, 300), st.text(max_size=8))


@pytest.fixture(scope="module")
def shipped():
    out = {}
    for name in LOADERS:
        with safe_open(str(assets_dir() / name), framework="pt") as fh:
            out[name] = ({k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata()))  # noqa: SIM118
    return out


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list) and value and not isinstance(value[0], (dict, list)) or not isinstance(value, list):
        yield path


@st.composite
def mutation(draw, name, tensors, meta):
    tensors, meta = dict(tensors), dict(meta)
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["json", "meta", "drop-meta", "tensor", "drop-tensor",
                                     "nan", "extra-tensor"]))
        if what in ("json", "meta", "drop-meta"):
            key = draw(st.sampled_from(sorted(meta)))
            if what == "drop-meta":
                meta.pop(key)
                continue
            try:
                decoded = json.loads(meta[key])
            except (json.JSONDecodeError, TypeError):
                decoded = None
            leaves = list(_leaves(decoded)) if isinstance(decoded, dict) else []
            if what == "json" and leaves:
                path = draw(st.sampled_from(leaves))
                node = decoded
                for k in path[:-1]:
                    node = node[k]
                node[path[-1]] = draw(VALUES)
                meta[key] = json.dumps(decoded)
            else:
                meta[key] = draw(st.one_of(st.text(max_size=20), VALUES.map(json.dumps)))
        else:
            key = draw(st.sampled_from(sorted(tensors)))
            if what == "drop-tensor":
                tensors.pop(key)
            elif what == "nan" and tensors[key].is_floating_point() and tensors[key].numel():
                tensors[key] = tensors[key].clone().flatten().index_fill(0, torch.tensor([0]),
                                                                      float("nan")).reshape(
                    tensors[key].shape)
            else:
                shape = tuple(draw(st.lists(st.integers(0, 6), max_size=3)))
                dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.int64,
                                              torch.bool, torch.uint8, torch.bfloat16]))
                target = key if what == "tensor" else key + ".fuzz"
                tensors[target] = torch.zeros(shape, dtype=dtype)
        if not tensors:
            tensors["x"] = torch.zeros(1)
    return tensors, meta


def _check(tmp_path_factory, name, tensors, meta, damage=None):
    path = tmp_path_factory.mktemp("ck") / name
    save_file(tensors, str(path), metadata=meta)
    if damage is not None:
        data = bytearray(path.read_bytes())
        for offset, byte in damage:
            data[offset % min(len(data), 4096)] = byte
        path.write_bytes(bytes(data))
    loaded = loads_cleanly(LOADERS[name], path)
    if loaded is not None:  # what loads holds finite weights (no silent NaN ranking)
        modules = [m for m in vars(loaded).values() if isinstance(m, torch.nn.Module)]
        if isinstance(loaded, torch.nn.Module):
            modules.append(loaded)
        for module in modules:
            assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_shipped_checkpoints_load(tmp_path_factory, shipped, name):
    assert loads_cleanly(LOADERS[name], assets_dir() / name) is not None


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_mutated_checkpoints_load_or_fail_in_one_line(tmp_path_factory, shipped, name):
    tensors, meta = shipped[name]

    @FUZZ
    @given(mutation(name, tensors, meta))
    def run(case):
        _check(tmp_path_factory, name, *case)

    run()


@pytest.mark.parametrize("name", ["value_net.safetensors", "base_nb201.safetensors"])
def test_checkpoints_with_damaged_headers_fail_in_one_line(tmp_path_factory, shipped, name):
    tensors, meta = shipped[name]

    @FUZZ
    @given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1,
                    max_size=6))
    def run(damage):
        _check(tmp_path_factory, name, tensors, meta, damage)

    run()


def test_a_header_declaring_a_huge_length_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    assert loads_cleanly(LOADERS["value_net.safetensors"], path) is None


def test_a_value_net_declaring_a_huge_hidden_size_is_refused_before_allocation(
        tmp_path_factory, shipped):
    tensors, meta = shipped["value_net.safetensors"]
    config = {**json.loads(meta["config"]), "hidden": 15_000}
    _check(tmp_path_factory, "value_net.safetensors", tensors, {**meta, "config": json.dumps(config)})
