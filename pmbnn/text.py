"""What the commands print: plain-text renderings of fit results, scores and diagnoses.

Kept apart from the command line so that each can be tested without argparse; the numbers
come from evaluation and diagnostics, this module only words and aligns them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from xarray import DataTree

from pmbnn.diagnostics import Diagnosis, Verdict
from pmbnn.evaluation import Metrics, Scores
from pmbnn.fitted import FittedBnn
from pmbnn.spec import InferenceSpec
from pmbnn.trace import VI_LOSS

VERDICT_MEANING = {
    Verdict.OK: "every check passed",
    Verdict.WARN: "no check failed; see the hints above",
    Verdict.FAIL: "a check failed: do not trust the uncertainties until it is fixed",
}


def format_number(value: object) -> str:
    """Numbers as a person compares them with thresholds (R-hat 1.010 is not 1.01)."""
    if value is None:
        return "-"
    if isinstance(value, bool | str | int | np.integer):
        return str(value)
    number = float(value)  # type: ignore[arg-type]
    if not np.isfinite(number):
        return str(number)
    return f"{number:.3f}" if 0.1 <= abs(number) < 10 else f"{number:.4g}"


def inference_description(settings: InferenceSpec, sampler_chosen: str | None = None) -> str:
    """'nuts (pymc), 2 chains x 500 draws (500 tune)' or 'advi, 1000 draws from q'; with why
    the sampler was chosen when it was chosen automatically."""
    if settings.method == "nuts":
        why = f", {sampler_chosen}" if sampler_chosen and sampler_chosen != "as set" else ""
        return (
            f"nuts ({settings.sampler}{why}), {settings.chains} chains x {settings.draws} draws "
            f"({settings.tune} tune)"
        )
    return f"{settings.method}, {settings.draws} draws from the approximation"


def optimization_description(trace: DataTree, n_train: int, settings: InferenceSpec) -> str:
    """How an ADVI fit ended: iterations run, and whether on a plateau or at the limit."""
    loss = trace[VI_LOSS].to_dataset()
    ran = loss.sizes["iteration"]
    why = (
        "the loss levelled off (converged)"
        if loss.attrs.get("converged")
        else f"the limit of {settings.iterations} iterations was reached before the loss "
        "levelled off"
    )
    text = f"{settings.method}: {ran} iterations, stopped because {why}; {settings.draws} draws"
    if settings.batch_size and settings.batch_size < n_train:
        text += f"; minibatches of {settings.batch_size} rows"
    return text


def fit_summary(
    name: str, fitted: FittedBnn, metrics: Metrics, seconds: float, out_dir: Path
) -> str:
    settings = fitted.spec.inference
    if settings.method == "nuts":
        how = inference_description(settings, fitted.meta.get("sampler", {}).get("chosen"))
    else:
        how = optimization_description(fitted.trace, metrics.train.n, settings)
    lines = [f"pmbnn fit: {name} ({how}) in {seconds:.1f} s"]
    headline = "accuracy" if metrics.train.accuracy is not None else "rmse"
    label, value = SCORE_LABELS[headline], getattr(metrics.train, headline)
    lines.append(f"  {'train ' + label:<20} {value:.4g}  ({metrics.train.n} rows)")
    if metrics.test is not None:
        lines += _score_lines(metrics.test, "test ")
    else:
        lines.append("  no test split ([data].test_fraction = 0): test metrics omitted")
    lines.append(f"  run written to {out_dir}")
    return "\n".join(lines)


# Score -> (label, note); in the order they are printed.
SCORE_LABELS = {
    "rmse": "RMSE",
    "accuracy": "accuracy",
    "lpd": "log pred. dens.",
    "coverage_90": "90% interval cover.",
    "deviance": "Poisson deviance",
    "log_loss": "log loss",
    "brier": "Brier score",
    "ece": "ECE",
}
_SCORE_NOTES = {
    "lpd": "(mean per row)",
    "coverage_90": "(nominal 0.90)",
    "ece": "(expected calibration error, 10 bins)",
}


def _score_lines(scores: Scores, prefix: str) -> list[str]:
    values = scores.to_dict()
    lines: list[str] = []
    for key, label in SCORE_LABELS.items():
        if key not in values:
            continue
        note = f"({scores.n} rows)" if not lines else _SCORE_NOTES.get(key, "")
        if key == "coverage_90" and "deviance" in values:  # whole counts: ends hold more
            note = "(nominal 0.90; more for whole counts, see the report)"
        shown = label if key == "coverage_90" else prefix + label
        number = f"{values[key]:.2f}" if key == "coverage_90" else f"{values[key]:.4g}"
        lines.append(f"  {shown:<20} {number}  {note}".rstrip())
    return lines


def scores_text(run: Path, data: str, scores: Scores) -> str:
    return "\n".join([f"pmbnn evaluate: {run} on {data}", *_score_lines(scores, "")])


def diagnosis_text(run: Path, settings: InferenceSpec, diagnosis: Diagnosis) -> str:
    lines = [f"pmbnn diagnose: {run} ({inference_description(settings)})"]
    width = max(len(check.label) for check in diagnosis.checks)
    for check in diagnosis.checks:
        value = format_number(check.value)
        lines.append(
            f"  {check.verdict:<4}  {check.label:<{width}}  {value:>8}  "
            f"[{check.threshold}]  {check.detail}"
        )
        if check.verdict in (Verdict.WARN, Verdict.FAIL):
            lines.append(f"  {'':<4}  -> {check.hint}")
    verdict = diagnosis.verdict
    meaning = VERDICT_MEANING[verdict]
    if verdict == Verdict.FAIL and settings.method != "nuts":
        meaning = (
            "a check failed: q is not the posterior; judge its predictions by calibration and "
            "LOO (pmbnn report), or use NUTS"
        )
    lines.append(f"verdict: {verdict} ({meaning})")
    return "\n".join(lines)


def prior_summary(folder: Path, summary: dict) -> str:
    """What `pmbnn prior` prints: where the observed spread of y falls among the prior's."""
    sd = summary["sd"]
    prior_f = sd["prior f"]
    return (
        f"wrote {folder / 'index.html'} and prior.json\n"
        f"  observed sd of the target      {format_number(sd['observed'])}\n"
        f"  prior f: sd over the inputs    {format_number(prior_f['q05'])} to "
        f"{format_number(prior_f['q95'])} (5% to 95% of draws), "
        f"{prior_f['below_observed']:.0%} of draws below the observed"
    )


