"""MetaD2A as a metanas search method: meta-train on a knowledge base, generate and rank cells.

Search on a new dataset: draw a pool of training images per class, embed them with the frozen
feature extractor, then (``mode="generate"``) let the generator propose ``candidates`` unique
valid cells from the dataset's encodings and rank them by the predictor's score averaged over
``resamples`` image sets (MetaD2A's meta-test protocol), or (``mode="exhaustive"``) score all
15,625 cells with the predictor. Nothing is trained at search time, so a budget is refused.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metanas.data import ImageDataset
from metanas.errors import CheckpointError, DatasetError, first_line
from metanas.features.zero_cost import check_proxies
from metanas.methods.checkpoints import check_shapes, meta_json, read_checkpoint, write_checkpoint
from metanas.methods.interface import Budget, Candidate, MetaLearnedMethod, SearchResult
from metanas.methods.metad2a.data import class_pools, dataset_pool_images, sample_sets
from metanas.methods.metad2a.extractor import (
    ExtractorConfig,
    FeatureExtractor,
    as_extractor,
    builtin_extractor,
    extractor_from_tensors,
    extractor_tensors,
)
from metanas.methods.metad2a.generation import generate_cells, generator_metrics
from metanas.methods.metad2a.graph import dag_batch
from metanas.methods.metad2a.models import Generator, Predictor
from metanas.methods.metad2a.training import (
    MetaD2AConfig,
    MetaTrainData,
    fit_generator,
    fit_predictor,
    load_meta_data,
    new_generator,
    new_predictor,
    predict_scores,
    split_tasks,
)
from metanas.methods.options import MetaD2AOptions, check_value
from metanas.methods.rerank import proxy_task, rerank_shortlist, zero_cost_config
from metanas.spaces.nb201 import SPACE_SIZE, NB201Arch
from metanas.tasks import proxy_resolution
from metanas.threads import single_threaded
from metanas.version import __version__

CHECKPOINT_FORMAT = "metanas.metad2a/1"
MODES = ("generate", "exhaustive")


@functools.cache
def _all_cells() -> tuple[list[NB201Arch], np.ndarray]:
    """All cells in index order (their canonical forms cached on the objects) and which are
    connected; built once per process."""
    cells = list(NB201Arch.enumerate_all())
    return cells, np.array([a.is_connected for a in cells])


@functools.cache
def _pruned_index() -> np.ndarray:
    """Index of each cell's pruned form (:meth:`NB201Arch.pruned`), by cell index."""
    return np.array([a.pruned().index for a in _all_cells()[0]])


