"""Task-aware value network (Kokiopoulou et al., "Fast Task-Aware Architecture Inference").

A predictor f(task meta-features, architecture) of how well an architecture does on a task,
trained jointly over the knowledge base's tasks. The architecture enters as a continuous vector
(per-edge op probabilities, 6x5): one-hot when training, a softmax over free logits at search time,
so a new task is searched by gradient ascent on the logits with the network frozen (several
restarts, then argmax per edge). NB201 has only 15,625 cells, so exhaustive scoring is also
offered, both as a mode and as a check of the gradient search.

Choices made here (the paper leaves them open):

* target: per-task z-score of validation accuracy by default (``target="zscore"``). Ranking
  within a task is what search needs; the z-score removes task difficulty, which the meta-
  features would otherwise have to explain first. ``target="raw"`` predicts accuracy itself.
* loss: ``mse`` (paper), ``rank`` (pairwise logistic loss over pairs of the same task, from the
  follow-up "Ranking architectures using meta-learning") or ``mse+rank``.
* features with (near) zero variance over the knowledge base carry no information and would
  extrapolate arbitrarily, so they are masked out and the mask is stored in the checkpoint.
* candidates are deduplicated by functional equivalence (canonical form) and cells whose output
  does not depend on the input are never proposed.
* fidelity-aware (``fidelity_features=True``): the knowledge base mixes 12-epoch CPU proxies of
  a C=8, N=1 network with published 200-epoch trainings of the full NB201 network. Each
  evaluation's fidelity (:func:`metanas.kb.views.fidelity_of`) enters as three more task-side
  inputs (log2 epochs, log2 C, log2 N; resolution and images per class are already
  meta-features). A search ranks for a target fidelity: ``"full"`` (a full NB201 training),
  ``"proxy"`` (the knowledge base's own CPU proxy), ``"mix"``, or ``"auto"`` (default): full
  where one meta-training task measured at least half of the space at a full training (the
  shipped checkpoint saw the ImageNet16-120 table), else proxy. Measured on the
  leave-ImageNet16-120-out protocol (docs/value_net.md), ``full`` is worse there (45.4 vs 46.6
  top-1 after re-ranking): with the table left out, full trainings cover only good cells
  (MetaD2A's), so at full fidelity the network extrapolates over the bad ones. With the table
  in, the proxy ranking carries KB v1's bias to unseen datasets (skip-heavy cells that rank
  59-78th percentile in the table were the shipped picks on CIFAR-10 and MNIST) and the full
  ranking does not: ``auto`` lifted the bench's picks from below random cells' median on 3 of
  4 datasets to 1 (docs/bench.md, seventh run).
* re-rank (``rerank="nwot"``, default): the ``shortlist`` (5) best cells are re-ordered by a
  rank vote of the network and zero-cost proxies computed on the target's own images (C=8,
  N=1 network, at most 16 px; :mod:`metanas.features.zero_cost`); candidates past the
  shortlist follow in the network's order. nwot alone (one forward pass per cell) ranks as
  well as nwot + zico on the leave-ImageNet16-120-out protocol (46.8 vs 46.6 top-1) at a
  quarter of the cost. ``rerank=""`` turns it off.
* tasks with fewer than 3 evaluated cells cannot be z-scored (MetaD2A's database has 2,696 such
  tasks of 1-2 records): with ``pool_small_tasks`` those of one source are pooled into one task
  (per cell the mean accuracy over them, features averaged), since they are draws of one kind
  of task (20-way ImageNet-32); otherwise they are dropped.
"""

from metanas.methods.value_net.data import (
    FIDELITY_NAMES,
    TrainingData,
    fidelity_vector,
    load_training_data,
    published_top_cells,
    task_subset,
)
from metanas.methods.value_net.method import CHECKPOINT_FORMAT, FEATURE_CLIP, ValueNetMethod
from metanas.methods.value_net.model import ValueNetConfig, ValueNetwork
from metanas.methods.value_net.validation import cross_validate

__all__ = [
    "CHECKPOINT_FORMAT", "FEATURE_CLIP", "FIDELITY_NAMES", "TrainingData", "ValueNetConfig",
    "ValueNetMethod", "ValueNetwork", "cross_validate", "fidelity_vector", "load_training_data",
    "published_top_cells", "task_subset",
]
