"""A saved model loads back to identical logits and reproduces its test accuracy from raw
images; foreign, truncated, newer or inconsistent files are refused with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metanas import api
from metanas.data import load_dataset
from metanas.errors import CheckpointError, DatasetError
from metanas.training.saved import MODEL_FORMAT, load_model

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.safetensors"
    data = load_dataset("digits")
    result, net = api.train(data, ARCH, recipe="cpu-tiny", seed=0, return_model=True,
                            save_to=path)
    return path, data, result, net


def test_round_trip_gives_identical_logits_and_the_reported_accuracy(saved):
    path, data, result, net = saved
    model = load_model(path)
    assert not model.training and model.card.arch == ARCH
    assert model.card.class_names == tuple(str(i) for i in range(10))
    x = model.preprocess(data.x_test[:32])
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)
    res = api.predict(path, _npz(path.parent / "test.npz", data), top=3)
    assert res["accuracy"] == pytest.approx(result.test_acc, abs=1e-12)
    assert res["images"] == len(data.y_test) and res["top"] == 3
    probs = res["predictions"][0]["probabilities"]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert result.test_acc > 0.3  # a trained network beats chance (0.1)


def _npz(path, data):
    np.savez(path, x_test=data.x_test, y_test=data.y_test)
    return path


def test_image_files_and_folders(saved, tmp_path):
    from PIL import Image

    path, data, _result, _net = saved
    for i in range(4):
        folder = tmp_path / str(int(data.y_test[i]))
        folder.mkdir(exist_ok=True)
        Image.fromarray(data.x_test[i][..., 0]).save(folder / f"{i}.png")
    res = api.predict(path, tmp_path, top=1)
    direct = load_model(path).predict(data.x_test[:4])
    by_file = {p["file"]: p["classes"][0] for p in res["predictions"]}
    for i in range(4):
        assert by_file[str(tmp_path / str(int(data.y_test[i])) / f"{i}.png")] == \
            direct["names"][i][0]
    assert "accuracy" in res


def test_bad_files_are_refused(saved, tmp_path):
    path, _data, _result, _net = saved
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    for name, match in (("cut.safetensors", "not a readable"),
                        ("junk.safetensors", "not a readable"),
                        ("missing.safetensors", "does not exist")):
        with pytest.raises(CheckpointError, match=match):
            load_model(tmp_path / name)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        meta = fh.metadata()
    save_file(tensors, str(tmp_path / "newer.safetensors"),
              metadata={**meta, "format": "metanas.nb201-model/3"})
    with pytest.raises(CheckpointError, match="upgrade"):
        load_model(tmp_path / "newer.safetensors")
    save_file(tensors, str(tmp_path / "foreign.safetensors"), metadata={"format": "other/1"})
    with pytest.raises(CheckpointError, match="not a metanas model"):
        load_model(tmp_path / "foreign.safetensors")
    card = json.loads(meta["card"])
    card["num_classes"] = 10**9
    save_file(tensors, str(tmp_path / "huge.safetensors"),
              metadata={**meta, "card": json.dumps(card)})
    with pytest.raises(CheckpointError, match="limits"):
        load_model(tmp_path / "huge.safetensors")
    assert meta["format"] == MODEL_FORMAT
    with pytest.raises(DatasetError, match="channels"):
        load_model(path).predict(np.zeros((2, 8, 8, 2), np.uint8))


def test_cli_train_save_predict(tmp_path):
    from typer.testing import CliRunner

    from metanas.cli import app

    runner = CliRunner()
    model = tmp_path / "m.safetensors"
    res = runner.invoke(app, ["train", "-d", "digits", "--arch", ARCH, "--recipe", "cpu-tiny",
                              "--save-model", str(model)])
    assert res.exit_code == 0, res.output
    data = load_dataset("digits")
    npz = _npz(tmp_path / "t.npz", data)
    res = runner.invoke(app, ["predict", "--model", str(model), "--images", str(npz),
                              "--top", "2", "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    assert "top-1 accuracy" in res.output
    assert json.loads((tmp_path / "p.json").read_text())["images"] == len(data.y_test)
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"), "--images",
                              str(npz)])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_export_matches_pytorch(saved, tmp_path):
    path, _data, _result, _net = saved
    report = api.export_model(path, torchscript=tmp_path / "m.pt")
    assert report["torchscript"]["max_abs_diff"] < 1e-4
    onnx = pytest.importorskip("onnx")
    report = api.export_model(path, onnx=tmp_path / "m.onnx")
    assert report["onnx"]["checked_with"] in ("onnxruntime", "onnx.checker")
    if report["onnx"]["checked_with"] == "onnxruntime":
        assert report["onnx"]["max_abs_diff"] < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["metanas.card"])["arch"] == ARCH
    with pytest.raises(Exception, match="--onnx"):
        api.export_model(path)
