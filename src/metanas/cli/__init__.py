"""The ``metanas`` command line: a thin shell over :mod:`metanas.api` (nothing else of metanas
but its errors and version; tables are drawn by :mod:`metanas.cli.display`).

User mistakes (bad paths, malformed architectures, corrupt files) print one line to stderr and
exit with code 2; there is no traceback for them.
"""

# No ``from __future__ import annotations``: typer would evaluate every command's string
# annotations at start-up (about 0.1 s for the 18 commands).

import functools
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from metanas.errors import ConfigError, MetanasError

if TYPE_CHECKING:
    from metanas import api

# metanas.api imports torch (about 2 s); the commands import it when they run, so --help,
# methods, datasets, kb list and space info start fast.


def _api():
    from metanas import api

    return api


def _flag_display_type(display_type_rich):
    """typer >= 0.2x labels every option with its type, flags too (``--train <bool>``); a flag
    takes no value, so it gets no label."""

    @functools.wraps(display_type_rich)
    def display(self, ctx):
        return None if getattr(self, "is_flag", False) else display_type_rich(self, ctx)

    return display


if hasattr(typer.core, "TyperOption") and hasattr(typer.core.TyperOption, "display_type_rich"):
    typer.core.TyperOption.display_type_rich = _flag_display_type(
        typer.core.TyperOption.display_type_rich)

app = typer.Typer(
    help="metanas: meta architecture search. Pick a NAS-Bench-201 cell for a dataset in seconds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kb_app = typer.Typer(help="Build, import into, inspect and export knowledge bases.",
                     no_args_is_help=True)
