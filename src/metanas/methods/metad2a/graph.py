"""D-VAE style networks over NB201's 8-node ops-as-nodes DAG: a generator and an encoder.

The cell is the DAG of :meth:`NB201Arch.to_dag`: node 0 START, nodes 1..6 the edge ops (type =
op + 2), node 7 END, with a fixed adjacency. Both networks follow D-VAE (Zhang et al., NeurIPS
2019): a node's state is a GRU cell of its type fed with the gated sum of its predecessors'
states, ``sum_u sigmoid(gate(h_u)) * map(h_u)``.

* :class:`GraphDecoder` generates a DAG node by node from a latent vector: the graph state (the
  last node's state) gives the next node's type through an MLP softmax, then each earlier node
  gets an edge to it through a sigmoid MLP of the two states; END is forced as the last node.
  Simplification of D-VAE: the edge MLP sees the new node's provisional state (its type applied
  to the graph state), not a state re-computed after every added edge, so teacher-forced training
  is one batched pass per node.
* :class:`GraphEncoder` is the bidirectional D-VAE encoder (forward pass over predecessors, a
  backward pass over successors), graph embedding = Linear([h_END forward, h_START backward]).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metanas.spaces.nb201 import NB201Arch
from metanas.spaces.nb201.genotype import (
    DAG_END,
    DAG_NUM_NODES,
    DAG_NUM_TYPES,
    DAG_START,
    dag_adjacency,
)

_ADJ = torch.as_tensor(dag_adjacency())


def dag_batch(archs: list[NB201Arch]) -> torch.Tensor:
    """Node types (B, 8) of cells' DAGs (the adjacency is the same for all)."""
    return torch.as_tensor(np.stack([a.to_dag()[0] for a in archs]))


def fixed_adjacency(batch: int) -> torch.Tensor:
    return _ADJ.expand(batch, -1, -1)


def decode_cell(types: np.ndarray, adj: np.ndarray) -> NB201Arch | None:
    """The cell a generated DAG describes, or None when it is not a legal NB201 DAG.

    Legal: START first, six op nodes, END last, and exactly the fixed NB201 edge pattern.
    """
    types = [int(t) for t in types]
    if len(types) != DAG_NUM_NODES or types[0] != DAG_START or types[-1] != DAG_END:
        return None
    if any(not 2 <= t < DAG_NUM_TYPES for t in types[1:-1]):
        return None
    if not np.array_equal(np.asarray(adj, dtype=np.float32), _ADJ.numpy()):
        return None
    return NB201Arch.from_dag(types)


