"""Runs compared -> a self-contained HTML page (``pmbnn compare --out``) and compare.json.

The numbers are `compare.compare_runs`'s; this module only arranges them, with ArviZ's compare
plot drawn from the same table.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import arviz_plots as azp
import pandas as pd

from pmbnn import jsontext
from pmbnn.compare import Comparison, compare_runs
from pmbnn.files import Destination, OutputKind
from pmbnn.report import figures
from pmbnn.report.templates import render_template

COMPARISON = OutputKind("comparison")


def build_compare_page(
    runs: Sequence[str | Path], out_dir: str | Path, force: bool = False
) -> tuple[Path, dict]:
    """Compare runs (`compare_runs`) and write ``index.html`` and ``compare.json`` (the
    comparison's numbers, returned with the folder) to out_dir.

    The output is reserved before the work (a busy, protected or existing folder without
    `force` fails first) and published whole, like a report; a refused comparison writes
    nothing.
    """
    with Destination(out_dir, COMPARISON, force, list(runs)) as destination:
        comparison = compare_runs(runs)
        numbers = comparison.to_dict()
        page = render_page(comparison, numbers)

        def fill(folder: Path) -> None:
            (folder / "index.html").write_text(page, encoding="utf-8")
            (folder / "compare.json").write_text(jsontext.dumps(numbers, True))

        return destination.write(fill), numbers


def render_page(comparison: Comparison, numbers: dict) -> str:
    """The HTML page of a comparison whose numbers are `numbers` (its ``to_dict()``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plotting libraries' deprecation chatter
        images = {"loo": compare_plot(comparison.table)}
        if comparison.test is not None:
            images["test"] = compare_plot(comparison.test.table())
    return render_template("compare.html.j2", numbers=numbers, images=images)


def compare_plot(table: pd.DataFrame) -> str:
    """ArviZ's compare plot of a table with elpd_diff and dse columns, best run first."""
    return figures.arviz_png(azp.plot_compare, table)
