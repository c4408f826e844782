"""Hostile input, as a user triggers it: one clear line, exit 2, nothing written; and a
property test over generated malformed tables, specs and benchmark layouts for every command."""

from __future__ import annotations

import contextlib
import io
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pmbnn.cli import main
from pmbnn.data import load_dataset
from pmbnn.errors import PmbnnError
from pmbnn.run import RUN_FILES, load_run
from pmbnn.spec import DataSpec
from tests.helpers import assert_usage_error, run_cli

ROWS = 30


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS, 2))
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": x[:, 0] - 0.5 * x[:, 1]})


@pytest.fixture
def fit_args(small_advi_run, tmp_path):
    """`pmbnn fit <tiny ADVI spec> --data <table> --target y --out <tmp>/run` for a table."""

    def args(frame_or_path, *extra: str) -> list[str]:
        path = frame_or_path
        if isinstance(frame_or_path, pd.DataFrame):
            path = tmp_path / "data.csv"
            frame_or_path.to_csv(path, index=False)
        spec = str(small_advi_run / "spec.toml")
        return ["fit", spec, "--data", str(path), "--target", "y", "--out", str(tmp_path / "run"),
                *extra]  # fmt: skip

    return args


@pytest.mark.parametrize(("column", "scale"), [("x1", 1e300), ("y", 1e300), ("y", 1e150)])
def test_extreme_values_are_refused_naming_the_column(frame, fit_args, capsys, column, scale):
    """Features near 1e300 were zeroed out; a target near 1e300 wrote NaN metrics."""
    frame[column] *= scale
    code, _, err = run_cli(capsys, *fit_args(frame))
    assert_usage_error(code, err, f"column {column!r}", "rescale the column")
    assert "RuntimeWarning" not in err


@pytest.mark.parametrize("where", ["flag", "spec"])
def test_the_target_is_never_an_input(frame, fit_args, tmp_path, capsys, where):
    if where == "flag":
        args = fit_args(frame, "--features", "x1,y")
    else:
        frame.to_csv(tmp_path / "d.csv", index=False)
        spec = tmp_path / "leak.toml"
        spec.write_text('[data]\npath = "d.csv"\ntarget = "y"\nfeatures = ["x1", "y"]\n')
        args = ["fit", str(spec), "--out", str(tmp_path / "run")]
    code, _, err = run_cli(capsys, *args)
    assert_usage_error(code, err, "the target 'y' is also listed among the features")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["flag", "spec"])
def test_seeds_beyond_32_bits_are_refused(tmp_path, capsys, where):
    if where == "flag":
        args = ["fit", "--seed", str(2**32), "--out", str(tmp_path / "run")]
    else:
        (tmp_path / "s.toml").write_text("[inference]\nseed = 4294967296\n")
        args = ["fit", str(tmp_path / "s.toml"), "--out", str(tmp_path / "run")]
    code, _, err = run_cli(capsys, *args)
    assert_usage_error(
        code, err, "[inference].seed = 4294967296", "less than or equal to 4294967295"
    )


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[inference]\niterations = true\n", "[inference].iterations = True"),
        ("[prior]\nweight_scale = inf\n", "[prior].weight_scale = inf: Input should be a finite"),
        ("[likelihood]\nsigma = nan\n", "[likelihood].sigma = nan"),
        ('[inference]\ndraws = "100"\n', "[inference].draws = '100'"),
        ("[data]\nstandardize = 1\n", "[data].standardize = 1"),
    ],
)
def test_a_value_of_the_wrong_kind_is_not_coerced(tmp_path, capsys, toml, fragment):
    """`iterations = true` ran one iteration; `weight_scale = inf` blamed the learning rate."""
    (tmp_path / "s.toml").write_text(toml)
    code, _, err = run_cli(capsys, "fit", str(tmp_path / "s.toml"))
    assert_usage_error(code, err, fragment)


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        (pd.DataFrame({"x": [1.0, np.nan, 2.0]}), ["at data row 2", "fill them, or remove"]),
        (pd.DataFrame({"x": [1.0, 2.0, "abc"]}), ["data row 3: 'abc'", "the run needs it"]),
        (pd.DataFrame({"z": [1.0]}), ["unknown column 'x'", "which the run was fitted on"]),
    ],
)
def test_predict_suggests_only_what_predict_can_do(
    small_advi_run, tmp_path, capsys, table, fragments
):
    table.to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(tmp_path / "new.csv")
    )
    assert_usage_error(code, err, *fragments)
    assert "--dropna" not in err and "--features" not in err


