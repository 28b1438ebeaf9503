from __future__ import annotations

import numpy as np
import torch

from metanas.methods.metad2a.graph import (
    GraphDecoder,
    GraphEncoder,
    dag_batch,
    decode_cell,
    fixed_adjacency,
)
from metanas.methods.metad2a.models import Generator
from metanas.methods.metad2a.set_encoder import pad_sets
from metanas.spaces.nb201 import NB201Arch
from metanas.spaces.nb201.genotype import DAG_END, dag_adjacency


def test_constrained_decoder_always_yields_valid_cells():
    torch.manual_seed(0)
    dec = GraphDecoder(latent=8, hidden=16).eval()
    z = torch.randn(300, 8) * 3
    gen = torch.Generator().manual_seed(0)
    types, adj = dec.generate(z, gen=gen)
    assert (types[:, -1] == DAG_END).all()  # END forced last
    for t, a in zip(types, adj, strict=True):
        cell = decode_cell(t, a)
        assert cell is not None
        again_types, again_adj = cell.to_dag()
        assert np.array_equal(again_types, t) and np.array_equal(again_adj, a)
        assert NB201Arch.from_dag(again_types) == cell
    # sampling explores: an untrained decoder proposes many different cells
    assert len({tuple(t) for t in types}) > 100


def test_decode_cell_rejects_illegal_graphs():
    arch = NB201Arch.sample(3)
    types, adj = arch.to_dag()
    assert decode_cell(types, adj) == arch
    bad = types.copy()
    bad[3] = DAG_END  # END in the middle
    assert decode_cell(bad, adj) is None
    missing = adj.copy()
    missing[0, 1] = 0  # the fixed edge pattern is broken
    assert decode_cell(types, missing) is None
    assert decode_cell(types[:-1], adj[:-1, :-1]) is None


def test_graph_encoder_tells_cells_apart():
    torch.manual_seed(0)
    enc = GraphEncoder(hidden=16, out=8).eval()
    archs = [NB201Arch.sample(i) for i in range(50)]
    with torch.no_grad():
        emb = enc(dag_batch(archs))
        again = enc(dag_batch(archs), fixed_adjacency(len(archs)))
    torch.testing.assert_close(emb, again)
    distinct = {tuple(np.round(e.numpy(), 5)) for e in emb}
    assert len(distinct) == len(set(archs))
    assert np.array_equal(dag_adjacency(), fixed_adjacency(1)[0].numpy())


def test_tiny_generator_reconstructs_its_targets():
    """Two kinds of dataset, each paired with its own target cell: after training, the greedy
    decode of each kind's encoding is its target and node types are far above chance."""
    torch.manual_seed(0)
    targets = [NB201Arch.from_ops(["nor_conv_3x3"] * 6),
               NB201Arch.from_ops(["avg_pool_3x3", "skip_connect", "nor_conv_1x1"] * 2)]
    model = Generator(4, hidden=16, latent=8, graph_hidden=16, heads=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def batch(kinds):
        sets = [[torch.randn(4, 4, generator=gen) + 2.0 * k for _ in range(3)] for k in kinds]
        return pad_sets(sets)

    for _ in range(150):
        kinds = torch.randint(0, 2, (16,), generator=gen)
        types = dag_batch([targets[k] for k in kinds])
        loss, _ = model.loss(*batch(kinds), types, fixed_adjacency(16), gen=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    kinds = torch.tensor([0, 1] * 10)
    with torch.no_grad():
        mu, _ = model.encode(*batch(kinds))
        types, adj = model.decoder.generate(mu, sample=False)
        logits, _ = model.decoder(mu, dag_batch([targets[k] for k in kinds]),
                                  fixed_adjacency(len(kinds)))
    cells = [decode_cell(t, a) for t, a in zip(types, adj, strict=True)]
    assert all(c == targets[k] for c, k in zip(cells, kinds.tolist(), strict=True))
    true = dag_batch([targets[k] for k in kinds])[:, 1:-1]
    assert (logits[:, :-1].argmax(-1) == true).float().mean() > 0.9  # chance: 0.2
    # the unconstrained decoder learned the fixed edge pattern and legal types too
    free_types, free_adj = model.decoder.generate(mu, sample=False, constrained=False)
    assert all(decode_cell(t, a) is not None for t, a in zip(free_types, free_adj, strict=True))
