"""The value-net search method: meta-training, search (gradient ascent or exhaustive,
then the re-rank) and its safe checkpoint."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metanas.data import ImageDataset
from metanas.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    first_line,
)
from metanas.features.metafeatures import FEATURE_NAMES, compute_meta_features, feature_vector
from metanas.features.zero_cost import (
    check_proxies,
)
from metanas.kb.views import (
    FULL_TRAINING,
)
from metanas.methods.checkpoints import check_shapes, meta_json, read_checkpoint, write_checkpoint
from metanas.methods.interface import (
    Budget,
    Candidate,
    MetaLearnedMethod,
    SearchResult,
    config_from_options,
)
from metanas.methods.options import ValueNetOptions
from metanas.methods.rerank import rerank_shortlist, zero_cost_config
from metanas.methods.value_net.budget import budget_rank, cheap_cells
from metanas.methods.value_net.data import (
    FIDELITY_NAMES,
    TrainingData,
    _excluded,
    fidelity_vector,
    grouped_tasks,
    load_training_data,
    published_top_cells,
)
from metanas.methods.value_net.model import (
    ValueEnsemble,
    ValueNetConfig,
    ValueNetwork,
    _all_one_hots,
    _pairwise_rank_loss,
    as_value_net,
    build_value_net,
    epoch_order,
)
from metanas.methods.value_net.regime import check_regime, find_regime, neighbour_tasks
from metanas.spaces.nb201 import NUM_EDGES, NUM_OPS, SPACE_SIZE, NB201Arch
from metanas.tasks import make_task, proxy_resolution
from metanas.threads import single_threaded
from metanas.training.fit import fit_resolution
from metanas.version import __version__

CHECKPOINT_FORMAT = "metanas.value-net/2"
"""/2: ``config.ensemble`` networks (``net.members.<i>.*`` when more than one); /1 (one
network, ``net.*``) still loads."""
READ_FORMATS = (CHECKPOINT_FORMAT, "metanas.value-net/1")
FEATURE_CLIP = 3.0
DENSE_SHARE = 0.5
"""Share of the space one task must have measured at a full training for ``fidelity="auto"``
to rank for a full training (the ImageNet16-120 table: all of it; MetaD2A's tasks: 1-2 cells)."""


def check_finite(scores: np.ndarray) -> None:
    """A damaged checkpoint scores NaN or inf; no ranking is returned from such scores."""
    if not np.isfinite(scores).all():
        raise CheckpointError("value-net produced non-finite scores for this dataset: "
                              "the checkpoint is damaged (no ranking returned)")


def _train_network(rows: tuple[torch.Tensor, ...], grouped: torch.Tensor, n_inputs: int,
                   config: ValueNetConfig, seed: int, progress: str | bool) -> ValueNetwork:
    """One value network trained on standardized rows (features, archs, targets, task
    indices) with its own seed: initial weights, batch order and rank pairs."""
    x_f, x_a, y, t_idx = rows
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = ValueNetwork.from_config(n_inputs, config)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    n = len(y)
    epochs = range(config.epochs)
    if progress:
        from rich.progress import track

        epochs = track(epochs, description=str(progress), transient=True)
    for _ in epochs:
        net.train()
        order = epoch_order(t_idx, grouped, gen)
        for b in range(0, n, config.batch_size):
            idx = order[b : b + config.batch_size]
            pred = net(x_f[idx], x_a[idx])
            loss = pred.sum() * 0.0
            if "mse" in config.loss:
                loss = loss + nn.functional.mse_loss(pred, y[idx])
            if "rank" in config.loss:
                loss = loss + _pairwise_rank_loss(pred, y[idx], t_idx[idx], config.rank_pairs,
                                                  gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return net.eval()


class ValueNetMethod(MetaLearnedMethod):
    """Search by a meta-learned value network; see the module docstring."""

    name = "value-net"
    Options = ValueNetOptions

    def __init__(
        self,
        net: ValueNetwork | ValueEnsemble,
        *,
        feature_mean: np.ndarray,
        feature_std: np.ndarray,
        feature_mask: np.ndarray,
        config: ValueNetConfig,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.net = net.eval()
        self.feature_mean = np.asarray(feature_mean, dtype=np.float32)
        self.feature_std = np.asarray(feature_std, dtype=np.float32)
        self.feature_mask = np.asarray(feature_mask, dtype=np.float32)
        self.config = config
        self.info = info or {}

    # ----- meta-training ------------------------------------------------------------------
    @classmethod
    def meta_train(cls, kb, *, progress: bool = False, **options) -> ValueNetMethod:
        config = config_from_options(ValueNetConfig, options, "value-net")
        data = load_training_data(kb, config)
        model = cls.fit(data, config, progress=progress)
        model.info["prior_cells"] = published_top_cells(kb, exclude=_excluded(config))
        if config.neighbour_sources.strip():
            n = len(FEATURE_NAMES)
            model.info["regime"] = {
                "network_tasks": [[round(float(v), 4) for v in model.standardize(row[:n])]
                                  for row in data.features],
                "neighbours": neighbour_tasks(
                    kb, config.neighbour_sources,
                    lambda feats: model.standardize(feature_vector(feats))),
            }
        return model

    @classmethod
    def fit(cls, data: TrainingData, config: ValueNetConfig, progress: bool = False,
            use_features: bool = True) -> ValueNetMethod:
        """Train on gathered rows (``config.ensemble`` networks, seeds ``config.seed`` and
        up); ``use_features=False`` masks all meta-features (ablation)."""
        mean = data.features.mean(0)
        std = data.features.std(0)
        mask = (std > 1e-6 * np.maximum(1.0, np.abs(mean))).astype(np.float32) * use_features
        std = np.where(mask > 0, std, 1.0)
        feats = torch.tensor((data.features - mean) / std * mask, dtype=torch.float32)
        rows = (feats[torch.as_tensor(data.task_index)], torch.as_tensor(data.archs),
                torch.as_tensor(data.target), torch.as_tensor(data.task_index))
        grouped = torch.as_tensor(grouped_tasks(data, config.group_sources))
        start = time.perf_counter()
        members = [_train_network(rows, grouped, feats.shape[1], config, config.seed + i,
                                  progress and f"meta-train value-net "
                                  f"{i + 1}/{config.ensemble}")
                   for i in range(config.ensemble)]
        info = {
            "tasks": len(data.task_keys),
            "evaluations": int(len(data.target)),
            "train_seconds": round(time.perf_counter() - start, 2),
            "resolutions": data.resolutions,
            "feature_names": list(FEATURE_NAMES),
            "fidelity_names": list(FIDELITY_NAMES) if data.fidelity_inputs else [],
            "fidelities": data.fidelities,
            "excluded_sources": sorted(_excluded(config)),
        }
        return cls(as_value_net(members), feature_mean=mean, feature_std=std, feature_mask=mask, config=config,
                   info=info)

    # ----- scoring ------------------------------------------------------------------------
    def ranking_fidelity(self, fidelity: str = "auto") -> str:
        """``"auto"`` resolved: ``"full"`` where one meta-training task measured at least
        :data:`DENSE_SHARE` of the space's cell strings (as published tables store them, not
        canonical forms) at a full training (a published table: the network
        has seen full trainings of bad cells as well as good ones), else ``"proxy"`` (full
        trainings of good cells only would be extrapolated over the rest; docs/value_net.md).
        Other values pass through."""
        if fidelity != "auto":
            return fidelity
        dense = any((f.get("epochs") or FULL_TRAINING["epochs"]) >= FULL_TRAINING["epochs"]
                    and f.get("cells", 0) >= DENSE_SHARE * SPACE_SIZE
                    for f in self.info.get("fidelities") or [])
        return "full" if dense and self.info.get("fidelity_names") else "proxy"

    def target_fidelity(self, fidelity: str | dict[str, Any] = "full") -> dict[str, Any]:
        """``"full"``: a full NB201 training; ``"proxy"``: the most common fidelity of the
        meta-training evaluations below a full training (the knowledge base's own CPU proxy);
        ``"auto"``: :meth:`ranking_fidelity`; or a dict with ``epochs``, ``C``, ``N``.
        (``"mix"`` is resolved in :meth:`search`.)"""
        if isinstance(fidelity, dict):
            return fidelity
        fidelity = self.ranking_fidelity(fidelity)
        if fidelity == "full":
            return dict(FULL_TRAINING)
        if fidelity == "proxy":  # the most common fidelity below a full training
            seen = [f for f in self.info.get("fidelities") or []
                    if f.get("epochs") and f["epochs"] < FULL_TRAINING["epochs"]]
            return ({k: seen[0][k] for k in ("epochs", "C", "N")} if seen
                    else dict(FULL_TRAINING))
        raise ConfigError(f"value-net fidelity must be auto, full, proxy or mix, "
                          f"got {fidelity!r}")

    def encode_features(self, features: dict[str, float],
                        fidelity: str | dict[str, Any] = "full") -> torch.Tensor:
        """Standardize with the knowledge base's statistics, clipped to +-FEATURE_CLIP so a
        dataset unlike every meta-training task is treated as the nearest edge of the data
        rather than extrapolated. A fidelity-aware network also gets the target fidelity."""
        raw = feature_vector(features)
        if self.info.get("fidelity_names"):
            raw = np.concatenate([raw, fidelity_vector(self.target_fidelity(fidelity))])
        return self.encode_vector(raw)

    def standardize(self, raw: np.ndarray) -> np.ndarray:
        """A raw input row (meta-features, then fidelity inputs, or a leading part of it) as
        the network sees it: standardized by the knowledge base's statistics, masked, clipped.
        The meta-features alone are the regime's distance space."""
        n = len(raw)
        vec = (raw - self.feature_mean[:n]) / self.feature_std[:n] * self.feature_mask[:n]
        return np.clip(vec, -FEATURE_CLIP, FEATURE_CLIP)

    def encode_vector(self, raw: np.ndarray) -> torch.Tensor:
        """A raw input row (meta-features, then fidelity inputs) as the network's input."""
        return torch.tensor(self.standardize(raw), dtype=torch.float32)[None]

    @torch.no_grad()
    def score(self, features: dict[str, float] | torch.Tensor, archs: list[NB201Arch]) -> np.ndarray:
        """Predicted value of each architecture on a task with these meta-features."""
        f = features if isinstance(features, torch.Tensor) else self.encode_features(features)
        onehots = torch.as_tensor(np.stack([a.one_hot() for a in archs]))
        return self.net(f.expand(len(archs), -1), onehots).numpy()

    @torch.no_grad()
    def score_all(self, f: torch.Tensor) -> np.ndarray:
        """Scores of all 15,625 cells, indexed by :attr:`NB201Arch.index`."""
        onehots = _all_one_hots()
        return self.net(f.expand(len(onehots), -1), onehots).numpy()

    def gradient_ascent(
        self, f: torch.Tensor, *, restarts: int = 8, steps: int = 100, lr: float = 1.0,
        seed: int = 0,
    ) -> list[NB201Arch]:
        """Maximize the frozen network over per-edge softmax relaxations; argmax each restart.

        Plain gradient ascent on the logits (``torch.autograd.grad``): the objective is tiny
        and smooth, and avoiding an optimizer object keeps a cold search fast.
        """
        gen = torch.Generator().manual_seed(seed)
        logits = 0.5 * torch.randn(restarts, NUM_EDGES, NUM_OPS, generator=gen)
        feats = f.expand(restarts, -1)
        for _ in range(steps):
            logits.requires_grad_(True)
            value = self.net(feats, torch.softmax(logits, dim=-1)).sum()
            (grad,) = torch.autograd.grad(value, logits)
            logits = (logits + lr * grad).detach()
        probs = torch.softmax(logits, dim=-1).numpy()
        return [NB201Arch.from_probabilities(p) for p in probs]

    # ----- search -------------------------------------------------------------------------
    def rerank_weights(self, proxies: tuple[str, ...], given: str = "") -> list[float] | None:
        """Vote weights of the network's ranking and of each proxy: ``given`` (a comma list),
        else those learned at meta-training for exactly these proxies, else None (equal)."""
        if given:
            try:
                weights = [float(v) for v in given.split(",")]
            except ValueError:
                raise ConfigError(f"value-net rerank_weights must be comma-separated numbers, "
                                  f"got {given!r}") from None
            if len(weights) != len(proxies) + 1 or not all(
                    math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
                raise ConfigError(f"value-net rerank_weights needs {len(proxies) + 1} numbers "
                                  f">= 0, not all 0 (the network, then {', '.join(proxies)}), "
                                  f"got {given!r}")
            return weights
        learned = self.info.get("rerank_weights") or {}
        if learned.get("proxies") == list(proxies):
            return [float(w) for w in learned["weights"]]
        return None

    def task_resolution(self, dataset: ImageDataset) -> int:
        """The knowledge-base resolution closest to the dataset's own image side."""
        return proxy_resolution(max(dataset.image_size), self.info.get("resolutions") or (16, 32))

    def _network_pool(self, inputs: list[torch.Tensor], mode: str, restarts: int,
                      prior_pool: bool, seed: int) -> tuple:
        """The network's candidate pool and its scores: gradient-ascent picks, their
        neighbours and the prior cells (``gradient``), or all cells (``exhaustive``).
        Returns (picks, pool indices, pool scores, scores, whether scores cover the pool
        only)."""
        with single_threaded():  # a small MLP: threads only add waiting on a busy machine
            picks = [] if mode != "gradient" else [
                p for f in inputs
                for p in self.gradient_ascent(f, restarts=max(1, restarts // len(inputs)),
                                              seed=seed)]
            if mode == "gradient":
                pool = {a for p in picks for a in [p, *p.neighbours()]}
                if prior_pool:  # the published sources' best cells compete too
                    pool |= {NB201Arch.from_string(a) for a in self.info.get("prior_cells", [])}
                pool_idx = np.array(sorted(a.index for a in pool))
            else:
                pool_idx = np.arange(SPACE_SIZE)
            # One fidelity in gradient mode scores only its pool (a few hundred cells, not
            # 15,625: about 0.06 s of a cold search); "mix" z-scores over all cells.
            pool_only = mode == "gradient" and len(inputs) == 1
            if pool_only:
                per_target = [self.score(inputs[0], [NB201Arch.from_index(int(i))
                                                     for i in pool_idx])]
            else:
                per_target = [self.score_all(f) for f in inputs]
            for sc in per_target:
                check_finite(sc)
            # "mix": the mean of the per-fidelity z-scores over all cells
            scores = per_target[0] if len(per_target) == 1 else np.mean(
                [(sc - sc.mean()) / (sc.std() + 1e-9) for sc in per_target], axis=0)
        return picks, pool_idx, scores if pool_only else scores[pool_idx], scores, pool_only

    def _search(
        self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
        progress: bool,
        mode: str,
        restarts: int,
        max_train_per_class: int | None,
        fidelity: str,
        resolution: int | None,
        prior_pool: bool,
        rerank: str,
        shortlist: int,
        rerank_size: str,
        rerank_resolution: int,
        rerank_batch: int,
        rerank_weights: str,
        train_budget: float | None,
        budget_shortlist: int,
        budget_cheap: int,
        budget_top: float,
        budget_tolerance: float,
        budget_step_seconds: float | None,
        regime_k: int,
    ) -> SearchResult:
        proxies = check_proxies(rerank) if rerank else ()
        zc_config = (zero_cost_config(rerank_size, seed, self.name, rerank_batch) if proxies
                     else None)
        weights = self.rerank_weights(proxies, rerank_weights) if proxies else None
        requested_fidelity, fidelity = fidelity, self.ranking_fidelity(fidelity)
        targets = ([self.target_fidelity(x) for x in ("full", "proxy")] if fidelity == "mix"
                   else [self.target_fidelity(fidelity)])
        t0 = time.perf_counter()
        task = make_task(
            dataset, resolution=resolution or self.task_resolution(dataset),
            max_train_per_class=max_train_per_class, seed=seed,
            max_test_per_class=1,  # the features and proxies read train and val images only
        )
        t_task = time.perf_counter()
        features = compute_meta_features(task, seed=seed)
        inputs = [self.encode_features(features, t) for t in targets]
        regime = find_regime(self.info, self.standardize(feature_vector(features)), regime_k)
        t_feat = time.perf_counter()
        if regime is not None:  # the target is in a neighbour source's regime: its evidence
            pool_idx = np.array([NB201Arch.from_string(a).index for a in regime.evidence])
            pool_scores = np.array(list(regime.evidence.values()))
            check_finite(pool_scores)
            picks, scores, pool_only = [], None, True
        else:
            picks, pool_idx, pool_scores, scores, pool_only = self._network_pool(
                inputs, mode, restarts, prior_pool, seed)
        order = np.argsort(-pool_scores, kind="stable")
        ranked, ranked_scores = pool_idx[order], pool_scores[order]
        candidates, spare, seen = [], [], set()
        n_vote = budget_shortlist if train_budget is not None else shortlist
        want = max(top, n_vote if proxies or train_budget is not None else 0)
        for i, score in zip(ranked, ranked_scores, strict=True):
            arch = NB201Arch.from_index(int(i))
            if not arch.is_connected or arch.canonical_form in seen:
                continue
            if train_budget is not None and "dead" in arch.edge_roles:
                # scored for convolutions that never reach the output (docs/value_net.md)
                spare.append(Candidate(arch.to_string(), float(score)))
                continue
            seen.add(arch.canonical_form)
            candidates.append(Candidate(arch.to_string(), float(score)))
            if len(candidates) >= want:
                break
        candidates = candidates or spare[:want]  # a pool of dead-edge cells only
        fit_side = fit_resolution(dataset.image_size)  # the side ``metanas fit`` trains at
        if train_budget is not None and budget_cheap and regime is None:
            with single_threaded():
                all_scores = self.score_all(inputs[0]) if pool_only else scores
            check_finite(all_scores)
            cheap = cheap_cells(all_scores, share=budget_top, n=budget_cheap,
                                resolution=fit_side,
                                exclude={NB201Arch.from_string(c.arch).canonical_form
                                         for c in candidates[:n_vote]})
            # voted on with the shortlist, in the network's order; the same whatever ``top``
            taken = {NB201Arch.from_string(c.arch).canonical_form for c in cheap}
            head = sorted(candidates[:n_vote] + cheap, key=lambda c: -c.score)
            rest = [c for c in candidates[n_vote:]
                    if NB201Arch.from_string(c.arch).canonical_form not in taken]
            candidates, n_vote = head + rest, len(head)
        else:
            cheap = []
        t_shortlist = time.perf_counter()
        rerank_skipped = None
        if proxies:
            try:  # the first ``n_vote`` cells are re-ordered; the rest keep their order
                candidates = rerank_shortlist(candidates[:n_vote], task, proxies, zc_config,
                                              rerank_resolution, weights) + [
                    Candidate(c.arch, 0.0, {"value": c.score}) for c in candidates[n_vote:]]
            except DatasetError as exc:  # e.g. constant images: no signal, keep the network's
                rerank_skipped = str(exc)
        budget_details = None
        if train_budget is not None:
            head = candidates[:n_vote]
            if not proxies or rerank_skipped is not None:  # the network's order is the vote
                head = [Candidate(c.arch, 1.0 - i / len(head), {"value": c.score})
                        for i, c in enumerate(head)]
            # timed with the threads the fit after the search gets (api: the free cores)
            head, budget_details = budget_rank(
                head, dataset, train_budget=train_budget,
                resolution=fit_side, tolerance=budget_tolerance,
                seed=seed, step_seconds=budget_step_seconds)
            budget_details["cheap_cells"] = [c.arch for c in cheap]
            floor = min(c.score for c in head)  # past the shortlist: below it, network order
            candidates = head + [Candidate(c.arch, floor, {"value": c.extra.get("value",
                                                                                 c.score)})
                                 for c in candidates[n_vote:]]
        if proxies or train_budget is not None:
            candidates = candidates[:top]
        t_rank = time.perf_counter()
        top_index = NB201Arch.from_string(candidates[0].arch).index
        return SearchResult(
            method=self.name,
            dataset=dataset.name,
            candidates=candidates,
            search_seconds=t_rank - t0,
            timings={
                "task_seconds": t_task - t0,
                "features_seconds": t_feat - t_task,
                "rank_seconds": t_shortlist - t_feat,
                "rerank_seconds": t_rank - t_shortlist,
            },
            details={
                "mode": mode if regime is None else "regime",
                "resolution": task.resolution,
                "fidelity": targets[0] if len(targets) == 1 else {"mix": targets},
                "fidelity_requested": requested_fidelity,
                "meta_features": features,
                "gradient_picks": [p.to_string() for p in picks],
                "pool_size": len(pool_idx),
                # the top pick's rank among all 15,625 cells (when all were scored)
                "exhaustive_rank_of_top": (
                    1 + int(np.flatnonzero(ranked == top_index)[0])
                    if len(pool_idx) == SPACE_SIZE else None),
                "rerank": list(proxies) if rerank_skipped is None else [],
                "rerank_weights": weights,
                "rerank_skipped": rerank_skipped,
                "train_budget": budget_details,
                "regime": None if regime is None else regime.to_dict(),
            },
        )

    # ----- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        tensors = {f"net.{k}": v.contiguous() for k, v in self.net.state_dict().items()}
        tensors["feature_mean"] = torch.as_tensor(self.feature_mean)
        tensors["feature_std"] = torch.as_tensor(self.feature_std)
        tensors["feature_mask"] = torch.as_tensor(self.feature_mask)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "metanas_version": __version__,
            "config": json.dumps(asdict(self.config)),
            "info": json.dumps(self.info),
            "n_features": str(len(self.feature_mean)),
        }
        write_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> ValueNetMethod:
        """Read a checkpoint; the network is small, so it always runs on the CPU."""
        path = Path(path)
        tensors, meta = read_checkpoint(path, READ_FORMATS, "value-net")
        what = "value-net"
        info = meta_json(path, meta, "info", what, default={})
        try:
            config = ValueNetConfig(**meta_json(path, meta, "config", what))
            n_inputs = int(meta["n_features"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{path}: incompatible value-net checkpoint "
                                  f"({first_line(exc)})") from None
        if meta["format"] != CHECKPOINT_FORMAT and config.ensemble != 1:
            raise CheckpointError(f"{path}: a {meta['format']} checkpoint holds one network, "
                                  f"its config declares an ensemble of {config.ensemble}")
        if info.get("feature_names", list(FEATURE_NAMES)) != list(FEATURE_NAMES):
            raise CheckpointError(f"{path} was trained on other meta-features")
        fidelity_names = info.get("fidelity_names") or []
        if fidelity_names and fidelity_names != list(FIDELITY_NAMES):
            raise CheckpointError(f"{path} was trained on other fidelity inputs")
        if n_inputs != len(FEATURE_NAMES) + len(fidelity_names):
            raise CheckpointError(f"{path}: n_features {meta['n_features'][:20]} does not "
                                  f"match its {len(FEATURE_NAMES) + len(fidelity_names)} inputs")

        def build() -> nn.Module:
            return build_value_net(n_inputs, config)

        check_shapes(path, what, build, tensors, prefix="net.")
        net = build()
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        try:
            stats = {k: tensors[f"feature_{k}"].float().numpy() for k in ("mean", "std", "mask")}
        except KeyError as exc:
            raise CheckpointError(f"{path}: incompatible value-net checkpoint (no {exc})") from None
        if any(v.shape != (n_inputs,) for v in stats.values()):
            raise CheckpointError(f"{path}: feature statistics do not have {n_inputs} entries")
        if not (np.isfinite(stats["mean"]).all() and np.isfinite(stats["std"]).all()
                and (stats["std"] > 0).all()):
            raise CheckpointError(f"{path}: feature statistics are not finite and positive "
                                  "(a ranking from them would be NaN)")
        if not all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()):
            raise CheckpointError(f"{path}: the network holds non-finite weights")
        check_regime(info, len(FEATURE_NAMES), str(path))
        return cls(
            net,
            feature_mean=stats["mean"],
            feature_std=stats["std"],
            feature_mask=stats["mask"],
            config=config,
            info=info,
        )