def test_a_semicolon_separated_csv_is_read_as_such(frame, tmp_path):
    frame.to_csv(tmp_path / "comma.csv", index=False)
    frame.to_csv(tmp_path / "semicolon.csv", index=False, sep=";")
    comma, semicolon = (
        load_dataset(DataSpec(path=str(tmp_path / name), target="y"), 0)
        for name in ("comma.csv", "semicolon.csv")
    )
    assert semicolon.feature_names == ["x1", "x2"]
    np.testing.assert_array_equal(semicolon.x, comma.x)


def test_an_index_column_is_never_an_input(frame, fit_args, tmp_path, capsys):
    path = tmp_path / "indexed.csv"
    frame.to_csv(path)  # pandas' default: the row index as a first, unnamed column
    code, _, err = run_cli(capsys, *fit_args(path))
    assert_usage_error(code, err, "column 1", "has no name", "--features")
    spec = DataSpec(path=str(path), target="y", features=["x1", "x2"])
    assert load_dataset(spec, 0).feature_names == ["x1", "x2"]  # named inputs: it is ignored


def test_duplicate_column_names_are_refused(tmp_path, fit_args, capsys):
    path = tmp_path / "dup.csv"
    path.write_text("x1,x1,y\n1,2,3\n4,5,6\n7,8,9\n")
    code, _, err = run_cli(capsys, *fit_args(path))
    assert_usage_error(code, err, "column name 'x1' appears more than once", "columns 1, 2")


@pytest.mark.parametrize(
    ("splits", "fragments"),
    [  # 12 is beyond the data's rows 0-11
        ({"index_train_0.txt": range(10), "index_test_0.txt": [10, 11, 12]},
         ("index_test_0.txt of tiny names row 12", "rows 0-11")),
        ({}, ("holds no split files", "index_train_K.txt")),
    ],
)  # fmt: skip
def test_bench_layout_mistakes_are_refused_with_no_work_folder(tmp_path, capsys, splits,
                                                                fragments):  # fmt: skip
    folder = tmp_path / "uci" / "tiny"
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", np.random.default_rng(0).normal(size=(12, 3)))
    files = {"index_features.txt": [0, 1], "index_target.txt": [2]} | splits
    for name, rows in files.items():
        np.savetxt(folder / name, list(rows), fmt="%d")
    out = tmp_path / "results"
    code, _, err = run_cli(
        capsys, "bench", "uci", "--dataset", "tiny", "--uci-dir", str(tmp_path / "uci"),
        "--out", str(out),
    )  # fmt: skip
    assert_usage_error(code, err, *fragments)
    assert not out.exists()


