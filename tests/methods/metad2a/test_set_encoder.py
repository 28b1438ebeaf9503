from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from metanas.methods.metad2a.set_encoder import DatasetEncoder, pad_sets


@pytest.mark.parametrize("block", ["sab", "isab"])
def test_embedding_ignores_image_and_class_order(block):
    torch.manual_seed(0)
    enc = DatasetEncoder(8, hidden=16, out=16, heads=2, block=block, inducing=4).eval()
    feats = torch.randn(1, 5, 7, 8)
    base = enc(feats)
    g = torch.Generator().manual_seed(1)
    shuffled = feats[:, torch.randperm(5, generator=g)]  # classes
    shuffled = torch.stack([c[torch.randperm(7, generator=g)] for c in shuffled[0]])[None]
    with torch.no_grad():
        torch.testing.assert_close(enc(shuffled), base, atol=1e-5, rtol=1e-5)
    # a different image set gives a different embedding (the encoder is not constant)
    assert (enc(feats + 1.0) - base).abs().max() > 1e-3


def test_variable_set_sizes_match_unpadded_encoding():
    torch.manual_seed(0)
    enc = DatasetEncoder(8, hidden=16, out=16, heads=2).eval()
    a = [torch.randn(n, 8) for n in (3, 9, 5)]  # 3 classes of different sizes
    b = [torch.randn(n, 8) for n in (4, 4, 4, 4, 2, 6)]  # 6 classes
    feats, image_mask, class_mask = pad_sets([a, b])
    assert feats.shape == (2, 6, 9, 8)
    with torch.no_grad():
        batched = enc(feats, image_mask, class_mask)
        for i, s in enumerate((a, b)):
            alone = enc(*pad_sets([s]))
            torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=1e-5)
        # one image per class and two classes work too
        tiny = enc(*pad_sets([[torch.randn(1, 8), torch.randn(1, 8)]]))
    assert tiny.shape == (1, 16) and torch.isfinite(tiny).all()


def test_a_mask_that_masks_nothing_is_no_mask():
    """Sets without padding take the unmasked attention (the same numbers): PyTorch's masked
    path imports sympy on first use, 0.4-0.8 s of a first search."""
    torch.manual_seed(0)
    enc = DatasetEncoder(8, hidden=16, out=16, heads=2).eval()
    feats, image_mask, class_mask = pad_sets([[torch.randn(4, 8) for _ in range(3)]])
    assert bool(image_mask.all()) and bool(class_mask.all())
    with torch.no_grad():
        torch.testing.assert_close(enc(feats, image_mask, class_mask), enc(feats),
                                   atol=1e-6, rtol=1e-6)


def test_a_first_search_does_not_import_sympy():
    """The search itself must not import sympy (whatever importing PyTorch already did)."""
    code = ("import sys, metanas; before = 'sympy' in sys.modules; "
            "metanas.search('digits', method='metad2a', top=3); "
            "print(before, 'sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split()[-2:]
    assert after == before, "the search imported sympy"