class _Propagate(nn.Module):
    """One direction of D-VAE message passing: gated sums of neighbours into a GRU cell.

    The GRU input is the node type one-hot plus the node's position one-hot (D-VAE's
    ``vid`` option): without it, op nodes with the same type and the same predecessors (e.g.
    the ops on edges 1<-0, 2<-0 and 3<-0 of an all-conv cell) have identical states, and the
    decoder could not tell which of them an edge leaves from.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRUCell(DAG_NUM_TYPES + DAG_NUM_NODES, hidden)
        self.gate = nn.Linear(hidden, hidden)
        self.map = nn.Linear(hidden, hidden, bias=False)

    def message(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate(h)) * self.map(h)

    def step(self, type_onehot: torch.Tensor, position: int,
             incoming: torch.Tensor) -> torch.Tensor:
        pos = type_onehot.new_zeros(len(type_onehot), DAG_NUM_NODES)
        pos[:, position] = 1.0
        return self.gru(torch.cat([type_onehot, pos], 1), incoming)


class GraphDecoder(nn.Module):
    """Latent vector -> node-type logits and edge logits of an 8-node DAG (teacher forced), or
    a generated DAG (:meth:`generate`)."""

    def __init__(self, latent: int = 56, hidden: int = 56) -> None:
        super().__init__()
        self.hidden = hidden
        self.init = nn.Linear(latent, hidden)
        self.prop = _Propagate(hidden)
        self.add_vertex = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.ReLU(),
                                        nn.Linear(2 * hidden, DAG_NUM_TYPES))
        self.add_edge = nn.Sequential(nn.Linear(2 * hidden, 4 * hidden), nn.ReLU(),
                                      nn.Linear(4 * hidden, 1))

    def _start(self, z: torch.Tensor) -> torch.Tensor:
        h0 = torch.tanh(self.init(z))
        start = F.one_hot(torch.full((len(z),), DAG_START), DAG_NUM_TYPES).float()
        return self.prop.step(start, 0, h0)

    def _edge_logits(self, states: list[torch.Tensor], h_new: torch.Tensor) -> torch.Tensor:
        prev = torch.stack(states, 1)  # (B, v, H)
        pair = torch.cat([prev, h_new[:, None].expand_as(prev)], -1)
        return self.add_edge(pair).squeeze(-1)  # (B, v)

    def _node_state(self, v, msgs, onehot, edges, graph_state) -> torch.Tensor:
        incoming = torch.einsum("bi,bih->bh", edges, torch.stack(msgs, 1))
        none = edges.sum(1, keepdim=True) == 0  # no predecessor: continue from the graph state
        incoming = torch.where(none, graph_state, incoming)
        return self.prop.step(onehot, v, incoming)

    def forward(self, z: torch.Tensor, types: torch.Tensor,
                adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: type logits (B, 7, T) for nodes 1..7 and edge logits (B, 8, 8)
        (entry [u, v] for u < v, zeros elsewhere)."""
        b = len(z)
        states = [self._start(z)]
        msgs = [self.prop.message(states[0])]
        type_logits = []
        edge_logits = z.new_zeros(b, DAG_NUM_NODES, DAG_NUM_NODES)
        for v in range(1, DAG_NUM_NODES):
            g = states[-1]
            type_logits.append(self.add_vertex(g))
            onehot = F.one_hot(types[:, v], DAG_NUM_TYPES).float()
            provisional = self.prop.step(onehot, v, g)
            edge_logits[:, :v, v] = self._edge_logits(states, provisional)
            h = self._node_state(v, msgs, onehot, adj[:, :v, v].float(), g)
            states.append(h)
            msgs.append(self.prop.message(h))
        return torch.stack(type_logits, 1), edge_logits

    @torch.no_grad()
    def generate(self, z: torch.Tensor, *, sample: bool = True, temperature: float = 1.0,
                 constrained: bool = True,
                 gen: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Types (B, 8) and adjacency (B, 8, 8) of generated DAGs; END is forced last.

        Node types are drawn from the softmax (``sample``) or taken by argmax. ``constrained``
        (search): NB201's structure is fixed, so op nodes may only take op types and the edges
        are the fixed pattern; every draw is then a legal cell. Unconstrained (to measure what
        the decoder learned): any type at any position, an edge wherever its probability
        exceeds 0.5, and :func:`decode_cell` decides validity.
        """
        b = len(z)
        states = [self._start(z)]
        msgs = [self.prop.message(states[0])]
        types = torch.zeros(b, DAG_NUM_NODES, dtype=torch.long)
        types[:, 0] = DAG_START
        adj = torch.zeros(b, DAG_NUM_NODES, DAG_NUM_NODES)
        fixed = fixed_adjacency(b)
        for v in range(1, DAG_NUM_NODES):
            g = states[-1]
            if v == DAG_NUM_NODES - 1:
                t = torch.full((b,), DAG_END)
            else:
                logits = self.add_vertex(g)
                if constrained:
                    logits[:, [DAG_START, DAG_END]] = -torch.inf
                if sample:
                    probs = torch.softmax(logits / max(temperature, 1e-6), -1)
                    t = torch.multinomial(probs, 1, generator=gen).squeeze(1)
                else:
                    t = logits.argmax(-1)
            types[:, v] = t
            onehot = F.one_hot(t, DAG_NUM_TYPES).float()
            if constrained:
                edges = fixed[:, :v, v]
            else:
                provisional = self.prop.step(onehot, v, g)
                edges = (torch.sigmoid(self._edge_logits(states, provisional)) > 0.5).float()
            adj[:, :v, v] = edges
            h = self._node_state(v, msgs, onehot, edges, g)
            states.append(h)
            msgs.append(self.prop.message(h))
        return types.numpy(), adj.numpy()


class GraphEncoder(nn.Module):
    """Bidirectional D-VAE encoder: DAG (types, adjacency) -> embedding (B, out)."""

    def __init__(self, hidden: int = 128, out: int = 56) -> None:
        super().__init__()
        self.fwd = _Propagate(hidden)
        self.bwd = _Propagate(hidden)
        self.out = nn.Linear(2 * hidden, out)
        self.hidden = hidden

    def _pass(self, prop: _Propagate, onehots: torch.Tensor, adj: torch.Tensor,
              order: list[int]) -> torch.Tensor:
        """States in ``order``; node v sums the messages of the nodes before it in the order
        weighted by ``adj[:, u, v]`` (zero for a source node)."""
        b = len(onehots)
        msgs: list[torch.Tensor] = []
        h = onehots.new_zeros(b, self.hidden)
        for i, v in enumerate(order):
            if i == 0:
                incoming = onehots.new_zeros(b, self.hidden)
            else:
                weights = adj[:, order[:i], v]  # (B, i)
                incoming = torch.einsum("bi,bih->bh", weights, torch.stack(msgs, 1))
            h = prop.step(onehots[:, v], v, incoming)
            msgs.append(prop.message(h))
        return h

    def forward(self, types: torch.Tensor, adj: torch.Tensor | None = None) -> torch.Tensor:
        adj = fixed_adjacency(len(types)) if adj is None else adj
        onehots = F.one_hot(types, DAG_NUM_TYPES).float()
        n = types.shape[1]
        h_f = self._pass(self.fwd, onehots, adj, list(range(n)))
        h_b = self._pass(self.bwd, onehots, adj.transpose(1, 2), list(range(n - 1, -1, -1)))
        return self.out(torch.cat([h_f, h_b], -1))