class TestPythonPredict:
    """The Python path finds DataFrame columns by name, as the CLI does."""

    def test_columns_in_any_order(self, small_advi_run):
        fitted = load_run(small_advi_run)
        x = np.linspace(-3, 3, 5)
        by_array = fitted.predict(x[:, None]).to_frame()
        by_frame = fitted.predict(pd.DataFrame({"other": -x, "x": x})).to_frame()
        pd.testing.assert_frame_equal(by_array, by_frame)

    def test_numbers_stored_as_objects_are_numbers(self, small_advi_run):
        """Parquet's decimals arrive as Decimal objects: numbers, converted as such."""
        from decimal import Decimal

        fitted = load_run(small_advi_run)
        exact = fitted.predict(np.array([[1.5], [-2.0]])).to_frame()
        as_objects = pd.DataFrame({"x": [Decimal("1.5"), -2]}, dtype=object)
        pd.testing.assert_frame_equal(fitted.predict(as_objects).to_frame(), exact)

    @pytest.mark.parametrize(
        ("x", "fragment"),
        [
            (pd.DataFrame({"z": [1.0]}), "unknown column 'x' in the DataFrame"),
            (np.zeros((3, 2)), r"shape \(3, 2\); the run was fitted on 1 feature\(s\) \(x\)"),
            (np.zeros(3), r"shape \(3,\)"),
            (np.array([["a"]]), "holds <U1 values"),
            (np.array([[np.nan]]), "missing or infinite value in row 0"),
            (np.array([[1 + 2j]]), "complex numbers"),
            (pd.DataFrame([[1.0, 2.0]], columns=["x", "x"]), "'x' appears more than once"),
            (pd.DataFrame({"x": [1 + 2j]}), "'x' in the DataFrame holds complex numbers"),
            (pd.DataFrame({"x": [True]}), "'x' in the DataFrame holds True/False values"),
            (pd.DataFrame({"x": ["1.5"]}), r"not numeric \(data row 1: '1.5'\)"),  # text stays text
        ],
    )
    def test_bad_inputs_name_the_problem(self, small_advi_run, x, fragment):
        with pytest.raises(PmbnnError, match=fragment):
            load_run(small_advi_run).predict(x)


# ---------------------------------------------------------------- property tests
# For every command: whatever malformed input it gets, the exit code is documented, no
# exception escapes (the CLI would print a traceback), a failure is one line, and a failure
# leaves nothing new on disk.

NAMES = st.sampled_from(["x", "y", "x2", "", "Unnamed: 0", "y y", "é"])
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-3, max_value=3),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.text(string.printable, max_size=4),
    st.just(""),
)


@st.composite
def tables(draw) -> tuple[str, bytes]:
    """(suffix, file content): a small valid x, y table with up to three things broken
    (names, cells, separator, row count, suffix), or junk bytes."""
    suffix = draw(st.sampled_from([".csv", ".csv", ".csv", ".tsv", ".txt", ".npz", ".parquet"]))
    if suffix in (".npz", ".parquet") or draw(st.integers(0, 9)) == 0:
        return suffix, draw(st.binary(max_size=64))
    names = ["x", "y", *draw(st.lists(NAMES, max_size=1))]
    rows = [
        [str(v) for v in draw(st.lists(st.floats(-3, 3), min_size=len(names), max_size=len(names)))]
        for _ in range(draw(st.integers(3, 8)))
    ]
    separator = "\t" if suffix == ".tsv" else ","
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["name", "cell", "separator", "rows"]))
        if change == "name":
            names[draw(st.integers(0, len(names) - 1))] = draw(NAMES)
        elif change == "cell" and rows:
            rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, len(names) - 1))] = str(
                draw(CELLS)
            )
        elif change == "separator":
            separator = draw(st.sampled_from([",", ";", "\t", "|", " "]))
        else:
            rows = rows[: draw(st.integers(0, 2))]
    lines = [separator.join(names)] + [separator.join(row) for row in rows]
    return suffix, ("\n".join(lines) + "\n").encode()


TOML_VALUES = st.one_of(
    st.integers(-3, 10**10), st.floats(), st.booleans(), st.text(max_size=5),
    st.lists(st.integers(-1, 3), max_size=3),
)  # fmt: skip
SPEC_KEYS = {
    "network": ["hidden", "activation", "width"],
    "prior": [
        "kind",
        "weight_scale",
        "bias_scale",
        "fan_in",
        "scale_prior",
        "scale_prior_scale",
        "centred",
    ],
    "likelihood": ["sigma", "sigma_prior_scale", "family"],
    "data": ["target", "features", "test_fraction", "standardize", "dropna", "path", "example"],
    "inference": ["seed", "draws", "iterations", "learning_rate", "method", "batch_size"],
    "extra": ["anything"],
}