class MetaD2AMethod(MetaLearnedMethod):
    """Set-to-graph generator + meta-performance predictor; see the package docstring."""

    name = "metad2a"
    Options = MetaD2AOptions
    no_budget_reason = "it generates and ranks without training"

    def __init__(self, generator: Generator, predictor: Predictor, extractor: FeatureExtractor,
                 config: MetaD2AConfig, info: dict[str, Any] | None = None) -> None:
        self.generator = generator.eval()
        self.predictor = predictor.eval()
        self.extractor = extractor
        self.config = config
        self.info = info or {}
        self._all_graph_emb: torch.Tensor | None = None

    # ----- meta-training ------------------------------------------------------------------
    @classmethod
    def meta_train(cls, kb, *, progress: bool = False, source=None, extractor=None,
                   cache: bool = True, **options) -> MetaD2AMethod:
        """Encode the knowledge base's tasks (images of ``source``; default: the task's source
        dataset under the shared datasets folder) and train both networks. ``extractor``:
        None = the shipped one, or any module/callable (see :class:`FeatureExtractor`)."""
        config = MetaD2AConfig.from_options(options)
        cache = check_value("metad2a", "cache", bool, cache, {})
        ext = as_extractor(extractor)
        start = time.perf_counter()
        with single_threaded():
            data = load_meta_data(kb, ext, config, source=source, cache=cache,
                                  progress=progress)
            encode_seconds = time.perf_counter() - start
            model = cls.fit(data, config, ext, progress=progress)
        model.info["encode_seconds"] = round(encode_seconds, 1)
        model.info["meta_train_seconds"] = round(time.perf_counter() - start, 1)
        return model

    @classmethod
    def fit(cls, data: MetaTrainData, config: MetaD2AConfig, extractor: FeatureExtractor, *,
            progress: bool = False) -> MetaD2AMethod:
        """Train on encoded tasks: select on held-out tasks, then (``refit``) retrain on all."""
        torch.manual_seed(config.seed)
        train_ids, val_ids = split_tasks(len(data), config.holdout, config.seed)
        generator, gen_info = fit_generator(data, config, train_ids, progress=progress)
        predictor, pred_info = fit_predictor(data, config, train_ids, val_ids,
                                             progress=progress)
        info: dict[str, Any] = {
            "tasks": len(data), "evaluations": int(sum(len(a) for a in data.accuracy)),
            "resolutions": data.resolutions, "feature_dim": data.feature_dim,
            "holdout_tasks": [data.task_keys[t] for t in val_ids],
            "generator": gen_info,
            "predictor": {k: v for k, v in pred_info.items() if k != "curve"},
            "selected_by": config.select,
            # (epoch, training loss, held-out selection metric) at each evaluation
            "predictor_curve": [[p["epoch"], round(p["loss"], 4),
                                 p.get(f"{config.select}_mean")]
                                for p in pred_info["curve"] if len(p) > 2],
        }
        if len(val_ids):
            # at most 100 held-out tasks: 400 draws each, and a combined KB holds thousands
            info["generator_holdout"] = generator_metrics(
                generator, data,
                data.with_cells(val_ids, config.gen_min_cells, config.generator_sources)[:100],
                data.with_cells(train_ids, config.gen_min_cells, config.generator_sources),
                config, samples=200, seed=config.seed)
        if config.refit and len(val_ids):
            all_ids = np.arange(len(data))
            generator, _ = fit_generator(data, config, all_ids, progress=progress)
            predictor, _ = fit_predictor(data, config, all_ids, (),
                                         epochs=pred_info["best_epoch"], progress=progress)
            info["refit"] = True
        return cls(generator, predictor, extractor, config, info)

    # ----- dataset encoding and scoring ---------------------------------------------------
    def task_resolution(self, dataset: ImageDataset) -> int:
        """The knowledge-base resolution closest to the dataset's own image side."""
        return proxy_resolution(max(dataset.image_size), self.info.get("resolutions") or (16, 32))

    def encode(self, dataset: ImageDataset, *, seed: int = 0,
               resolution: int | None = None) -> list[torch.Tensor]:
        """Feature pools (one (n_c, D) tensor per class) of the dataset's training images, seen
        at ``resolution`` (default: :meth:`task_resolution`)."""
        images, labels = dataset_pool_images(
            dataset, resolution=resolution or self.task_resolution(dataset),
            per_class=self.config.pool_per_class, seed=seed)
        return class_pools(self.extractor, images, labels)

    def image_sets(self, pools: list[torch.Tensor], resamples: int,
                   seed: int) -> list[list[torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed)
        return sample_sets(pools, self.config.images_per_class, resamples, gen)

    @torch.no_grad()
    def all_graph_embeddings(self) -> torch.Tensor:
        """Predictor graph embeddings of all 15,625 cells (computed once per loaded model)."""
        if self._all_graph_emb is None:
            types = dag_batch(_all_cells()[0])
            self._all_graph_emb = torch.cat([self.predictor.graph(types[b:b + 4096])
                                             for b in range(0, SPACE_SIZE, 4096)])
        return self._all_graph_emb

    def score_cells(self, dataset: ImageDataset, archs: list[NB201Arch], *, seed: int = 0,
                    resamples: int = 10) -> np.ndarray:
        """Predicted scores of ``archs`` on ``dataset`` (same seed = same image sets as
        :meth:`search`)."""
        with single_threaded():
            sets = self.image_sets(self.encode(dataset, seed=seed), resamples, seed)
            return predict_scores(self.predictor, sets, dag_batch(archs))

    def score_all(self, dataset: ImageDataset, *, seed: int = 0,
                  resamples: int = 10) -> np.ndarray:
        """Predicted scores of all cells, indexed by :attr:`NB201Arch.index`."""
        with single_threaded():
            sets = self.image_sets(self.encode(dataset, seed=seed), resamples, seed)
            return predict_scores(self.predictor, sets, None, self.all_graph_embeddings())

    def generate(self, dataset: ImageDataset, *, seed: int = 0, candidates: int = 500,
                 resamples: int = 10, temperature: float = 1.0,
                 z_scale: float = 0.0) -> list[NB201Arch]:
        """The unique valid cells the generator proposes for ``dataset`` (unranked)."""
        with single_threaded():
            sets = self.image_sets(self.encode(dataset, seed=seed), resamples, seed)
            cells, _ = generate_cells(self.generator, sets, candidates,
                                      gen=torch.Generator().manual_seed(seed),
                                      temperature=temperature, z_scale=z_scale)
        return cells

    # ----- search -------------------------------------------------------------------------
    def _search(
        self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
        progress: bool,
        mode: str,
        candidates: int,
        resamples: int,
        temperature: float,
        z_scale: float,
        resolution: int | None,
        pruned: bool,
        rerank: str,
        shortlist: int,
        rerank_size: str,
        rerank_resolution: int,
        rerank_batch: int,
    ) -> SearchResult:
        """Generate ``candidates`` cells (or take all, ``mode="exhaustive"``) and rank them by
        the predictor averaged over ``resamples`` image sets. ``temperature`` scales the
        decoder's node-type softmax; ``z_scale`` > 0 also samples the latent around its mean.
        ``pruned``: each cell is scored by :meth:`NB201Arch.pruned` (its graph encoder reads
        ops, so a cell whose convolutions never reach the output would otherwise be scored for
        them). ``rerank``: zero-cost proxies on the dataset's own images re-order the
        predictor's best ``shortlist`` cells by a rank vote with its order
        (:mod:`metanas.methods.rerank`, as the value network does)."""
        proxies = check_proxies(rerank) if rerank else ()
        zc_config = (zero_cost_config(rerank_size, seed, self.name, rerank_batch) if proxies
                     else None)
        want = max(top, shortlist) if proxies else top
        t0 = time.perf_counter()
        resolution = resolution or self.task_resolution(dataset)
        details: dict[str, Any] = {"mode": mode, "resamples": resamples,
                                   "resolution": resolution, "pruned": pruned}
        # the extractor over every pooled image (8,000 for 200 classes) is the one large
        # network here: it runs on the threads the caller gives (the API: the free cores)
        pools = self.encode(dataset, seed=seed, resolution=resolution)
        with single_threaded():  # small networks: threads only wait on a busy machine
            sets = self.image_sets(pools, resamples, seed)
            t_enc = time.perf_counter()
            if mode == "generate":
                gen = torch.Generator().manual_seed(seed)
                cells, stats = generate_cells(self.generator, sets, candidates, gen=gen,
                                              temperature=temperature, z_scale=z_scale)
                details["generation"] = stats
                t_gen = time.perf_counter()
                scored = [a.pruned() for a in cells] if pruned else cells
                scores = predict_scores(self.predictor, sets, dag_batch(scored))
                order = np.argsort(-scores, kind="stable")
                ranked = [(cells[i], float(scores[i])) for i in order]
            else:
                t_gen = time.perf_counter()
                scores = predict_scores(self.predictor, sets, None, self.all_graph_embeddings())
                cells, connected = _all_cells()
                if pruned:
                    scores = scores[_pruned_index()]
                ranked, seen = [], set()
                for i in np.argsort(-scores, kind="stable"):
                    arch = cells[i]
                    if connected[i] and arch.canonical_form not in seen:
                        seen.add(arch.canonical_form)
                        ranked.append((arch, float(scores[i])))
                        if len(ranked) >= want:
                            break
            t_rank = time.perf_counter()
        details["scored"] = int(len(scores))
        out = [Candidate(a.to_string(), s, {"rank_among_scored": r + 1})
               for r, (a, s) in enumerate(ranked[:want])]
        details["rerank"], details["rerank_skipped"] = list(proxies), None
        if proxies:
            try:
                task = proxy_task(dataset, zc_config, rerank_resolution)
                out = rerank_shortlist(out[:shortlist], task, proxies, zc_config,
                                       rerank_resolution) + [
                    Candidate(c.arch, 0.0, {"value": c.score, **c.extra})
                    for c in out[shortlist:]]
            except DatasetError as exc:  # e.g. constant images: keep the predictor's order
                details["rerank"], details["rerank_skipped"] = [], str(exc)
            out = out[:top]
        t_vote = time.perf_counter()
        return SearchResult(
            method=self.name, dataset=dataset.name, candidates=out,
            search_seconds=t_vote - t0,
            timings={"encode_seconds": t_enc - t0, "generate_seconds": t_gen - t_enc,
                     "rank_seconds": t_rank - t_gen, "rerank_seconds": t_vote - t_rank},
            details=details,
        )

    # ----- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        tensors = {f"generator.{k}": v.contiguous()
                   for k, v in self.generator.state_dict().items()}
        tensors.update({f"predictor.{k}": v.contiguous()
                        for k, v in self.predictor.state_dict().items()})
        module = self.extractor.module
        if module is not None:
            tensors.update(extractor_tensors(module, "extractor."))
            extractor = {"kind": "builtin", "config": asdict(module.config),
                         "name": self.extractor.name}
        else:
            extractor = {"kind": "custom", "name": self.extractor.name,
                         "dim": self.extractor.dim, "input_size": self.extractor.input_size,
                         "channels": self.extractor.channels}
        meta = {
            "format": CHECKPOINT_FORMAT,
            "metanas_version": __version__,
            "config": json.dumps(asdict(self.config)),
            "info": json.dumps(self.info, default=float),
            "feature_dim": str(self.extractor.dim),
            "extractor": json.dumps(extractor),
        }
        write_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", extractor=None) -> MetaD2AMethod:
        """Read a checkpoint (the networks are small, so they run on the CPU). A checkpoint
        meta-trained with a custom feature extractor needs that ``extractor`` again."""
        path = Path(path)
        tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "MetaD2A")
        what = "MetaD2A"
        info = meta_json(path, meta, "info", what, default={})
        ext_meta = meta_json(path, meta, "extractor", what)
        try:
            config = MetaD2AConfig(**meta_json(path, meta, "config", what))
            dim = int(meta["feature_dim"])
            ext_config = (ExtractorConfig(**ext_meta["config"])
                          if extractor is None and ext_meta.get("kind") == "builtin" else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: incompatible MetaD2A checkpoint "
                                  f"({first_line(exc)})") from None
        parts = {"generator.": lambda: new_generator(dim, config),
                 "predictor.": lambda: new_predictor(dim, config)}
        for prefix, build in parts.items():
            check_shapes(path, what, build, tensors, prefix)
        generator, predictor = (build() for build in parts.values())
        generator.load_state_dict(_strip(tensors, "generator."))
        predictor.load_state_dict(_strip(tensors, "predictor."))
        if extractor is not None:
            ext = as_extractor(extractor)
        elif ext_config is not None:
            ext = builtin_extractor(extractor_from_tensors(tensors, ext_config, "extractor.",
                                                           path=path))
        else:
            raise CheckpointError(
                f"{path} was meta-trained with a custom feature extractor "
                f"({str(ext_meta.get('name'))[:40]!r}, {str(ext_meta.get('dim'))[:20]}-d); "
                "pass it again: MetaD2AMethod.load(path, extractor=...)")
        if ext.dim != dim:
            raise CheckpointError(f"{path} expects {dim}-d image features; the extractor "
                                  f"gives {ext.dim}-d")
        return cls(generator, predictor, ext, config, info)


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
