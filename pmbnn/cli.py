"""Command line: dispatch the parsed arguments to the library, print, map errors to exit
codes (their meaning: `arguments.py`, which holds the grammar)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pmbnn import interrupts
from pmbnn.arguments import (
    BUILTIN_EXAMPLE,
    CHECK_FAILED,
    INTERNAL_ERROR,
    UCI_SPEC,
    USAGE_ERROR,
    build_parser,
)
from pmbnn.errors import PmbnnError, PmbnnWarning

if TYPE_CHECKING:
    from pmbnn.spec import Spec


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (see the module docstring)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    progress = sys.stderr.isatty() and not os.environ.get("CI")
    with interrupts.handle_signals():
        try:
            if not progress:
                import pymc  # noqa: F401  (its import sets its logger to INFO; quiet it after)

                logging.getLogger("pymc").setLevel(logging.WARNING)
            with warnings.catch_warnings():  # restores showwarning afterwards
                warnings.simplefilter("always", PmbnnWarning)
                warnings.showwarning = _show_warning
                return _run(args, progress)
        except PmbnnError as exc:
            print(f"pmbnn: error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        except OSError as exc:  # the machine's refusal (permissions, a vanished file), not a bug
            where = f": {exc.filename}" if exc.filename else ""
            print(f"pmbnn: error: {exc.strerror or exc}{where}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt as exc:
            signum = interrupts.received_signal() or signal.SIGINT
            if isinstance(exc, interrupts.CompletedBeforeInterrupt):
                outcome = str(exc)
            elif interrupts.written():  # the interrupt came after an output was published
                outcome = f"{' and '.join(interrupts.written())} was written completely"
            else:
                outcome = "nothing was written"
            print(f"pmbnn: interrupted ({signal.Signals(signum).name}); {outcome}", file=sys.stderr)
            return interrupts.EXIT_CODES.get(signum, 130)


def entry_point() -> None:
    """The ``pmbnn`` program: `main`, then an exit that cannot hang or show a traceback.

    After an interrupt, with JAX loaded, the process ends at once: JAX may still be running a
    computation the interrupt abandoned, and Python's normal exit would wait for it to finish.
    """
    try:
        code = main()
    except KeyboardInterrupt:  # before pmbnn's own handling began (Python's start-up)
        print("pmbnn: interrupted (SIGINT); nothing was written", file=sys.stderr)
        code = 130
    except Exception as exc:  # a bug: one line that says so and where, and a code of its own
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(
            f"pmbnn: internal error (a bug in pmbnn; please report it): "
            f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
            file=sys.stderr,
        )
        code = INTERNAL_ERROR
    if code in interrupts.EXIT_CODES.values() and "jax" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """pmbnn's warnings as one plain line; anything else as Python would show it."""
    if issubclass(category, PmbnnWarning):
        print(f"pmbnn: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _run(args: argparse.Namespace, progress: bool) -> int:
    if args.command is None:
        args = build_parser().parse_args(["fit"])
    commands = {
        "fit": _fit,
        "predict": _predict,
        "evaluate": _evaluate,
        "diagnose": _diagnose,
        "report": _report,
        "compare": _compare,
        "prior": _prior,
        "bench": _bench,
        "sweep": _sweep,
    }
    return commands[args.command](args, progress)


def _fit(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.files import Destination
    from pmbnn.inference.compile_target import compile_target
    from pmbnn.inference.device import DeviceChoice
    from pmbnn.inference.samplers import SamplerChoice
    from pmbnn.locks import OutputBusy
    from pmbnn.pipeline import fit
    from pmbnn.run import RUN, data_label, default_run_dir, save_run
    from pmbnn.text import fit_summary

    spec = _spec_from_arguments(args).with_overrides(
        inference={
            "method": args.method,
            "seed": args.seed,
            "sampler": args.sampler,
            "batch_size": args.batch_size,
            "backend": args.backend,
            "device": args.device,
        },
    )
    settings = spec.inference  # checked before any work: a missing extra, a GPU asked in vain
    if settings.method == "nuts":
        sampler = SamplerChoice.for_setting(settings.sampler)
        sampler.sampler.require()
        settings = settings.model_copy(update={"sampler": sampler.name})
    DeviceChoice.for_setting(settings)
    compile_target(spec.inference.backend)  # likewise: "jax" without JAX is a usage error
    inputs = [spec.data.path, spec.data.test_path, args.spec]
    # Reserved before fitting: a busy, protected or unwritable --out fails now, not after it.
    with contextlib.ExitStack() as reserved:
        while True:
            out_dir = args.out or default_run_dir(spec, args.spec)
            try:
                destination = reserved.enter_context(Destination(out_dir, RUN, args.force, inputs))
                break
            except OutputBusy:
                if args.out is not None:
                    raise
                # Another fit took the same default name this second: take the next one.
        started = time.perf_counter()
        fitted, metrics = fit(spec, progress=progress)
        seconds = time.perf_counter() - started
        save_run(fitted, metrics, destination)
    with interrupts.deferred(f"{out_dir} was written completely"):
        print(fit_summary(data_label(spec), fitted, metrics, seconds, out_dir))
    return 0


def _spec_from_arguments(args: argparse.Namespace) -> Spec:
    """The spec named on the command line (or the default one) with its [data] overrides."""
    from pmbnn.spec import Spec, load_spec

    if args.spec is not None:
        spec = load_spec(args.spec)
    elif args.data is not None:
        spec = Spec()  # defaults, fitted to the given table
    else:
        spec = load_spec(BUILTIN_EXAMPLE)
    features = [name.strip() for name in args.features.split(",")] if args.features else None
    spec = spec.with_overrides(
        likelihood={"family": args.family},
        data={
            "path": _absolute(args.data),
            "test_path": _absolute(args.test_data),
            "target": args.target,
            "features": features,
            "dropna": args.dropna or None,
            "test_fraction": args.test_fraction,
        },
    )
    if spec.data.path is None and spec.data.example is None:  # else the example's data
        raise PmbnnError(
            f"spec {args.spec} names no data: give --data FILE --target COLUMN (or set "
            "[data].path or [data].example in it)"
        )
    return spec


def _prior(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.prior_check import PRIOR_DRAWS
    from pmbnn.report.prior_page import build_prior_page
    from pmbnn.run import output_title
    from pmbnn.text import prior_summary

    draws = PRIOR_DRAWS if args.draws is None else args.draws
    if draws < 2:
        raise PmbnnError("--draws must be at least 2")
    spec = _spec_from_arguments(args).with_overrides(inference={"seed": args.seed})
    title = output_title(spec, args.spec)
    out_dir = args.out or Path("reports") / f"prior-{title}"
    folder, numbers = build_prior_page(
        spec, out_dir, args.force, draws, [args.spec, spec.data.test_path], title
    )
    with interrupts.deferred(f"{folder} was written completely"):
        print(prior_summary(folder, numbers["summary"]))
    return 0


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _predict(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.batch_predict import is_out_of_core
    from pmbnn.data import numeric_columns
    from pmbnn.files import Destination
    from pmbnn.predict import PREDICTIONS
    from pmbnn.run import load_run
    from pmbnn.tables import read_table

    if is_out_of_core(args.out, args.data):
        return _predict_out_of_core(args, progress)
    if args.scheduler is not None or args.workers is not None:
        raise PmbnnError(
            "--scheduler and --workers are for out-of-core prediction: give --out NAME.parquet"
        )
    fitted = load_run(args.run)
    x = numeric_columns(read_table(args.data), fitted.feature_names, args.data, "predict")
    if args.out is None:
        fitted.predict_frame(x).to_csv(sys.stdout, index=False)
        return 0
    with Destination(args.out, PREDICTIONS, args.force, [args.data, args.run]) as destination:
        table = fitted.predict_frame(x)
        destination.write(lambda path: table.to_csv(path, index=False))
    with interrupts.deferred(f"{args.out} was written completely"):
        print(f"wrote {len(table)} predictions to {args.out}", file=sys.stderr)
    return 0


def _predict_out_of_core(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.batch_predict import predict_parquet

    written = predict_parquet(
        args.run,
        args.data,
        args.out,
        force=args.force,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=progress,
    )
    with interrupts.deferred(f"{args.out} was written completely"):
        parts = f"{written.parts} part file" + ("s" if written.parts != 1 else "")
        print(f"wrote {written.rows} predictions to {args.out} ({parts})", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace, progress: bool) -> int:

    from pmbnn import jsontext
    from pmbnn.data import read_labelled
    from pmbnn.evaluation import evaluate
    from pmbnn.run import load_run
    from pmbnn.text import scores_text

    fitted = load_run(args.run)
    x, y = read_labelled(
        args.data, fitted.feature_names, fitted.target, fitted.family, fitted.classes
    )
    scores = evaluate(fitted, x, y)
    if args.json:
        record = {"run": str(args.run), "data": args.data, "n": scores.n} | scores.to_dict()
        print(jsontext.dumps(record), end="")
    else:
        print(scores_text(args.run, args.data, scores))
    return 0


def _diagnose(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn import jsontext
    from pmbnn.diagnostics import FAIL, diagnose
    from pmbnn.run import load_run
    from pmbnn.text import diagnosis_text

    fitted = load_run(args.run)
    diagnosis = diagnose(fitted)
    if args.json:
        print(jsontext.dumps({"run": str(args.run)} | diagnosis.to_dict(), True), end="")
    else:
        print(diagnosis_text(args.run, fitted.spec.inference, diagnosis))
    return CHECK_FAILED if args.strict and diagnosis.verdict == FAIL else 0


def _report(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.report import build_report, default_report_dir

    out_dir = args.out or default_report_dir(args.run)
    folder, numbers = build_report(args.run, out_dir, args.force, args.test_data)
    verdict = numbers["diagnostics"]["verdict"]
    with interrupts.deferred(f"{folder} was written completely"):
        print(f"wrote {folder / 'index.html'} and report.json (diagnostics verdict: {verdict})")
    return 0


def _compare(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn import jsontext
    from pmbnn.compare import compare_runs
    from pmbnn.report.compare_page import build_compare_page
    from pmbnn.text import comparison_text

    if args.out is None:
        numbers = compare_runs(args.runs).to_dict()
        folder = None
    else:
        folder, numbers = build_compare_page(args.runs, args.out, args.force)
    text = jsontext.dumps(numbers, True) if args.json else comparison_text(numbers) + "\n"
    done = f"{folder} was written completely" if folder else "the comparison was printed"
    with interrupts.deferred(done):
        print(text, end="")
        if folder is not None:
            print(f"wrote {folder / 'index.html'} and compare.json", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.bench import make_bench, print_summary, run_bench
    from pmbnn.cluster import check_workers
    from pmbnn.spec import load_spec
    from pmbnn.uci import available_splits

    if args.uci_dir is None:
        raise PmbnnError("give the UCI data folder with --uci-dir DIR (or set PMBNN_UCI_DIR)")
    check_workers(args.scheduler, args.workers)
    splits = args.splits or f"0-{max(available_splits(args.uci_dir, args.dataset), 1) - 1}"
    spec = load_spec(args.spec or UCI_SPEC)
    bench = make_bench(
        args.dataset, args.method, splits, args.uci_dir, args.out, args.sampler, spec
    )
    summary = run_bench(bench, args.workers, progress, args.scheduler)
    print_summary(summary, args.out)
    return 0


def _sweep(args: argparse.Namespace, progress: bool) -> int:
    from pmbnn.cluster import check_workers
    from pmbnn.run import output_title
    from pmbnn.sweep import Plan, parse_grid, parse_seeds, run_sweep

    if args.folds < 1:
        raise PmbnnError("--folds must be at least 1")
    if args.folds > 1 and args.test_fraction is not None:
        raise PmbnnError("--folds K cross-validates every row; leave out --test-fraction, or "
                         "give --folds 1 to score on a held-out share")  # fmt: skip
    check_workers(args.scheduler, args.workers)
    spec = _spec_from_arguments(args)
    plan = Plan(spec, parse_grid(args.grid, spec), parse_seeds(args.seeds, spec), args.folds)
    out = args.out or Path("reports") / f"sweep-{output_title(spec, args.spec)}"
    summary = run_sweep(plan, out, args.workers, progress, args.scheduler)
    best = summary["points"][summary["best"]["point"]]
    with interrupts.deferred(f"{out} was written completely"):
        print(f"wrote {out / 'sweep.json'} and sweep.md ({len(summary['points'])} points)")
        settings = ", ".join(f"{k}={v}" for k, v in best["settings"].items())
        lpd = best["lpd"]
        se = f" +- {lpd['se']:.4f}" if lpd["se"] is not None else ""
        print(f"best: {settings} (test LPD {lpd['mean']:.4f}{se} per row)")
    return 0