space_app = typer.Typer(help="Search-space information.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(space_app, name="space")

# On a terminal, its real width (tables with architectures switch to one line per candidate
# when narrow, see _print_candidates); piped, wide enough that a NATS-Bench string (up to 96
# characters) stays on one line.
out = Console() if sys.stdout.isatty() else Console(width=max(shutil.get_terminal_size().columns,
                                                              132))
err = Console(stderr=True)


def handles_errors(fn):
    """Turn user errors into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MetanasError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def check_output(path: Path | None, option: str) -> None:
    _api().check_output(path, option)


def write_json(path: Path, payload: Any, option: str = "--json") -> None:
    _api().write_json(path, payload, option)


def _given(**options) -> dict[str, Any]:
    """Only the options the user set, so the method's own defaults apply to the rest."""
    return {k: v for k, v in options.items() if v is not None}


#: Settings a command takes through its own options (or not at all), never through ``--set``.
OWN_FLAGS = frozenset({"seed", "top", "budget", "progress"})


def _key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values that read as JSON (numbers, true/false) become those."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ConfigError(f"{flag} must look like KEY=VALUE, got {item!r}")
        if key in OWN_FLAGS:
            raise ConfigError(f"{flag} {item[:60]}: {key} is not a method option (the "
                              "command's own options set it)")
        try:
            out[key] = json.loads(value)
        except ValueError:  # not JSON, or an integer of more than 4,300 digits
            out[key] = value
    return out


def _budget(evaluations: int | None, seconds: float | None) -> "api.Budget | None":
    if evaluations is None and seconds is None:
        return None
    if (evaluations is not None and evaluations < 1) or (seconds is not None and seconds <= 0):
        raise ConfigError("--budget-evals must be >= 1 and --budget must be > 0 seconds")
    return _api().Budget(seconds=seconds, evaluations=evaluations)


# What a candidate's score is, per method (higher is better for all).
SCORE_MEANING = {
    "value-net": "rank vote of the value network and the zero-cost proxies ({proxies}) on its "
                 "shortlist, 1 = first on all; 0 = past the shortlist (not re-ranked, in the "
                 "network's order)",
    "value-net:no-rerank": "the value network's prediction, standardised per task",
    "value-net:budget": "budget score of the shortlist for --train-budget: the rank vote "
                        "({proxies}) x tolerance minus the accuracy points the epochs the "
                        "budget buys the cell cost it (details.train_budget); past the "
                        "shortlist: its lowest score, in the network's order",
    "metad2a": "rank vote of the meta-predictor and the zero-cost proxies ({proxies}) on its "
               "shortlist, 1 = first on all; 0 = past the shortlist (not re-ranked, in the "
               "predictor's order)",
    "metad2a:no-rerank": "the meta-predictor's predicted accuracy, standardised per task (a "
                         "z-score), averaged over resampled image sets",
    "base": "log-probability of the cell under the adapted architecture distribution",
    "base-prior": "log-probability of the cell under the meta-learned architecture "
                  "distribution",
    "darts": "summed log-probability of the cell under the searched architecture distribution",
    "gdas": "summed log-probability of the cell under the searched architecture distribution",
    "random": "validation accuracy of the cell trained on this dataset (fraction)",
    "rea": "validation accuracy of the cell trained on this dataset (fraction)",
    "fisher-nearest": "validation accuracy of the cell trained on this dataset (fraction)",
    "nearest-best": "the cell's accuracy measured on the nearest knowledge-base task (fraction)",
    "global-prior": "the cell's mean per-task z-score over the knowledge base's tasks "
                    "(shrunken towards 0 for cells measured on few tasks)",
    "zero-cost": "mean normalised rank over the zero-cost proxies (1 = first on every proxy)",
}


def _print_candidates(result) -> None:
    """The ranking: a table when the architecture strings fit the console, else one line per
    candidate (never wrapped inside a string, so it stays copyable)."""
    title = f"{result.method} on {result.dataset}: top {len(result.candidates)}"
    longest = max((len(c.arch) for c in result.candidates), default=0)
    if out.width >= longest + 24:
        table = Table(title=escape(title))
        table.add_column("#", justify="right")
        table.add_column("architecture (NATS-Bench string)", no_wrap=True, overflow="ignore")
        table.add_column("score", justify="right", no_wrap=True)
        for i, c in enumerate(result.candidates, 1):
            table.add_row(str(i), c.arch, f"{c.score:.4f}")
        out.print(table)
    else:
        out.print(title, highlight=False, markup=False)
        for i, c in enumerate(result.candidates, 1):
            out.print(f"{i:>3}  {c.score:8.4f}  {c.arch}", highlight=False, markup=False,
                      soft_wrap=True)
    details = result.details or {}
    reranked = details.get("rerank")
    key = f"{result.method}:no-rerank" if reranked == [] else result.method
    if details.get("train_budget"):
        key = f"{result.method}:budget"
    meaning = SCORE_MEANING.get(key, SCORE_MEANING.get(result.method))
    if meaning:
        meaning = meaning.format(proxies=", ".join(reranked or ()))
        if details.get("rerank_skipped"):
            meaning += f" (no re-rank: {details['rerank_skipped']})"
        out.print(f"score: {meaning}", highlight=False, markup=False)
    if details.get("regime"):
        regime = details["regime"]
        out.print(f"regime: {len(regime['tasks'])} of the {regime['k']} nearest knowledge-base "
                  f"tasks are {regime['source']} tasks; the network's ranking is replaced by "
                  "the cells they measured (mean z-score, shrunk)", highlight=False,
                  markup=False)


# ----- search / train ------------------------------------------------------------------------
@app.command()
@handles_errors
def search(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Builtin name (digits), .npz, "
                                         "ImageFolder directory or .zip.")] = "digits",
    method: Annotated[str, typer.Option(help="Search method (see `metanas methods`).")
                      ] = "value-net",
    top: Annotated[int, typer.Option(help="How many ranked candidates to return.")] = 10,
    train: Annotated[bool, typer.Option("--train", help="Train the top pick and report its "
                                        "test accuracy.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Meta-trained checkpoint (default: "
                                                    "the shipped one).")] = None,
    mode: Annotated[str | None, typer.Option(help="Method mode, e.g. value-net: gradient | "
                                             "exhaustive.")] = None,
    budget_evals: Annotated[int | None, typer.Option(help="Candidates to train (methods that "
                                                     "train candidates).")] = None,
    budget: Annotated[float | None, typer.Option(help="Search budget in wall-clock seconds "
                                                 "(its meaning per method: `metanas methods`)."
                                                 )] = None,
    adapt_steps: Annotated[int | None, typer.Option(help="base: adaptation steps.")] = None,
    option: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE method option, "
                                                     "repeatable.")] = None,
    recipe: Annotated[str, typer.Option(help="Training recipe for --train and baselines.")] = "cpu-proxy",
    device: Annotated[str, typer.Option(help="cpu | cuda | auto")] = "cpu",
    save_model: Annotated[Path | None, typer.Option(help="With --train: save the trained "
                                                    "model (safetensors).")] = None,
    train_budget: Annotated[float | None, typer.Option(help="With --train: train the pick "
                                                       "within this many wall seconds, sized "
                                                       "to them (as `metanas fit`) instead of "
                                                       "with --recipe.")] = None,
) -> None:
    """Rank NB201 architectures for a dataset (and optionally train the best)."""
    from metanas import api

    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    if save_model and not train:
        raise ConfigError("--save-model needs --train (there is no trained model to save)")
    if train_budget is not None and not train:
        raise ConfigError("--train-budget needs --train")
    check_output(json_out, "--json")
    check_output(save_model, "--save-model")
    if train_budget is not None:  # a bad budget or model path fails now, not after the search
        api.check_budget(train_budget, "--train-budget")
        api.check_model_path(save_model, "--save-model")
    # a bad --method, --recipe, --device or --checkpoint fails now, not after the search
    api.check_search(method, checkpoint=checkpoint, recipe=recipe, device=device)
    options = {**_key_values(option or [], "--set"), **_given(mode=mode, adapt_steps=adapt_steps)}
    api.check_inherit(method, options, train=train)
    options = api.budget_options(method, options, train_budget if train else None)
    data = api.as_dataset(dataset, seed=seed, progress=True)
    result = api.search(
        data, method=method, top=top, seed=seed, budget=_budget(budget_evals, budget),
        checkpoint=checkpoint, recipe=recipe, device=device, progress=True, options=options,
    )
    payload = result.to_dict()
    # The ranking first: an interrupted --train must not lose it.
    _print_candidates(result)
    out.print(f"search: {result.search_seconds:.2f} s", highlight=False)
    if train and train_budget is not None:
        fitted = api.fit(data, result.architecture, budget=train_budget, seed=seed,
                         out=save_model, curves=json_out, device=device, progress=True,
                         init_model=result.inherited)
        payload["trained"] = fitted.to_dict()
        _print_fit(fitted)
    elif train:
        trained = api.train(data, result.architecture, recipe=recipe, seed=seed,
                            device=device, progress=True, save_to=save_model,
                            init_model=result.inherited)
        payload["trained"] = trained.to_dict()
        t = payload["trained"]
        out.print(f"trained top pick ({t['recipe']}, seed {seed}): test accuracy "
                  f"{t['test_acc']:.4f}, val {t['val_acc']:.4f}, {t['seconds']:.1f} s, "
                  f"{t['params']:,} params", highlight=False, markup=False)
    if json_out:
        write_json(json_out, payload)


