"""`edge-opt fuzz PASS_OR_PIPELINE`: random models against the interpreter.

    edge-opt fuzz canonicalize,cse                       # 500 random models, seed 0
    edge-opt fuzz my-pass --load-plugin my_passes.py --ops linear,add --examples 2000
    edge-opt fuzz my-pass --train                        # on @train_step after train-full
    edge-opt fuzz my-pass --workers 4                    # 4 processes, seeds S..S+3
    edge-opt fuzz my-pass --dask tcp://scheduler:8786    # the same on a Dask cluster
    edge-opt fuzz my-pass --replay fuzz-repro/repro.mlir # rerun a reproducer
    edge-opt fuzz --backend c 'train-full{loss=mse}'     # the C backend against the
    edge-opt fuzz --backend c infer --sanitize           # interpreter (ASan/UBSan)
    edge-opt fuzz --gradients 'train-full{accumulate=2}' # gradients vs finite differences

The campaign (`edge_opt.testing.campaign`) checks that the pass keeps the meaning of
`@forward` (with `--train`, of `@train_step`) on each model. Before it, a probe finds
the ops the pass acts on, which half of the models then favour. On a failure
hypothesis shrinks the model, the reducer removes what it can, and the command writes
`DIR/repro.mlir` (its parameters inline, or in `repro.npz` beside it as for any model)
and the inputs `DIR/repro_input.npz`, prints the failure and the command that replays
it, and exits with status 1.

With `--gradients`, the property is `gradient_property` (`edge_opt.testing.gradients`):
the training step the pipeline builds (its `autodiff` as SGD with lr=1) must move each
parameter by minus the central finite difference of its loss, on f64 models: an oracle
for the training step itself, which `--train` (the same step before and after a pass)
does not have.

With `--backend c`, the property is `c_backend_property` (Csmith-style differential
testing, `edge_opt.testing.c_differential`): each model goes through the pipeline and
`--emit c`, the project is built with the host compiler and run, and its loss (or
outputs) and parameters must agree with the interpreter's. A model the pipeline or the
backend refuses is rejected (not an example). A failure's reproducer is a directory
(`write_c_reproducer`: model, inputs, C project) that
`python -m edge_opt.testing.c_differential DIR` replays.

Shards of a campaign (`--workers`, `--dask`) get the seeds S, S+1, ... and split the
examples; each loads the plugins again. The first failure stops the others.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from xdsl.utils.exceptions import PassFailedException

from edge_opt.ir import model_io
from edge_opt.ir.session import get_function, input_names
from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.errors import UserError
from edge_opt.testing.c_differential import (
    DEFAULT_PIPELINE,
    RuntimeMutation,
    c_backend_property,
    replay_command,
    write_c_reproducer,
)
from edge_opt.testing.campaign import (
    TRAIN_PIPELINE,
    Campaign,
    CampaignResult,
    Failure,
    Property,
    equivalence_property,
    failure_message,
    pass_changes,
    replay,
    run_campaign,
    touched_ops,
)
from edge_opt.testing.generators import active_generators
from edge_opt.testing.gradients import gradient_property
from edge_opt.tools.commands import add_plugin_argument
from edge_opt.tools.plugins import active_registry, load_plugins

PROG = "edge-opt fuzz"

DEFAULT_EXAMPLES = {"interpreter": 500, "c": 100}
"""Models per campaign: 500 interpreted (calibrated with bench/mutation.py, see
docs/plugins-and-fuzzing.md), 100 through the C backend (each builds a project)."""

GRADIENT_PIPELINE = "train-full{loss=mse}"
"""The pipeline of `--gradients` without one."""

DEFAULT_MAX_OPS = {"interpreter": 8, "c": 4}
"""Drawn ops per model: a C check builds and runs a project, so its models are
smaller."""

Backend = Literal["interpreter", "c"]


@dataclass(frozen=True)
class CBackendCheck:
    """How `--backend c` checks each model: `steps` steps, the sanitizer build or not,
    and a planted bug in the C runtime (Python API only, for mutation testing of the
    kernels; it travels into the reproducer)."""

    steps: int = 1
    sanitize: bool = False
    runtime_patch: RuntimeMutation | None = None


@dataclass(frozen=True)
class FuzzJob:
    """One shard of a campaign, as sent to a worker process or a Dask worker. With
    `c_backend`, `target` is the pipeline before the C backend."""

    target: str
    campaign: Campaign
    train_pipeline: str | None
    plugin_files: tuple[str, ...] = ()
    c_backend: CBackendCheck | None = None
    gradients: bool = False
    """Check the gradients of the training step `target` builds (`--gradients`)."""

    def check(self) -> Property:
        if self.gradients:
            return gradient_property(self.target)
        if self.c_backend is not None:
            c = self.c_backend
            return c_backend_property(self.target, steps=c.steps, sanitize=c.sanitize,
                                      runtime_patch=c.runtime_patch)
        return equivalence_property(self.target, self.train_pipeline)


def run_job(job: FuzzJob, progress: Callable[[str], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> CampaignResult:
    """Runs a shard with the plugins that are active."""
    return run_campaign(job.campaign, job.check(), progress, should_stop)


def run_job_with_plugins(job: FuzzJob, progress: Callable[[str], None] | None = None,
                         should_stop: Callable[[], bool] | None = None) -> CampaignResult:
    """Runs a shard in a fresh process or a Dask worker: loads the plugins first."""
    with load_plugins(job.plugin_files).activated():
        return run_job(job, progress, should_stop)


# --------------------------------------------------------------------------------------
# Shards: in this process, in worker processes, on a Dask cluster
# --------------------------------------------------------------------------------------

Report = Callable[[str], None]
"""Called with "example" or "shrink" for each model a shard checks."""


def shards(job: FuzzJob, count: int) -> list[FuzzJob]:
    """`count` jobs with seeds S, S+1, ... splitting the examples (none empty)."""
    examples, seed = job.campaign.examples, job.campaign.seed
    count = max(1, min(count, examples))
    return [
        replace(job, campaign=replace(
            job.campaign, seed=seed + i, examples=examples // count + (i < examples % count)
        ))
        for i in range(count)
    ]


def run_local(job: FuzzJob, report: Report) -> CampaignResult:
    return run_job(job, report)


_WORKER_EVENTS: multiprocessing.Queue | None = None
_WORKER_STOP = None
"""Set in worker processes only (by `_start_worker`): where progress goes, and the
flag another shard's failure sets."""


