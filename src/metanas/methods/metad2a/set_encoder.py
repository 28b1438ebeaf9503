"""Set Transformer blocks and MetaD2A's two-level dataset encoder.

A dataset is a set of classes, a class a set of images; its embedding must not depend on the
order of either. Following Lee et al. (Set Transformer, ICML 2019): MAB(X, Y) = attention of X
over Y with a residual and a row-wise feed-forward layer; SAB(X) = MAB(X, X); ISAB(X) =
MAB(X, MAB(I, X)) with m learned inducing points (linear in the set size); PMA(X) = MAB(S, X)
with k learned seeds (pooling). ``SetPool`` = block -> block -> PMA(1) -> Linear, as in MetaD2A.
Sets of different sizes are batched with padding masks (``True`` = real element).
"""

from __future__ import annotations

import torch
from torch import nn


class MAB(nn.Module):
    """Multihead attention block: ``H = X + Att(X, Y, Y)``; ``out = H + relu(Linear(H))``."""

    def __init__(self, dim_q: int, dim_k: int, hidden: int, heads: int, ln: bool = False) -> None:
        super().__init__()
        self.proj_q = nn.Linear(dim_q, hidden)
        self.att = nn.MultiheadAttention(hidden, heads, kdim=dim_k, vdim=dim_k, batch_first=True)
        self.ff = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden) if ln else nn.Identity()
        self.ln2 = nn.LayerNorm(hidden) if ln else nn.Identity()

    def forward(self, x: torch.Tensor, y: torch.Tensor,
                y_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.proj_q(x)
        # a mask that masks nothing is passed as none: the same attention, and a masked call
        # makes PyTorch (2.13) import sympy for its shape checks, 0.4-0.8 s the first time
        pad = None if y_mask is None or bool(y_mask.all()) else ~y_mask
        h, _ = self.att(q, y, y, key_padding_mask=pad, need_weights=False)
        h = self.ln1(q + h)
        return self.ln2(h + torch.relu(self.ff(h)))


class SAB(nn.Module):
    """Self-attention block (permutation equivariant)."""

    def __init__(self, dim_in: int, hidden: int, heads: int, ln: bool = False) -> None:
        super().__init__()
        self.mab = MAB(dim_in, dim_in, hidden, heads, ln)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(x, x, mask)


class ISAB(nn.Module):
    """Induced self-attention block: attention through ``inducing`` learned points."""

    def __init__(self, dim_in: int, hidden: int, heads: int, inducing: int = 16,
                 ln: bool = False) -> None:
        super().__init__()
        self.points = nn.Parameter(torch.empty(1, inducing, hidden))
        nn.init.xavier_uniform_(self.points)
        self.mab_i = MAB(hidden, dim_in, hidden, heads, ln)
        self.mab_x = MAB(dim_in, hidden, hidden, heads, ln)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.mab_i(self.points.expand(len(x), -1, -1), x, mask)
        return self.mab_x(x, h)


class PMA(nn.Module):
    """Pooling by multihead attention over ``seeds`` learned queries (permutation invariant)."""

    def __init__(self, hidden: int, heads: int, seeds: int = 1, ln: bool = False) -> None:
        super().__init__()
        self.seeds = nn.Parameter(torch.empty(1, seeds, hidden))
        nn.init.xavier_uniform_(self.seeds)
        self.mab = MAB(hidden, hidden, hidden, heads, ln)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(self.seeds.expand(len(x), -1, -1), x, mask)


class SetPool(nn.Module):
    """A set of vectors -> one vector: two SAB (or ISAB) blocks, PMA(1), Linear."""

    def __init__(self, dim_in: int, hidden: int = 56, out: int = 56, heads: int = 4,
                 block: str = "sab", inducing: int = 16, ln: bool = False) -> None:
        super().__init__()

        def make(d: int) -> nn.Module:
            if block == "isab":
                return ISAB(d, hidden, heads, inducing, ln)
            return SAB(d, hidden, heads, ln)

        self.block1 = make(dim_in)
        self.block2 = make(hidden)
        self.pool = PMA(hidden, heads, 1, ln)
        self.out = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.block2(self.block1(x, mask), mask)
        return self.out(self.pool(h, mask).squeeze(1))


class DatasetEncoder(nn.Module):
    """Image features of a dataset -> one embedding, through class prototypes.

    Input ``feats`` (B, K, n, D): B datasets, up to K classes, up to n images per class;
    ``image_mask`` (B, K, n) and ``class_mask`` (B, K) mark real entries (None = all real).
    Intra-class pooling maps each class's images to a prototype, inter-class pooling maps the
    prototypes to the dataset embedding (B, out).

    Features are first standardized per dimension with statistics of the meta-training images
    (buffers, so they travel with the weights): an extractor's raw features can have tiny
    spread (a random-weight CNN's vary by ~1e-3), and attention over near-identical inputs
    left the predictor stuck on a task-independent solution for a long time.
    """

    def __init__(self, dim_in: int, hidden: int = 56, out: int = 56, heads: int = 4,
                 block: str = "sab", inducing: int = 16, ln: bool = False) -> None:
        super().__init__()
        self.register_buffer("feat_mean", torch.zeros(dim_in))
        self.register_buffer("feat_std", torch.ones(dim_in))
        self.intra = SetPool(dim_in, hidden, hidden, heads, block, inducing, ln)
        self.inter = SetPool(hidden, hidden, out, heads, block, inducing, ln)
        self.dim_out = out

    @torch.no_grad()
    def set_feature_stats(self, feats: torch.Tensor) -> None:
        """Standardize inputs with the mean and std of ``feats`` (N, D)."""
        self.feat_mean.copy_(feats.mean(0))
        self.feat_std.copy_(feats.std(0).clamp_min(1e-6) if len(feats) > 1 else 1.0)

    def forward(self, feats: torch.Tensor, image_mask: torch.Tensor | None = None,
                class_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, k, n, d = feats.shape
        feats = (feats - self.feat_mean) / self.feat_std
        if image_mask is not None and class_mask is not None:
            # a padding class has no real image; let it attend to its (zero) padding so the
            # attention is defined, the inter-class mask then ignores its prototype
            image_mask = image_mask | ~class_mask[..., None]
        flat_mask = None if image_mask is None else image_mask.reshape(b * k, n)
        protos = self.intra(feats.reshape(b * k, n, d), flat_mask).reshape(b, k, -1)
        return self.inter(protos, class_mask)


def pad_sets(sets: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Datasets as lists of per-class (n_c, D) feature tensors -> padded batch and masks."""
    b = len(sets)
    k = max(len(s) for s in sets)
    n = max(len(c) for s in sets for c in s)
    d = sets[0][0].shape[1]
    feats = torch.zeros(b, k, n, d)
    image_mask = torch.zeros(b, k, n, dtype=torch.bool)
    class_mask = torch.zeros(b, k, dtype=torch.bool)
    for i, s in enumerate(sets):
        for j, c in enumerate(s):
            feats[i, j, : len(c)] = c
            image_mask[i, j, : len(c)] = True
            class_mask[i, j] = True
    return feats, image_mask, class_mask