@app.command("export")
@handles_errors
def export_cmd(
    model: Annotated[Path, typer.Option(help="A model saved with --save-model.")],
    onnx: Annotated[Path | None, typer.Option("--onnx", help="ONNX file to write.")] = None,
    torchscript: Annotated[Path | None, typer.Option(help="TorchScript file to write.")] = None,
) -> None:
    """Export a saved model (ONNX, TorchScript), checked against PyTorch's outputs."""
    from metanas import api

    check_output(onnx, "--onnx")
    check_output(torchscript, "--torchscript")
    out.print_json(data=api.export_model(model, onnx=onnx, torchscript=torchscript))


@app.command("predict")
@handles_errors
def predict_cmd(
    model: Annotated[Path, typer.Option(help="A model saved with --save-model.")],
    images: Annotated[Path, typer.Option(help="An image file, a folder of images (labels "
                                         "from sub-folder names) or an .npz (x or x_test, "
                                         "with y / y_test for accuracy).")],
    top: Annotated[int, typer.Option(help="Classes per image.")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    show: Annotated[int, typer.Option(help="Predictions printed (all go to --json).")] = 10,
) -> None:
    """Top-k classes of a saved model for raw images (and accuracy when labels are known)."""
    from metanas import api

    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    check_output(json_out, "--json")
    res = api.predict(model, images, top=top)
    for i, p in enumerate(res["predictions"][:max(show, 0)]):
        pairs = ", ".join(f"{c} {q:.3f}" for c, q in zip(p["classes"], p["probabilities"],
                                                         strict=True))
        out.print(f"{p['file'] or f'#{i}'}: {pairs}", highlight=False, markup=False)
    line = f"{res['images']} image(s)"
    if "accuracy" in res:
        line += f", top-1 accuracy {res['accuracy']:.4f}"
    out.print(line, highlight=False)
    if json_out:
        write_json(json_out, res)


@app.command("train")
@handles_errors
def train_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d")],
    arch: Annotated[str, typer.Option(help="NATS-Bench architecture string.")],
    recipe: Annotated[str, typer.Option()] = "cpu-proxy",
    seed: Annotated[int, typer.Option()] = 0,
    resolution: Annotated[int | None, typer.Option(help="Input side in px (default: the "
                                                   "recipe's, else 16 or 32).")] = None,
    device: Annotated[str, typer.Option()] = "cpu",
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    save_model: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Train one architecture on a dataset and report its accuracy."""
    from metanas import api

    api.parse_arch(arch)
    check_output(json_out, "--json")
    check_output(save_model, "--save-model")
    result = api.train(dataset, arch, recipe=recipe, seed=seed, resolution=resolution,
                       device=device, progress=True, save_to=save_model)
    d = result.to_dict()
    for k in ("arch", "recipe", "val_acc", "test_acc", "train_loss", "seconds", "params", "macs",
              "device"):
        out.print(f"{k:>10}: {d[k]}", highlight=False, markup=False)
    if json_out:
        write_json(json_out, d)


@app.command("fit")
@handles_errors
def fit_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Builtin name (digits), .npz, "
                                         "ImageFolder directory or .zip.")],
    arch: Annotated[str, typer.Option(help="NATS-Bench architecture string.")],
    budget: Annotated[float, typer.Option(help="Wall-clock seconds for everything (data, "
                                          "probe, training, evaluation, files).")],
    out: Annotated[Path | None, typer.Option(help="Model file to write (its folder must "
                                             "exist); curves go beside it.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON "
                                                  "(curves beside it without --out).")] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Horizontal flips "
                                              "(default: for colour images only).")] = None,
    max_train_per_class: Annotated[int | None, typer.Option(help="Cap labelled images per "
                                                            "class (default: all).")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | auto")] = "cpu",
) -> None:
    """Train an architecture sized to a time budget: probe, pick C/N/epochs, keep the best."""
    from metanas import api

    api.check_budget(budget)
    api.parse_arch(arch)
    api.check_model_path(out, "--out")
    check_output(json_out, "--json")
    result = api.fit(dataset, arch, budget=budget, seed=seed, out=out, curves=json_out,
                     flip=flip, max_train_per_class=max_train_per_class, device=device,
                     progress=True)
    _print_fit(result)
    if json_out:
        write_json(json_out, result.to_dict())


def _print_fit(result) -> None:
    r, s = result.recipe, result.summary
    out.print(f"fit ({result.budget:g} s budget, {result.seconds:.1f} s used): C={r['C']} "
              f"N={r['N']}, {s['epochs_run']}/{s['epochs_planned']} epochs of batch "
              f"{r['batch_size']}, {r['augment']}; best val {result.val_acc:.4f} at epoch "
              f"{s['best_epoch']}, test accuracy {result.test_acc:.4f}",
              highlight=False, markup=False)
    if result.metrics.get("init_val_acc") is not None:
        out.print(f"started from the adapted supernet's weights (inherit): val "
                  f"{result.metrics['init_val_acc']:.4f} before the first step",
                  highlight=False, markup=False)
    for name, path in result.files.items():
        out.print(f"{name}: {path}", highlight=False, markup=False)


@app.command("methods")
@handles_errors
def methods_cmd(
    name: Annotated[str | None, typer.Argument(help="A method: list its --set options and "
                                               "the budget kinds it takes.")] = None,
    json_flag: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The search methods, what they do and what their budget means."""
    if name is not None:
        info = _api().method_options(name)
        if json_flag:
            out.print_json(data=info)
            return
        out.print(f"{info['name']}: {info['summary']}", highlight=False, markup=False)
        kinds = " or ".join(info["budget_kinds"]) or "none"
        out.print(f"budget: {kinds} ({info['budget']})", highlight=False, markup=False)
        table = Table(title=f"{name} options (--set KEY=VALUE)")
        for col in ("option", "type", "default", "what it does"):
            table.add_column(col)
        for o in info["options"]:
            table.add_row(o["name"], o["type"], escape(repr(o["default"])), escape(o["help"]))
        out.print(table)
        return
    if json_flag:
        out.print_json(data=_api().methods())
        return
    table = Table(title="search methods")
    for col in ("method", "meta-learned", "what it does", "budget"):
        table.add_column(col)
    for m in _api().methods():
        table.add_row(m["name"], "yes" if m["meta_learned"] else "no", escape(m["summary"]),
                      escape(m["budget"]))
    out.print(table)


@app.command("meta-train")
@handles_errors
def meta_train_cmd(
    out_path: Annotated[Path, typer.Option("--out", help="Checkpoint to write.")],
    kb: Annotated[Path | None, typer.Option(help="Knowledge base: a file or a shipped name "
                                            "(`metanas kb list`); not for base.")] = None,
    method: Annotated[str, typer.Option()] = "value-net",
    option: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE method option, "
                                                     "repeatable.")] = None,
    loss: Annotated[str | None, typer.Option(help="mse | rank | mse+rank (default rank)")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 100).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    recipe: Annotated[str | None, typer.Option(help="Only evaluations of this recipe.")] = None,
) -> None:
    """Meta-train a method on a knowledge base and write its checkpoint."""
    from metanas import api

    check_output(out_path, "--out")
    options = {**_key_values(option or [], "--set"),
               **_given(loss=loss, epochs=epochs, recipe=recipe)}
    info = api.meta_train(method, kb, out_path, seed=seed, progress=True, **options)
    out.print_json(data=info)