def _start_worker(events: multiprocessing.Queue, stop) -> None:
    global _WORKER_EVENTS, _WORKER_STOP
    _WORKER_EVENTS, _WORKER_STOP = events, stop


def _worker_job(job: FuzzJob) -> CampaignResult:
    events, stop = _WORKER_EVENTS, _WORKER_STOP
    assert events is not None and stop is not None
    return run_job_with_plugins(job, events.put, stop.is_set)


def run_processes(jobs: Sequence[FuzzJob], report: Report) -> CampaignResult:
    """Each job in its own process; the first failure stops the others. The
    processes fork from a server that has imported edge-opt once (not from this
    process, whose threads a fork would not copy)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    events, stop = context.Queue(), context.Event()
    total = CampaignResult()
    with ProcessPoolExecutor(len(jobs), mp_context=context, initializer=_start_worker,
                             initargs=(events, stop)) as pool:
        pending = {pool.submit(_worker_job, job) for job in jobs}
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            _drain(events, report)
            for future in done:
                result = future.result()
                total.merge(result)
                if result.failure is not None:
                    stop.set()
        _drain(events, report)
    return total


def _drain(events: multiprocessing.Queue, report: Report) -> None:
    while True:
        try:
            report(events.get_nowait())
        except queue.Empty:
            return


# `distributed` is imported where it is used, like matplotlib in ir/memory_report.py:
# at module level it would add 0.6 s to every edge-opt command.


def _dask_job(job: FuzzJob, stop_name: str) -> CampaignResult:
    from distributed import Event

    stop = Event(stop_name)
    return run_job_with_plugins(job, None, stop.is_set)


def run_dask(address: str, jobs: Sequence[FuzzJob], report: Report) -> CampaignResult:
    """Each job as a task on the Dask cluster at `address`; the first failure sets a
    cluster-wide event that the others poll."""
    from distributed import Client, Event, as_completed

    try:
        client = Client(address, timeout=10)
    except OSError as e:
        raise UserError(f"--dask {address}: cannot reach the scheduler ({e})") from None
    total = CampaignResult()
    with client:
        stop = Event(f"edge-opt-fuzz-{uuid.uuid4().hex}", client=client)
        futures = [client.submit(_dask_job, job, stop.name, pure=False) for job in jobs]
        for future in as_completed(futures):
            result = future.result()
            for _ in range(result.examples):
                report("example")
            total.merge(result)
            if result.failure is not None:
                stop.set()
    return total


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check that a pass or pipeline keeps the meaning of random models "
        "(interpreted before and after it); on a failure, write a small reproducer.",
    )
    parser.add_argument("target", nargs="?", metavar="PASS_OR_PIPELINE",
                        help="a pass pipeline: 'canonicalize,cse', 'my-pass{opt=1}', "
                        "a named pipeline; with --backend c, the pipeline before the "
                        f"C backend (default '{DEFAULT_PIPELINE}')")
    parser.add_argument("--backend", choices=("interpreter", "c"), default="interpreter",
                        help="interpreter: the pass must keep the meaning of the models "
                        "(default); c: the C project of each model after the pipeline "
                        "must compute what the interpreter computes")
    parser.add_argument("--examples", type=int, metavar="N",
                        help="random models to check (default "
                        f"{DEFAULT_EXAMPLES['interpreter']}; "
                        f"{DEFAULT_EXAMPLES['c']} with --backend c)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="the campaign's seed (default 0; shard i uses S+i)")
    parser.add_argument("--ops", metavar="A,B,...",
                        help="the ops to draw (default all; see --list-ops)")
    parser.add_argument("--max-ops", type=int, metavar="M",
                        help="at most M drawn ops per model (default 8; 4 with "
                        "--backend c)")
    parser.add_argument("--batch", metavar="N,M,...",
                        help="the batch sizes of the drawn models' inputs (default 1,2; "
                        "accumulate=k needs a multiple of k)")
    parser.add_argument("--trainable", choices=("mixed", "all", "none"),
                        help="which parameters of the drawn models are trainable: a "
                        "random flag each (mixed, the default), all, or none (frozen "
                        "models, for passes that act on frozen layers); --train, "
                        "--gradients and --backend c train all of them")
    parser.add_argument("--train", action="store_true",
                        help="check @train_step: apply the training pipeline first, then "
                        "the pass; both steps run on the same inputs and labels")
    parser.add_argument("--train-pipeline", default=TRAIN_PIPELINE, metavar="SPEC",
                        help=f"the training pipeline of --train (default {TRAIN_PIPELINE})")
    parser.add_argument("--gradients", action="store_true",
                        help="check the gradients of the training step that the pipeline "
                        "builds against finite differences of its loss (f64 models; "
                        f"default pipeline '{GRADIENT_PIPELINE}')")
    parser.add_argument("--sanitize", action="store_true",
                        help="with --backend c: build with -fsanitize=address,undefined; "
                        "any report fails")
    parser.add_argument("--steps", type=int, default=1, metavar="N",
                        help="with --backend c: run N steps and compare after each "
                        "(default 1)")
    parser.add_argument("--no-focus", action="store_true",
                        help="do not favour the ops the pass acts on (skips the probe)")
    parser.add_argument("--workers", type=int, default=1, metavar="K",
                        help="K processes with seeds S..S+K-1 splitting the examples")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run the shards on the Dask cluster at ADDRESS "
                        "(tcp://host:8786)")
    parser.add_argument("--out", default="fuzz-repro", metavar="DIR",
                        help="where a failure's reproducer goes (default fuzz-repro)")
    parser.add_argument("--replay", metavar="MLIR",
                        help="check the pass on this reproducer only (inputs: the "
                        "_input.npz beside it, or --input)")
    parser.add_argument("--input", metavar="NPZ", help="with --replay: the inputs")
    parser.add_argument("--list-ops", action="store_true",
                        help="list the ops --ops accepts (plugins' included)")
    add_plugin_argument(parser)
    return parser


def fuzz_command(argv: Sequence[str], *,
                 runtime_patch: RuntimeMutation | None = None) -> int:
    """`edge-opt fuzz ARGV`; returns the exit status. `runtime_patch` (Python only,
    with `--backend c`) plants a bug in the C runtime of every project: mutation
    testing of the kernels, replayed by the reproducer too."""
    args = _parser().parse_args(argv)
    if args.list_ops:
        print("\n".join(active_generators()))
        return 0
    c_backend = args.backend == "c"
    if runtime_patch is not None and not c_backend:
        raise ValueError("runtime_patch plants a bug in the C runtime: give --backend c")
    if args.target is None:
        if not (c_backend or args.gradients):
            raise UserError("fuzz: give the pass or pipeline to fuzz, e.g. "
                            "edge-opt fuzz canonicalize,cse")
        args.target = DEFAULT_PIPELINE if c_backend else GRADIENT_PIPELINE
    if args.max_ops is None:
        args.max_ops = DEFAULT_MAX_OPS[args.backend]
    if args.examples is None:
        args.examples = DEFAULT_EXAMPLES[args.backend]
    _check_options(args)
    parse_pipeline(args.target)  # unknown names and bad options, before any work
    train = args.train_pipeline if args.train else None
    if train is not None:
        parse_pipeline(train)
    if args.replay is not None:
        return _replay(args, train)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a directory")
    job = _job(args, train, CBackendCheck(args.steps, args.sanitize, runtime_patch)
               if c_backend else None)
    job.check()  # a --gradients pipeline without autodiff, before any work
    jobs = shards(job, args.workers)
    with _ProgressBar(args.examples) as bar:
        started = time.perf_counter()
        if args.dask is not None:
            result = run_dask(args.dask, jobs, bar.report)
        elif len(jobs) > 1:
            result = run_processes(jobs, bar.report)
        else:
            result = run_local(jobs[0], bar.report)
        seconds = time.perf_counter() - started
    _print_summary(args, job, len(jobs), result, seconds)
    if result.failure is None:
        return 0
    if job.c_backend is not None:
        _report_c_failure(job, result, out)
    else:
        _report_failure(argv, result, out)
    return 1


def _job(args: argparse.Namespace, train: str | None,
         c_backend: CBackendCheck | None) -> FuzzJob:
    """The whole campaign as one job (with its focus, for a pass)."""
    registry = active_registry()
    # A C check trains every parameter: models get one (see Campaign.training) when
    # the pipeline differentiates.
    gradients = args.gradients
    training = (train is not None or gradients
                or (c_backend is not None and _trains(args.target)))
    job = FuzzJob(
        args.target,
        Campaign(args.examples, args.seed, _ops(args.ops), args.max_ops,
                 trainable=("all" if c_backend or gradients
                            else args.trainable or "mixed"),
                 dtype="f64" if gradients else "f32", batch=_batch(args.batch),
                 training=training),
        train,
        # Absolute: worker processes and Dask workers may start elsewhere.
        tuple(str(Path(f).resolve()) for f in registry.files) if registry else (),
        c_backend,
        gradients,
    )
    if args.no_focus or c_backend is not None or gradients:
        return job
    return replace(job, campaign=replace(job.campaign, focus=_focus(job)))


def _trains(pipeline: str) -> bool:
    """Whether `pipeline` builds a training step (runs `autodiff`)."""
    return any(isinstance(p, AutodiffPass) for p in expand(parse_pipeline(pipeline)))


def _check_options(args: argparse.Namespace) -> None:
    for option, value in (("--examples", args.examples), ("--max-ops", args.max_ops),
                          ("--workers", args.workers)):
        if value < 1:
            raise UserError(f"{option} must be at least 1, got {value}")
    if args.train_pipeline != TRAIN_PIPELINE and not args.train:
        raise UserError("--train-pipeline only takes effect with --train: add --train")
    _batch(args.batch)
    if args.batch is not None and args.replay is not None:
        raise UserError("--batch only takes effect on drawn models: drop it with --replay")
    if args.input is not None and args.replay is None:
        raise UserError("--input only takes effect with --replay: add --replay MLIR")
    if args.trainable is not None and (args.train or args.gradients or args.backend == "c"):
        raise UserError("--trainable only takes effect on @forward: --train, --gradients "
                        "and --backend c make every parameter trainable")
    if args.gradients and (args.backend == "c" or args.train
                           or args.train_pipeline != TRAIN_PIPELINE):
        raise UserError("--gradients checks the training step of the pipeline it is "
                        "given: drop --backend c, --train and --train-pipeline")
    if args.backend == "c":
        _check_c_options(args)
    else:
        for option, given in (("--sanitize", args.sanitize), ("--steps", args.steps != 1)):
            if given:
                raise UserError(f"{option} only takes effect with --backend c: add "
                                "--backend c")


def _check_c_options(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    if args.train or args.train_pipeline != TRAIN_PIPELINE:
        raise UserError("--backend c checks the pipeline it is given: write the "
                        "training pipeline as PIPELINE instead of --train "
                        "(edge-opt fuzz --backend c 'train-full{loss=mse}')")
    if args.replay is not None or args.input is not None:
        raise UserError("--backend c writes a reproducer directory; replay it with "
                        "python -m edge_opt.testing.c_differential DIR")
    if args.no_focus:
        raise UserError("--no-focus has no effect with --backend c (it has no probe)")


def _batch(text: str | None) -> tuple[int, ...]:
    if text is None:
        return Campaign.batch
    try:
        sizes = tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        raise UserError(f"--batch {text}: give batch sizes as integers, e.g. --batch "
                        "2,4") from None
    if not sizes or min(sizes) < 1:
        raise UserError(f"--batch {text}: give at least one batch size, each at least 1")
    return sizes


def _ops(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = active_generators()
    for name in names:
        if name not in known:
            raise UserError(f"--ops: unknown op '{name}' (edge-opt fuzz --list-ops "
                            "lists the ops; a plugin op needs its --load-plugin)")
    if not names:
        raise UserError("--ops: give at least one op name")
    return names


def _focus(job: FuzzJob) -> tuple[str, ...]:
    """The ops the pass acts on, when they are at most a quarter of the ops drawn
    (a pass that acts on most ops gains nothing from a focus)."""
    names = job.campaign.ops or tuple(active_generators())
    if len(names) < 4:
        return ()
    touched = touched_ops(pass_changes(job.target, job.train_pipeline), job.campaign)
    return touched if len(touched) <= len(names) // 4 else ()



class _ProgressBar:
    """A progress bar on stderr when it is a terminal (nothing otherwise)."""

    def __init__(self, total: int):
        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task("fuzzing", total=total)
        self._shrinks = 0

    def __enter__(self) -> Self:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def report(self, event: str) -> None:
        if event == "example":
            self._progress.advance(self._task)
        else:
            self._shrinks += 1
            self._progress.update(self._task,
                                  description=f"shrinking ({self._shrinks} steps)")


def _print_summary(args: argparse.Namespace, job: FuzzJob, shard_count: int,
                   result: CampaignResult, seconds: float) -> None:
    # The shards' own time: without starting processes, shrinking and reducing.
    searching = result.search_seconds or seconds
    rate = result.examples / searching if searching > 0 else 0.0
    where = (f"{shard_count} Dask tasks" if args.dask is not None else
             f"{shard_count} worker{'s' if shard_count > 1 else ''}")
    if job.c_backend is not None:
        function = "@train_step" if job.campaign.training else "@forward"
        sanitized = ", sanitized" if job.c_backend.sanitize else ""
        what = (f"--backend c {args.target} (C vs interpreter, {function}, "
                f"{_count(job.c_backend.steps, 'step')}{sanitized})")
    elif job.gradients:
        what = f"--gradients {args.target} (@train_step against finite differences, f64)"
    else:
        what = f"{args.target} ({'@train_step' if job.train_pipeline else '@forward'})"
    print(f"{PROG} {what}: {_count(result.examples, 'example')} in "
          f"{searching:.1f} s ({rate:.1f} examples/s), seed {args.seed}, {where}")
    if result.refused:
        print(f"  refused: {result.refused} models (a pass precondition, "
              "PassFailedException)")
    if result.rejected:
        print(f"  rejected: {_count(result.rejected, 'more model')} that the pipeline or "
              "the C backend refused (nothing to train, a plan that does not fit)")
    if job.campaign.focus:
        print(f"  focus: the pass acts on {', '.join(job.campaign.focus)}; half of the "
              "models favour them")
    counts = sorted(result.op_counts.items(), key=lambda item: (-item[1], item[0]))
    print(f"  ops covered ({len(counts)} kinds): "
          + ", ".join(f"{name} {count}" for name, count in counts))
    requested = job.campaign.ops or tuple(active_generators())
    unseen = [n for n in requested
              if n not in result.op_counts and f"nn.{n}" not in result.op_counts]
    if unseen and result.failure is None:
        print(f"  never drawn: {', '.join(unseen)}")


def _report_failure(argv: Sequence[str],
                    result: CampaignResult, out: Path) -> None:
    failure = result.failure
    assert failure is not None
    mlir, inputs = _write_reproducer(failure, out)
    print(f"FAILED after {_count(result.examples, 'example')} (shrunk in "
          f"{_count(result.shrink_steps, 'step')}, then reduced to "
          f"{_count(failure.op_count, 'op')} in @forward):")
    print(failure.message)
    print(f"reproducer: {mlir} and its inputs {inputs}")
    print(f"replay: {_replay_command(argv, mlir)}")


def _report_c_failure(job: FuzzJob, result: CampaignResult, out: Path) -> None:
    failure = result.failure
    assert failure is not None and job.c_backend is not None
    c = job.c_backend
    print(f"FAILED after {_count(result.examples, 'example')} (shrunk in "
          f"{_count(result.shrink_steps, 'step')}, then reduced to "
          f"{_count(failure.op_count, 'op')} in @forward):")
    print(failure.message)
    readme = write_c_reproducer(model_io.parse_module(failure.module_text),
                                failure.inputs, job.target, out, steps=c.steps,
                                sanitize=c.sanitize, runtime_patch=c.runtime_patch)
    print(f"reproducer: {out} (the model, its inputs and the C project; see {readme})")
    print(f"replay: {replay_command(out)}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _write_reproducer(failure: Failure, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    mlir, inputs = out / "repro.mlir", out / "repro_input.npz"
    model_io.save_model(model_io.parse_module(failure.module_text), mlir)
    model_io.write_npz(inputs, failure.inputs)
    return mlir, inputs


_CAMPAIGN_OPTIONS = {"--examples", "--seed", "--ops", "--max-ops", "--workers", "--dask",
                     "--trainable", "--batch", "--out"}
_CAMPAIGN_FLAGS = {"--no-focus"}


def _replay_command(argv: Sequence[str], mlir: Path) -> str:
    """This command line without the campaign's options, with `--replay MLIR`."""
    kept, arguments = [], iter(argv)
    for argument in arguments:
        option = argument.split("=", 1)[0]
        if option in _CAMPAIGN_OPTIONS:
            if "=" not in argument:
                next(arguments, None)
        elif option not in _CAMPAIGN_FLAGS:
            kept.append(argument)
    registry = active_registry()
    plugins = [p for f in (registry.files if registry else []) for p in ("--load-plugin", f)]
    return shlex.join(["edge-opt", "fuzz", *kept, "--replay", str(mlir), *plugins])


