"""Drawing cells from the generator, and measuring it: validity, uniqueness, novelty and
reconstruction of held-out tasks' good cells."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch

from metanas.methods.metad2a.graph import dag_batch, decode_cell, fixed_adjacency
from metanas.methods.metad2a.models import Generator
from metanas.methods.metad2a.set_encoder import pad_sets
from metanas.spaces.nb201 import NB201Arch


@torch.no_grad()
def latents(model: Generator, sets: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) of each image set's dataset encoding."""
    model.eval()
    mu, logvar = model.encode(*pad_sets(sets))
    return mu, torch.exp(0.5 * logvar)


@torch.no_grad()
def draw(model: Generator, mu: torch.Tensor, sigma: torch.Tensor, count: int, *,
         gen: torch.Generator, sample: bool = True, temperature: float = 1.0,
         z_scale: float = 0.0, constrained: bool = True) -> list[NB201Arch | None]:
    """``count`` generated DAGs decoded to cells (None = not a legal NB201 DAG), cycling
    through the latent means; ``z_scale`` > 0 adds ``z_scale * eps * sigma``."""
    rows = torch.arange(count) % len(mu)
    z = mu[rows]
    if z_scale > 0:
        z = z + z_scale * torch.randn(z.shape, generator=gen) * sigma[rows]
    types, adj = model.decoder.generate(z, sample=sample, temperature=temperature,
                                        constrained=constrained, gen=gen)
    return [decode_cell(t, a) for t, a in zip(types, adj, strict=True)]


def generate_cells(model: Generator, sets: list[list[torch.Tensor]], n: int, *,
                   gen: torch.Generator, temperature: float = 1.0, z_scale: float = 0.0,
                   constrained: bool = True,
                   max_rounds: int = 20) -> tuple[list[NB201Arch], dict[str, Any]]:
    """Up to ``n`` unique (by canonical form), valid, connected cells, generated in rounds of
    ``max(n, 64)`` until enough or ``max_rounds`` rounds drew nothing new."""
    mu, sigma = latents(model, sets)
    out: list[NB201Arch] = []
    seen: set[str] = set()
    drawn = valid = disconnected = 0
    stale = 0
    batch = max(n, 64)
    while len(out) < n and stale < max_rounds:
        before = len(out)
        for arch in draw(model, mu, sigma, batch, gen=gen, temperature=temperature,
                         z_scale=z_scale, constrained=constrained):
            drawn += 1
            if arch is None:
                continue
            valid += 1
            if not arch.is_connected:
                disconnected += 1
                continue
            if arch.canonical_form not in seen:
                seen.add(arch.canonical_form)
                out.append(arch)
                if len(out) >= n:
                    break
        stale = stale + 1 if len(out) == before else 0
    stats = {"drawn": drawn, "valid": valid, "disconnected": disconnected,
             "unique": len(out), "validity": valid / max(drawn, 1)}
    return out, stats


@torch.no_grad()
def generator_metrics(model: Generator, data, ids, train_ids, config, *, samples: int = 500,
                      seed: int = 0) -> dict[str, Any]:
    """Validity, uniqueness and novelty of ``samples`` draws per task in ``ids``, and how well
    the generator reconstructs those tasks' top-k cells from their dataset encodings.

    * validity: legal NB201 DAGs / draws of the *unconstrained* decoder (any node type
      anywhere, its own edges; search constrains both, so every search draw is legal);
      uniqueness: distinct canonical forms / draws, novelty: distinct cells not among the
      training targets / distinct cells, both of constrained (search-time) draws;
    * node accuracy: teacher-forced argmax type of each op node equals the target's, with
      z = mu (chance 0.2); ``hit@1``: the greedy (argmax) cell from mu is one of the task's
      top-k cells; ``recall@samples``: fraction of a task's top-k cells among its draws.
      Baseline for both: always proposing the most frequent training targets.
    """
    from metanas.methods.metad2a.data import sample_sets
    from metanas.methods.metad2a.training import top_k_targets

    gen = torch.Generator().manual_seed(seed)
    train_targets = top_k_targets(data, train_ids, config.gen_top_k)
    train_forms = {a.canonical_form for _, a in train_targets}
    freq = Counter(a.canonical_form for _, a in train_targets)
    drawn = valid = 0
    distinct_total = novel_total = 0
    node_correct = node_total = 0
    hits = base_hits = 0
    recall, base_recall = [], []
    for t in ids:
        sets = sample_sets(data.pools[t], config.images_per_class, 1, gen)
        mu, sigma = latents(model, sets)
        free = draw(model, mu, sigma, samples, gen=gen, constrained=False)
        drawn += len(free)
        valid += sum(c is not None for c in free)
        good = draw(model, mu, sigma, samples, gen=gen)
        forms = {c.canonical_form for c in good}
        distinct_total += len(forms)
        novel_total += len(forms - train_forms)
        targets = [a for _, a in top_k_targets(data, [t], config.gen_top_k)]
        target_forms = {a.canonical_form for a in targets}
        types = dag_batch(targets)
        logits, _ = model.decoder(mu.expand(len(targets), -1), types,
                                  fixed_adjacency(len(targets)))
        node_correct += int((logits[:, :-1].argmax(-1) == types[:, 1:-1]).sum())
        node_total += types[:, 1:-1].numel()
        greedy = draw(model, mu, sigma, 1, gen=gen, sample=False)[0]
        hits += int(greedy.canonical_form in target_forms)
        top_forms = [f for f, _ in freq.most_common(len(forms) or 1)]
        base_hits += int(freq.most_common(1)[0][0] in target_forms)
        recall.append(len(target_forms & forms) / len(target_forms))
        base_recall.append(len(target_forms & set(top_forms)) / len(target_forms))
    n = len(ids)
    return {
        "tasks": n, "samples_per_task": samples,
        "validity": valid / max(drawn, 1),
        "uniqueness": distinct_total / max(n * samples, 1),
        "novelty": novel_total / max(distinct_total, 1),
        "distinct_per_task": distinct_total / max(n, 1),
        "node_accuracy": node_correct / max(node_total, 1),
        "hit_at_1": hits / max(n, 1),
        "hit_at_1_baseline": base_hits / max(n, 1),
        f"recall_at_{samples}": float(np.mean(recall)) if recall else float("nan"),
        "recall_baseline_same_count": float(np.mean(base_recall)) if base_recall else float("nan"),
    }