@app.command()
@handles_errors
def validate(
    kb: Annotated[Path, typer.Option(help="Knowledge base (.db).")],
    folds: Annotated[int, typer.Option()] = 5,
    loss: Annotated[str | None, typer.Option(help="mse | rank | mse+rank (default rank)")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 100).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Leave-tasks-out validation of the value network (Spearman / Kendall per held-out task).

    Needs at least 3 evaluated cells per task."""
    from metanas import api

    check_output(json_out, "--json")
    report = api.validate_value_net(kb, folds=folds, seed=seed,
                                    **_given(loss=loss, epochs=epochs))
    table = Table(title=f"value-net leave-tasks-out ({report['tasks']} tasks, "
                        f"{report['folds']} folds)")
    table.add_column("model")
    for label in ("spearman", "kendall", "top-1 regret (points)"):
        table.add_column(f"{label} mean", justify="right")
        table.add_column("median", justify="right")
    for name in ("task_aware", "task_agnostic"):
        s = report[name]
        # the regret is a fraction of accuracy in the report; points (x100) as in the docs
        table.add_row(name, *(f"{s[f'{m}_{a}'] * scale:.3f}"
                              for m, scale in (("spearman", 1), ("kendall", 1),
                                               ("top1_regret", 100))
                              for a in ("mean", "median")))
    out.print(table)
    if json_out:
        write_json(json_out, report)


@app.command("bench")
@handles_errors
def bench_cmd(
    datasets: Annotated[str, typer.Option(help="Comma-separated datasets: builtin names "
                                          "(digits), .npz, ImageFolder folders or .zip; "
                                          "PATH.npz[class_split=N] keeps one split's classes.")],
    methods: Annotated[str, typer.Option(help="Comma-separated methods (`metanas methods`).")],
    budget: Annotated[float | None, typer.Option(help="Search budget in seconds, for the "
                                                 "methods whose budget semantics take one.")
                      ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds 0..K-1 for every search and training.")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Results folder (resumable).")
                       ] = Path("metanas-bench"),
    recipe: Annotated[str, typer.Option(help="Recipe of the final training (and of the "
                                        "candidates trained during search).")] = "cpu-proxy",
    lookup: Annotated[list[str] | None, typer.Option(help="TABLE.csv:COLUMN=DATASET: add the "
                                                     "published accuracy of each pick, "
                                                     "repeatable.")] = None,
    max_train_per_class: Annotated[int, typer.Option(help="Labelled images per class (0 = "
                                                     "all).")] = 500,
    checkpoint: Annotated[list[str] | None, typer.Option(help="METHOD=PATH: a meta-learned "
                                                         "method's checkpoint, repeatable.")
                          ] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | auto")] = "cpu",
    option: Annotated[list[str] | None, typer.Option("--set", help="METHOD:KEY=VALUE search "
                                                     "option of one method, repeatable.")
                      ] = None,
) -> None:
    """Benchmark methods x datasets x seeds: search, train every pick alike, tabulate, plot."""
    from metanas import api

    options: dict[str, dict[str, Any]] = {}
    for item in option or []:
        name, sep, pair = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--set must look like METHOD:KEY=VALUE, got {item!r}")
        options.setdefault(name.strip(), {}).update(_key_values([pair], "--set METHOD:"))
    checkpoints = {}
    for item in checkpoint or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--checkpoint must look like METHOD=PATH, got {item!r}")
        checkpoints[name.strip()] = path.strip()
    report = api.bench(
        datasets.split(","), methods.split(","), budget=budget, seeds=seeds, out=out_dir,
        recipe=recipe, lookups=lookup or [], max_train_per_class=max_train_per_class or None,
        checkpoints=checkpoints, options=options, device=device, progress=True,
    )
    table = Table(title=f"bench: {report.computed} cell(s) computed, "
                        f"{len(report.rows) - report.computed} reused")
    for col in ("dataset", "method", "test acc", *report.lookups, "search s", "total s", "rank"):
        table.add_column(col)
    for s in report.summary:
        rank = "-" if s["pick_rank"] is None else f"{s['pick_rank']:.1f}/{s['pool_size']:.0f}"
        pub = [("-" if s["published"].get(lb) is None else f"{s['published'][lb]:.3f}")
               for lb in report.lookups]
        table.add_row(s["dataset"], s["method"],
                      f"{s['test_acc_mean']:.3f} ± {s['test_acc_std']:.3f}", *pub,
                      f"{s['search_seconds']:.1f}", f"{s['total_seconds']:.1f}", rank)
    out.print(table)
    for kind, path in report.files.items():
        out.print(f"{kind}: {path}", highlight=False, markup=False)


@app.command("zero-cost")
@handles_errors
def zero_cost_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Builtin name (digits), .npz, "
                                         "ImageFolder directory or .zip.")],
    arch: Annotated[list[str] | None, typer.Option("--arch", help="NB201 cell (NATS-Bench "
                                                   "string), repeatable.")] = None,
    sample: Annotated[int | None, typer.Option(help="Score N seeded random distinct cells "
                                               "instead of --arch.")] = None,
    proxies: Annotated[str | None, typer.Option(help="Comma-separated proxies (default: all): "
                                                "nwot, synflow, snip, grad_norm, jacov, fisher, "
                                                "grasp, zico, meco, params, flops.")] = None,
    C: Annotated[int, typer.Option("--C", help="Network width (NB201: 16).")] = 16,
    N: Annotated[int, typer.Option("--N", help="Cells per stage (NB201: 5).")] = 5,
    resolution: Annotated[int | None, typer.Option(help="Image size in px (default: the "
                                                   "dataset's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images in the scored batch.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the batch, the init and --sample.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")] = None,
) -> None:
    """Score NB201 cells with training-free zero-cost proxies on a dataset (higher is better)."""
    api = _api()
    if (not arch) == (sample is None):
        raise ConfigError("give --arch (repeatable) or --sample N, not both")
    check_output(json_out, "--json")
    result = api.zero_cost(dataset, archs=arch or None, sample=sample, proxies=proxies, C=C,
                           N=N, resolution=resolution, batch_size=batch_size, seed=seed,
                           progress=True)
    cfg = result["config"]
    table = Table(title=f"zero-cost proxies on {result['task']['name']} (C={cfg['C']}, "
                        f"N={cfg['N']}, {cfg['resolution']} px, batch {cfg['batch_size']}, "
                        f"seed {cfg['seed']}; higher is better)")
    # an architecture takes up to 96 characters: beside many proxies it goes below the table
    widest = max(len(c["arch"]) for c in result["cells"])
    inline = widest + 4 + sum(max(len(p), 9) + 3 for p in result["proxies"]) + 8 <= out.width
    table.add_column("architecture" if inline else "#", no_wrap=True)
    for p in result["proxies"]:
        table.add_column(p, justify="right")
    table.add_column("s", justify="right")
    for i, cell in enumerate(result["cells"], 1):
        table.add_row(cell["arch"] if inline else str(i),
                      *(f"{cell['scores'][p]:.4g}" for p in result["proxies"]),
                      f"{cell['seconds_total']:.2f}")
    out.print(table)
    if not inline:
        for i, cell in enumerate(result["cells"], 1):
            out.print(f"{i:>3}  {cell['arch']}", highlight=False, markup=False, soft_wrap=True)
    flagged = [c for c in result["cells"] if c["nonfinite"]]
    if flagged:
        out.print(f"{len(flagged)} cell(s) with a score that could not be computed (-inf, ranks "
                  "last): no path from input to output or a numeric failure", highlight=False)
    out.print(f"zero-cost: {result['seconds']:.2f} s for {len(result['cells'])} cell(s)",
              highlight=False)
    if json_out:
        write_json(json_out, result)


# ----- information ----------------------------------------------------------------------------
@space_app.command("info")
@handles_errors
def space_info(
    space: Annotated[str, typer.Argument(help="Search space name.")] = "nb201",
    json_flag: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sizes, ops, edge order and the unique-cell counts of a search space."""
    info = _api().space_info(space)
    if json_flag:
        out.print_json(data=info)
        return
    for k, v in info.items():
        out.print(f"[bold]{k}[/]: {v}", highlight=False)


@app.command()
@handles_errors
def datasets(json_flag: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What metanas can load: builtin datasets, file formats, and datasets found nearby."""
    info = _api().datasets()
    if json_flag:
        out.print_json(data=info)
        return
    table = Table(title="datasets")
    table.add_column("name / format")
    table.add_column("kind")
    table.add_column("details")
    for row in info:
        name = str(row.get("name", row.get("format", "")))
        kind = str(row.get("kind", ""))
        rest = {k: v for k, v in row.items() if k not in ("name", "kind", "format")}
        table.add_row(escape(name), kind, escape("; ".join(f"{k}: {v}" for k, v in rest.items())))
    out.print(table)


# ----- knowledge base -------------------------------------------------------------------------
def _csv_ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name} is empty")
    return values


@kb_app.command("build")
@handles_errors
def kb_build(
    source: Annotated[str, typer.Option(help="Dataset to draw tasks from (path or name).")],
    kb: Annotated[Path, typer.Option(help="Knowledge base file (created or resumed).")],
    tasks: Annotated[int, typer.Option(help="Number of tasks.")] = 10,
    archs: Annotated[int, typer.Option(help="Architectures per task.")] = 20,
    anchors: Annotated[int | None, typer.Option(help="Architectures shared by all tasks "
                                                "(default: 8, at most --archs).")] = None,
    n_way: Annotated[str, typer.Option(help="Classes per task (comma list to vary).")] = "10",
    resolutions: Annotated[str, typer.Option(help="Task resolutions in px.")] = "16,32",
    train_per_class: Annotated[str, typer.Option(help="Per-class caps on labelled images "
                                                 "(comma list, 0 = all).")] = "0",
    recipe: Annotated[str, typer.Option()] = "cpu-proxy",
    seeds: Annotated[str, typer.Option(help="Training seeds per evaluation.")] = "0",
    seed: Annotated[int, typer.Option(help="Plan seed (tasks and architectures).")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel workers (with --ray-address: the "
                                         "cluster gets 2x this many evaluations at a time).")
                       ] = 1,
    executor: Annotated[str, typer.Option(help="local (in this process) | process (a pool of "
                                          "processes) | ray (Ray tasks; needs the ray extra)."
                                          )] = "process",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join (auto, "
                                                    "ray://host:10001); default: start a "
                                                    "local Ray instance.")] = None,
    device: Annotated[str, typer.Option()] = "cpu",
    limit: Annotated[int | None, typer.Option(help="Train at most this many now.")] = None,
    elite: Annotated[int, typer.Option(help="Per task: cells near an elite cell (needs "
                                       "--elite-from).")] = 0,
    elite_from: Annotated[Path | None, typer.Option(help="Knowledge base whose best cells "
                                                   "(mean per-task z-score) are the elite.")
                          ] = None,
    elite_top: Annotated[int, typer.Option(help="How many of its best cells.")] = 20,
    batch_archs: Annotated[int, typer.Option(help="Train up to this many architectures of a "
                                             "task at once as one grouped model (for a GPU; "
                                             "slower on a CPU).")] = 1,
) -> None:
    """Sample tasks x architectures, train them, store the results (resumable)."""
    report = _api().kb_build(
        kb, source, tasks=tasks, archs=archs, anchors=anchors, n_way=_csv_ints(n_way, "--n-way"),
        resolutions=_csv_ints(resolutions, "--resolutions"),
        train_per_class=tuple(c or None for c in _csv_ints(train_per_class,
                                                           "--train-per-class")),
        recipe=recipe, seeds=_csv_ints(seeds, "--seeds"), seed=seed, workers=workers,
        executor=executor, ray_address=ray_address, device=device, limit=limit, elite=elite,
        elite_from=elite_from, elite_top=elite_top, batch_archs=batch_archs, progress=True)
    out.print_json(data=report)
    if report["failed"]:
        raise typer.Exit(1)


@kb_app.command("import-table")
@handles_errors
def kb_import_table(
    csv_path: Annotated[Path, typer.Argument(help="CSV with an NB201 architecture column.")],
    kb: Annotated[Path, typer.Option(help="Knowledge base file.")],
    dataset: Annotated[str, typer.Option(help="Dataset the table's numbers are for.")],
    arch_column: Annotated[str | None, typer.Option(help="Architecture column (auto).")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="KB_METRIC=COLUMN, repeatable "
                                                     "(auto-detected when omitted).")] = None,
) -> None:
    """Import a published table (e.g. a NATS-Bench export) as evaluations of a dataset."""
    mapping = None
    if metric:
        mapping = {}
        for item in metric:
            name, sep, column = item.partition("=")
            if not sep:
                raise ConfigError(f"--metric must look like test_acc=COLUMN, got {item!r}")
            mapping[name.strip()] = column.strip()
    summary = _api().kb_import_table(csv_path, kb, dataset=dataset, arch_column=arch_column,
                                     metric_columns=mapping)
    out.print_json(data=summary)


@kb_app.command("import-source")
@handles_errors
def kb_import_source(
    name: Annotated[str, typer.Argument(help="Published source: nb201-imagenet16-120 or "
                                        "metad2a-imagenet32 (docs/knowledge_base.md).")],
    kb: Annotated[Path, typer.Option(help="Knowledge base file (created or resumed).")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help="The source's CSV (default: "
                                                  "../shared/datasets/knowledge/).")] = None,
    standin: Annotated[str | None, typer.Option(help="Dataset standing in for the source's "
                                                "missing images (default: the shared "
                                                "Tiny-ImageNet zip).")] = None,
    no_features: Annotated[bool, typer.Option("--no-features", help="Skip the stand-in "
                                              "meta-features.")] = False,
) -> None:
    """Import a published high-fidelity source with its provenance and fidelity (resumable)."""
    summary = _api().import_source(name, kb, csv=csv_path, standin=standin,
                                describe=not no_features, progress=True)
    out.print_json(data=summary)


@kb_app.command("merge")
@handles_errors
def kb_merge(
    sources: Annotated[list[str], typer.Argument(help="Knowledge bases to copy in (files or "
                                                  "shipped names).")],
    kb: Annotated[Path, typer.Option(help="Knowledge base file to merge into (created or "
                                     "resumed).")],
) -> None:
    """Merge knowledge bases into one file (tasks, recipes, evaluations; repeats skipped)."""
    out.print_json(data=_api().kb_merge(kb, sources))


@kb_app.command("list")
@handles_errors
def kb_list() -> None:
    """The knowledge bases shipped with metanas (use their names as --kb)."""
    data = _api().kb_list()
    table = Table(title="shipped knowledge bases")
    for col in ("name", "tasks", "architectures", "evaluations", "compressed", "description"):
        table.add_column(col)
    for name, e in sorted(data["entries"].items()):
        label = f"{name} (default)" if name == data.get("default") else name
        table.add_row(label, str(e["tasks"]), str(e["architectures"]), str(e["evaluations"]),
                      f"{e['bytes'] / 1e6:.2f} MB", escape(e.get("description", "")))
        for source, n in sorted((e.get("sources") or {}).items()):
            table.add_row(f"  {escape(source)}", str(n["tasks"]), "", str(n["evaluations"]),
                          "", "")
    out.print(table)


@kb_app.command("stats")
@handles_errors
def kb_stats_cmd(
    kb: Annotated[Path, typer.Argument(help="Knowledge base file.")],
    json_flag: Annotated[bool, typer.Option("--json")] = False,
    max_tasks: Annotated[int, typer.Option(help="Rows in the per-task table.")] = 30,
) -> None:
    """Counts and per-task accuracy spread."""
    from metanas.cli.display import format_stats

    if max_tasks < 0:
        raise ConfigError(f"--max-tasks must be >= 0, got {max_tasks}")
    stats = _api().kb_stats(kb)
    if json_flag:
        out.print_json(data=stats)
        return
    for table in format_stats(stats, max_tasks=max_tasks):
        _print_unwrapped_architectures(table)


def _print_unwrapped_architectures(table: Table) -> None:
    """Print a table whose architecture columns stay on one line per cell: wider than the
    console if need be (the terminal then wraps whole lines, the strings stay copyable)."""
    arch_columns = [c for c in table.columns if "architecture" in str(c.header).lower()]
    for column in arch_columns:
        column.no_wrap, column.overflow = True, "ignore"
    width = out.width
    if arch_columns:
        width = max(width, table.__rich_measure__(out, out.options.update(width=10_000)).maximum)
    Console(width=width, stderr=False).print(table)


@kb_app.command("export")
@handles_errors
def kb_export(
    kb: Annotated[Path, typer.Argument(help="Knowledge base file.")],
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV file to write.")],
) -> None:
    """Export every evaluation (joined with its task and architecture) as CSV."""
    n = _api().kb_export(kb, csv_path)
    out.print(f"wrote {n} evaluations to {csv_path}", highlight=False)


def main() -> None:
    """Run the CLI; a command line that does not parse (unknown option, a value of the wrong
    type) is one line on stderr and exit code 2, like every other user error, not Typer's
    usage box."""
    # typer >= 0.2x carries its own copy of click; older ones use click itself
    click = getattr(typer.core, "_click", None) or __import__("click")
    try:
        code = app(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `metanas` / `metanas kb`: help
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) is not None else ""
        message = " ".join(exc.format_message().split())
        if len(message) > 300:
            message = message[:300] + "..."
        err.print(f"[bold red]error:[/] {escape(where + message)}", highlight=False,
                  soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