def _replay(args: argparse.Namespace, train: str | None) -> int:
    """Checks the pass on one reproducer: status 1 if it still fails."""
    path = Path(args.replay)
    module = model_io.load_model(path)
    inputs_path = Path(args.input) if args.input else path.with_name(
        f"{path.stem}_input.npz")
    if not inputs_path.exists():
        raise UserError(f"{inputs_path}: no such file (the inputs of {path}; give them "
                        "with --input NPZ)")
    arrays = model_io.read_npz(inputs_path)
    names = input_names(get_function(module, "forward"))
    missing = [n for n in names if n not in arrays]
    if missing:
        raise UserError(f"{inputs_path}: no array for the input(s) {', '.join(missing)} "
                        f"of @forward in {path}")
    check = (gradient_property(args.target) if args.gradients
             else equivalence_property(args.target, train))
    try:
        replay(check, module, {n: arrays[n] for n in names})
    except PassFailedException as e:
        print(f"{PROG}: the pass refuses {path}: {e}")
        return 0
    except Exception as e:  # noqa: BLE001  (any failure, as in the campaign)
        print(f"FAILED on {path}:")
        print(failure_message(e))
        return 1
    if args.gradients:
        print(f"{PROG} --gradients {args.target}: the gradients agree on {path}")
        return 0
    function = "@train_step" if train else "@forward"
    print(f"{PROG} {args.target}: no difference on {path} (the pass keeps the meaning of "
          f"{function})")
    return 0
