"""MetaD2A's two networks: the set-to-graph generator (a VAE) and the meta-performance predictor.

* :class:`Generator`: dataset embedding (two-level set encoder) -> (mu, logvar) through one
  Linear each -> D-VAE decoder. Training uses ``z = mu + noise * eps * sigma`` (MetaD2A's 0.01);
  generation uses ``z = mu`` (optionally ``mu + scale * eps * sigma`` for diversity) and samples
  node types from the decoder's softmax. Loss: node-type cross-entropy + edge BCE (summed per
  graph) + ``beta`` * KL.
* :class:`Predictor`: its own dataset encoder + a bidirectional D-VAE graph encoder, the two
  embeddings concatenated -> Linear(512) -> Tanh -> Linear(1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metanas.methods.metad2a.graph import GraphDecoder, GraphEncoder
from metanas.methods.metad2a.set_encoder import DatasetEncoder
from metanas.spaces.nb201.genotype import DAG_NUM_NODES


class Generator(nn.Module):
    def __init__(self, feature_dim: int, *, hidden: int = 56, latent: int = 56,
                 graph_hidden: int = 56, heads: int = 4, block: str = "sab",
                 inducing: int = 16, ln: bool = False) -> None:
        super().__init__()
        self.encoder = DatasetEncoder(feature_dim, hidden, hidden, heads, block, inducing, ln)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.decoder = GraphDecoder(latent, graph_hidden)

    def encode(self, feats, image_mask=None, class_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder(feats, image_mask, class_mask)
        return self.fc_mu(e), self.fc_logvar(e)

    def loss(self, feats, image_mask, class_mask, types: torch.Tensor, adj: torch.Tensor, *,
             beta: float = 0.005, noise: float = 0.01,
             gen: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch of (type CE + edge BCE, summed over the graph) + beta * KL."""
        mu, logvar = self.encode(feats, image_mask, class_mask)
        eps = torch.randn(mu.shape, generator=gen)
        z = mu + noise * eps * torch.exp(0.5 * logvar)
        type_logits, edge_logits = self.decoder(z, types, adj)
        # node 7 (END) is forced at generation, so only the six op nodes' types are learned
        ce = F.cross_entropy(type_logits[:, :-1].reshape(-1, type_logits.shape[-1]),
                             types[:, 1:-1].reshape(-1), reduction="sum")
        upper = torch.triu(torch.ones(DAG_NUM_NODES, DAG_NUM_NODES, dtype=torch.bool), 1)
        bce = F.binary_cross_entropy_with_logits(edge_logits[:, upper], adj[:, upper].float(),
                                                 reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        b = len(types)
        total = (ce + bce + beta * kl) / b
        return total, {"type_ce": ce.item() / b, "edge_bce": bce.item() / b, "kl": kl.item() / b}


class Predictor(nn.Module):
    def __init__(self, feature_dim: int, *, hidden: int = 56, graph_hidden: int = 128,
                 graph_out: int = 56, head: int = 512, heads: int = 4, block: str = "sab",
                 inducing: int = 16, ln: bool = False, task_aware: bool = True) -> None:
        super().__init__()
        self.task_aware = task_aware
        self.encoder = DatasetEncoder(feature_dim, hidden, hidden, heads, block, inducing, ln)
        self.graph = GraphEncoder(graph_hidden, graph_out)
        self.head = nn.Sequential(nn.Linear(hidden + graph_out, head), nn.Tanh(),
                                  nn.Linear(head, 1))

    def embed_data(self, feats, image_mask=None, class_mask=None) -> torch.Tensor:
        """Dataset embedding; zeros for the task-agnostic control (``task_aware=False``)."""
        e = self.encoder(feats, image_mask, class_mask)
        return e if self.task_aware else torch.zeros_like(e)

    def score(self, data_emb: torch.Tensor, graph_emb: torch.Tensor) -> torch.Tensor:
        """All pairs: (M, d) dataset embeddings x (N, g) graph embeddings -> (M, N).

        The first head layer is linear in the concatenation, so it is split into a dataset
        part and a graph part computed once each: M x N pairs cost one tanh and one dot
        product each instead of a 112 x 512 matrix product.
        """
        first, last = self.head[0], self.head[2]
        d = data_emb.shape[1]
        a = data_emb @ first.weight[:, :d].T + first.bias  # (M, head)
        b = graph_emb @ first.weight[:, d:].T  # (N, head)
        out = []
        for row in a:  # one dataset encoding at a time bounds the memory to N x head
            out.append(torch.tanh(b + row) @ last.weight[0] + last.bias[0])
        return torch.stack(out)

    def forward(self, data_emb: torch.Tensor, graph_emb: torch.Tensor) -> torch.Tensor:
        """Row-aligned pairs: (R, d) x (R, g) -> (R,)."""
        return self.head(torch.cat([data_emb, graph_emb], -1)).squeeze(-1)