@st.composite
def specs(draw) -> bytes:
    """A tiny, fast ADVI spec with some keys replaced by arbitrary values, or broken TOML."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40))
    spec: dict = {
        "network": {"hidden": [2]},
        "inference": {"method": "advi", "iterations": 50, "draws": 5},
    }
    for section in draw(st.lists(st.sampled_from(sorted(SPEC_KEYS)), max_size=1)):
        key = draw(st.sampled_from(SPEC_KEYS[section]))
        spec.setdefault(section, {})[key] = draw(TOML_VALUES)
    iterations = spec["inference"].get("iterations", 50)
    if type(iterations) is int:  # a drawn list or string stays, to be refused
        spec["inference"]["iterations"] = min(iterations, 50)
    return tomli_w.dumps(spec).encode()


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_in(folder: Path, args: list[str]) -> tuple[int, str]:
    """Run a command in-process from `folder`, as a user would; (exit code, stderr)."""
    stderr = io.StringIO()
    with (
        contextlib.chdir(folder),
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return code, stderr.getvalue()


def assert_well_behaved(folder: Path, before: set[str], code: int, err: str, allowed: set[int]):
    assert code in allowed, err
    assert "Traceback" not in err
    if code != 0:
        lines = [line for line in err.strip().splitlines() if not line.startswith("pmbnn: warning")]
        assert len(lines) == 1 and lines[0].startswith("pmbnn"), err
        assert tree(folder) == before, "a failed command left something on disk"


def property_test(max_examples: int) -> settings:
    """Reproducible (the same examples every run, as CI's profile does) and without a
    per-example deadline: a valid input runs a real, if tiny, fit."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@property_test(20)
@given(table=tables(), spec=specs(), target=st.sampled_from(["y"] * 4 + ["x", "", "z"]),
       features=st.none() | st.none() | st.lists(NAMES, max_size=3),
       seed=st.none() | st.integers(-1, 2**33))  # fmt: skip
def test_fit_survives_malformed_tables_and_specs(table, spec, target, features, seed):
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        suffix, content = table
        (folder / f"data{suffix}").write_bytes(content)
        (folder / "spec.toml").write_bytes(spec)
        args = ["fit", "spec.toml", "--data", f"data{suffix}", "--target", target, "--out", "run"]
        if features is not None:
            args += ["--features", ",".join(features)]
        if seed is not None:
            args += ["--seed", str(seed)]
        before = tree(folder)
        code, err = run_in(folder, args)
        event(f"exit {code}")
        assert_well_behaved(folder, before, code, err, {0, 2})
        if code == 0:
            load_run(folder / "run")


@property_test(40)
@given(table=tables(), out=st.sampled_from([None, "p.csv", "data.csv", ".", "sub/p.csv"]),
       force=st.booleans())  # fmt: skip
def test_predict_survives_malformed_tables(small_advi_run, table, out, force):
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        suffix, content = table
        (folder / f"data{suffix}").write_bytes(content)
        (folder / "data.csv").touch()
        args = ["predict", str(small_advi_run), "--data", f"data{suffix}"]
        args += ["--out", out] if out else []
        args += ["--force"] if force else []
        before = tree(folder)
        code, err = run_in(folder, args)
        assert_well_behaved(folder, before, code, err, {0, 2})


@property_test(30)
@given(file=st.sampled_from([*RUN_FILES, "manifest.json"]),
       content=st.binary(max_size=80),
       command=st.sampled_from(["diagnose", "report", "predict"]))  # fmt: skip
def test_diagnose_report_and_predict_survive_a_damaged_run(small_advi_run, file, content, command):
    import shutil

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        shutil.copytree(small_advi_run, folder / "run")
        (folder / "run" / file).write_bytes(content)
        pd.DataFrame({"x": [0.0]}).to_csv(folder / "x.csv", index=False)
        extra = {
            "diagnose": ["--strict"],
            "report": ["--out", "rep"],
            "predict": ["--data", "x.csv"],
        }
        before = tree(folder)
        code, err = run_in(folder, [command, "run", *extra[command]])
        assert_well_behaved(folder, before, code, err, {2})


@st.composite
def broken_uci_layouts(draw) -> dict[str, bytes]:
    """A dataset folder in the UCI layout with at least one file missing or malformed."""
    rows = draw(st.integers(1, 8))
    files = {
        "data.txt": "\n".join(" ".join(["1.0"] * 3) for _ in range(rows)).encode(),
        "index_features.txt": b"0\n1\n",
        "index_target.txt": b"2\n",
        "index_train_0.txt": "\n".join(map(str, range(rows - 1))).encode(),
        "index_test_0.txt": str(rows - 1).encode(),
    }
    name = draw(st.sampled_from(sorted(files)))
    if draw(st.booleans()):
        del files[name]
    else:
        files[name] = draw(
            st.binary(max_size=30)
            | st.lists(st.integers(-3, 12), min_size=1, max_size=5).map(
                lambda v: "\n".join(map(str, v)).encode()
            )
        )
    return files


@property_test(25)
@given(layout=broken_uci_layouts(), splits=st.sampled_from([None, "0", "0-3", "x", "1"]))
def test_bench_survives_malformed_layouts(layout, splits):
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        (folder / "uci" / "d").mkdir(parents=True)
        for name, content in layout.items():
            (folder / "uci" / "d" / name).write_bytes(content)
        (folder / "tiny.toml").write_text(
            '[network]\nhidden = [2]\n[inference]\nmethod = "advi"\niterations = 50\ndraws = 5\n'
        )
        args = ["bench", "uci", "--dataset", "d", "--uci-dir", "uci", "--out", "results"]
        args += ["--spec", "tiny.toml", "--workers", "1"]
        args += ["--splits", splits] if splits else []
        before = tree(folder)
        code, err = run_in(folder, args)
        # A layout that is broken only in what these splits do not use may run: the rows then
        # are too few to fit (each fit needs 2 training rows), which is exit 2 as well.
        assert_well_behaved(folder, before, code, err, {0, 2})


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("x1,x2,y\n1,2,3,4\n5,6,7,8\n9,1,2,3\n", ("line 2 ", "has 4 fields", "names 3 columns")),
        ("x1,x2,y\n1,2,3,\n5,6,7,\n9,1,2,\n", ("line 2 ", "has 4 fields", "trailing separator")),
    ],
)
def test_rows_longer_than_the_header_are_refused(tmp_path, fit_args, capsys, text, fragments):
    """pandas would make the first field a row index and shift every column by one."""
    path = tmp_path / "long.csv"
    path.write_text(text)
    code, _, err = run_cli(capsys, *fit_args(path))
    assert_usage_error(code, err, *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda p: p.mkdir(), ("is a folder",)),
        (lambda p: p.write_bytes(b"x1,x2,y\n1,2,3\n"), ("not a Parquet file", ".csv")),
    ],
)
def test_a_folder_or_a_false_parquet_file_is_named_as_such(tmp_path, fit_args, capsys, make,
                                                           fragments):  # fmt: skip
    path = tmp_path / "table.parquet"
    make(path)
    code, _, err = run_cli(capsys, *fit_args(path))
    assert_usage_error(code, err, *fragments)


def test_a_bad_value_is_shown_as_the_user_wrote_it(frame, fit_args, capsys):
    frame["y"] = np.arange(ROWS) % 4.0
    frame.loc[2, "y"] = -1.0
    code, _, err = run_cli(capsys, *fit_args(frame), "--family", "poisson")
    assert_usage_error(code, err, "has -1.0 at data row 3")
    assert "np." not in err


def test_a_spec_without_data_is_refused_not_fitted_to_the_example(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "uci-1x50", "--out", str(out))
    assert_usage_error(code, err, "spec uci-1x50 names no data", "--data FILE --target COLUMN")
    assert not out.exists()