def comparison_text(numbers: dict) -> str:
    """What `pmbnn compare` prints, from `Comparison.to_dict()`: ArviZ's compare table, the
    test rows' comparison (or why there is none), and the Pareto k warnings."""
    runs = numbers["runs"]
    lines = [
        f"pmbnn compare: {len(runs)} runs of {numbers['target']} on the same "
        f"{numbers['n_train']} training rows, best first by PSIS-LOO",
        "  (elpd_loo: the sum over those rows of log p(y_i | the other rows), higher is better;",
        "  elpd_diff, dse: paired difference to the best run and its SE; weight: "
        f"{numbers['weights']})",
    ]
    header = ["rank", "run", "method", "family", "elpd_loo", "se", "p_loo", "elpd_diff"]
    header += ["dse", "weight", "Pareto k > t"]
    rows = [_loo_row(run) for run in runs]
    lines += _aligned([header, *rows], left={1, 2, 3})
    test = numbers["test"]
    if test is None:
        lines.append(numbers["test_note"])
    else:
        lines += [
            f"test rows: {test['n']}, the same in every run",
            "  (elpd: log p(y_i | training rows) summed over them; elpd_diff, dse: paired "
            "difference to",
            "  the best run on them and its SE; lpd: mean per row, as 'pmbnn evaluate' gives)",
        ]
        header = ["run", "elpd", "elpd_diff", "dse", "lpd"]
        rows = [
            [run["run"], *(f"{run[key]:.2f}" for key in header[1:4]), f"{run['lpd']:.4f}"]
            for run in test["runs"]
        ]
        lines += _aligned([header, *rows], left={0})
    lines += [f"note: {note}" for note in numbers["notes"]]
    lines += [f"warning: {warning}" for warning in numbers["warnings"]]
    return "\n".join(lines)


def _loo_row(run: dict) -> list[str]:
    numbers = [f"{run[key]:.2f}" for key in ("elpd_loo", "se", "p_loo", "elpd_diff", "dse")]
    high_k = f"{run['high_k']} (t = {run['k_threshold']:.2f})"
    return [str(run["rank"]), run["run"], run["method"], run["family"], *numbers,
            f"{run['weight']:.2f}", high_k]  # fmt: skip


def _aligned(rows: list[list[str]], left: set[int]) -> list[str]:
    """Rows of cells as lines of columns: left-aligned where `left` says, else right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
