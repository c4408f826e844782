"""Outputs: --force replaces only pmbnn's own, one writer at a time, checked before the work,
nothing half-written on a full disk, and what a killed writer left behind is cleaned up."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pmbnn.errors import PmbnnError
from pmbnn.files import Destination, OutputKind, write_folder
from pmbnn.run import RUN, RUN_FILES, load_run
from tests.helpers import assert_usage_error, run_cli, strict_json

ROOT = Path(__file__).resolve().parent.parent
KIND = OutputKind("thing")


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder (hidden ones too) with its bytes: what a command left on disk."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A user's own folder with data and notes, as in the hostile-input trial."""
    folder = tmp_path / "mydata"
    folder.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": x[:, 0] - x[:, 1]})
    frame.to_csv(folder / "good.csv", index=False)
    (folder / "notes.txt").write_text("my notes")
    return folder


@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if a command starts fitting: its output problems must be found first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the fit started before the output was checked")

    monkeypatch.setattr("pmbnn.pipeline.fit", refuse)


def test_force_never_deletes_the_folder_holding_the_input_data(
    user_folder, small_advi_run, capsys, no_fitting
):
    before = tree(user_folder)
    spec = str(small_advi_run / "spec.toml")
    data = str(user_folder / "good.csv")
    args = ("fit", spec, "--data", data, "--target", "y", "--out", str(user_folder), "--force")
    code, _, err = run_cli(capsys, *args)
    assert_usage_error(code, err, "holds the input", "choose another --out")
    assert tree(user_folder) == before


def test_force_never_deletes_a_folder_pmbnn_did_not_write(small_advi_run, tmp_path, capsys):
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / "thesis.tex").write_text("chapter 1")
    code, _, err = run_cli(capsys, "report", str(small_advi_run), "--out", str(stuff), "--force")
    assert_usage_error(code, err, "is not a pmbnn report", "--force replaces only what pmbnn wrote")
    assert tree(stuff) == {"thesis.tex": b"chapter 1"}


def test_force_keeps_a_run_that_holds_a_users_file(small_advi_run, tmp_path, capsys, no_fitting):
    run = tmp_path / "run"
    shutil.copytree(small_advi_run, run)
    (run / "thesis.tex").write_text("chapter 1")
    before = tree(run)
    spec = str(small_advi_run / "spec.toml")
    code, _, err = run_cli(capsys, "fit", spec, "--out", str(run), "--force")
    assert_usage_error(code, err, "holds what pmbnn did not write, or changed since (thesis.tex)")
    assert tree(run) == before


@pytest.mark.parametrize("change", ["edited", "a folder", "a link"])
def test_force_keeps_an_output_whose_files_the_user_changed(tmp_path, change):
    """--force replaces what pmbnn wrote, unchanged: a file the user edited since, or a
    folder or link put where pmbnn wrote a file, is theirs (a folder's content was once
    deleted with it)."""
    target = tmp_path / "out"
    write_folder(target, KIND, lambda folder: (folder / "a.txt").write_text("pmbnn's"))
    (target / "a.txt").unlink()
    if change == "edited":
        (target / "a.txt").write_text("my notes")
    elif change == "a folder":
        (target / "a.txt").mkdir()
        (target / "a.txt" / "thesis.tex").write_text("chapter 1")
    else:
        (tmp_path / "mine.txt").write_text("mine")
        (target / "a.txt").symlink_to(tmp_path / "mine.txt")
    before = tree(target) if change != "a folder" else None
    with pytest.raises(PmbnnError, match=r"or changed since \(a.txt"):
        write_folder(target, KIND, lambda folder: (folder / "a.txt").write_text("new"), force=True)
    if before is not None:
        assert tree(target) == before
    else:
        assert (target / "a.txt" / "thesis.tex").read_text() == "chapter 1"
    if change == "a link":
        assert (tmp_path / "mine.txt").read_text() == "mine"


def test_a_lock_name_planted_as_a_link_is_refused_not_followed(tmp_path):
    """The lock file's name is predictable: a link there to someone's file is not truncated."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".out.pmbnn-lock").symlink_to(victim)
    with pytest.raises(PmbnnError, match="symbolic link"):
        write_folder(tmp_path / "out", KIND, lambda folder: None)
    assert victim.read_text() == "precious" and not (tmp_path / "out").exists()


def test_a_default_run_name_being_written_is_passed_over(tmp_path, monkeypatch):
    """Two fits started together share the default name's second: the second takes the next
    free name (`fit` also retries when it loses the race for a lock) instead of being told
    another process writes an --out the user never gave."""
    from pmbnn.run import default_run_dir
    from pmbnn.spec import Spec

    monkeypatch.setattr("pmbnn.run.time.strftime", lambda _: "20261127-063000")
    first = default_run_dir(Spec(), None, tmp_path)
    with Destination(first, RUN):
        second = default_run_dir(Spec(), None, tmp_path)
    assert first.name == "sine-gap-nuts-20261127-063000"
    assert second.name == "sine-gap-nuts-20261127-063000-2"


def test_a_report_never_replaces_a_run(small_advi_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_advi_run, run)
    code, _, err = run_cli(capsys, "report", str(small_advi_run), "--out", str(run), "--force")
    assert_usage_error(code, err, "is not a pmbnn report")
    load_run(run)  # intact


@pytest.mark.parametrize(
    ("out", "fragment"),
    [(".", "is the current folder"), ("..", "holds the current folder")],
)
def test_the_current_folder_is_never_an_output(tmp_path, monkeypatch, capsys, out, fragment):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "mine.txt").write_text("keep")
    code, _, err = run_cli(capsys, "fit", "--out", out, "--force")
    assert_usage_error(code, err, fragment)
    assert tree(tmp_path) == {"work": b"<dir>", "work/mine.txt": b"keep"}


def test_a_report_is_never_written_inside_the_run(small_advi_run, capsys):
    before = tree(small_advi_run)
    code, _, err = run_cli(
        capsys, "report", str(small_advi_run), "--out", str(small_advi_run / "r")
    )
    assert_usage_error(code, err, "is inside the input folder")
    assert tree(small_advi_run) == before


def test_an_unwritable_out_fails_before_the_fit(tmp_path, capsys, no_fitting):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, "fit", "--out", str(blocker / "run"))
    assert_usage_error(code, err, "a-file is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder no one may write to: a read-only tmpfs as root (root ignores permission bits),
    else permission bits."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    return folder


def test_a_read_only_out_fails_before_the_fit(tmp_path, capsys, no_fitting):
    folder = _read_only_folder(tmp_path)
    try:
        code, _, err = run_cli(capsys, "fit", "--out", str(folder / "run"))
        assert_usage_error(code, err, "cannot write", "nothing was written")
        assert "Read-only file system" in err or "Permission denied" in err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_predict_out_that_is_a_folder_is_refused_without_a_stray_file(
    small_advi_run, tmp_path, capsys
):
    pd.DataFrame({"x": [0.0, 1.0]}).to_csv(tmp_path / "new.csv", index=False)
    folder = tmp_path / "predictions"
    folder.mkdir()
    args = ("predict", str(small_advi_run), "--data", str(tmp_path / "new.csv"))
    code, _, err = run_cli(capsys, *args, "--out", str(folder), "--force")
    assert_usage_error(code, err, "is a folder, not a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "predictions"]
    # A table of the user's is not replaced either; an earlier prediction table is.
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    code, _, err = run_cli(capsys, *args, "--out", str(table), "--force")
    assert_usage_error(code, err, "is not a predictions table written by pmbnn")
    assert table.read_text() == "a,b\n1,2\n"
    out = tmp_path / "out.csv"
    assert run_cli(capsys, *args, "--out", str(out))[0] == 0
    first = out.read_text()
    out.write_text(first[:-10])  # cut short, but still pmbnn's header: pmbnn's to replace
    assert run_cli(capsys, *args, "--out", str(out), "--force")[0] == 0
    assert out.read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new.csv", "out.csv", "predictions", "table.csv"
    ]  # fmt: skip


def test_legacy_run_folders_are_recognised_for_force(tmp_path):
    """A run from before manifests is replaced; a folder of the same four names is not."""
    legacy, lookalike = tmp_path / "old-run", tmp_path / "lookalike"
    for folder in (legacy, lookalike):
        folder.mkdir()
        for name in RUN_FILES:
            (folder / name).write_text("mine")
    meta = {"versions": {"pmbnn": "0.1.0"}, "standardization": {}}
    (legacy / "meta.json").write_text(json.dumps(meta))
    write_folder(legacy, RUN, lambda folder: (folder / "meta.json").write_text("{}"), force=True)
    assert sorted(p.name for p in legacy.iterdir()) == ["manifest.json", "meta.json"]
    with pytest.raises(PmbnnError, match="is not a pmbnn run"):
        write_folder(lookalike, RUN, lambda folder: None, force=True)
    assert sorted(p.name for p in lookalike.iterdir()) == sorted(RUN_FILES)


def test_a_second_writer_is_refused_while_the_first_works(tmp_path):
    target = tmp_path / "out"
    with Destination(target, KIND) as first:
        with pytest.raises(PmbnnError, match=r"another pmbnn process \(pid \d+\) is writing"):
            Destination(target, KIND).__enter__()
        first.write(lambda folder: (folder / "a.txt").write_text("first"))
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(PmbnnError, match="already exists"):
        write_folder(target, KIND, lambda folder: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock or staging left


def test_an_output_that_appears_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "out"
    with Destination(target, KIND) as destination:
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")
        with pytest.raises(PmbnnError, match=r"already exists|appeared"):
            destination.write(lambda folder: (folder / "a.txt").write_text("mine"))
    assert tree(target) == {"theirs.txt": b"theirs"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_fill_leaves_nothing_not_even_the_parents(tmp_path):
    target = tmp_path / "new" / "deeper" / "out"

    def fail(folder: Path) -> None:
        (folder / "a.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_folder(target, KIND, fail)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_writer_are_cleaned_and_the_old_output_restored(tmp_path):
    target = tmp_path / "out"
    write_folder(target, KIND, lambda folder: (folder / "a.txt").write_text("v1"))
    # Killed half-way through a --force replacement: the old output moved aside, the new one
    # still staged; also a stale lock file and a staging folder of an earlier kill.
    target.rename(tmp_path / ".out.pmbnn-retired-0badc0de")
    (tmp_path / ".out.pmbnn-staging-abc").mkdir()
    (tmp_path / ".out.pmbnn-staging-abc" / "a.txt").write_text("v2, half")
    (tmp_path / ".out.pmbnn-lock").write_text("12345")
    with pytest.raises(PmbnnError, match="already exists"):
        write_folder(target, KIND, lambda folder: None)
    assert (target / "a.txt").read_text() == "v1"  # the user's output is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    write_folder(target, KIND, lambda folder: (folder / "a.txt").write_text("v2"), force=True)
    assert (target / "a.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_deletion_cut_short_is_never_put_back(tmp_path):
    """Killed while deleting the replaced output: what is left is removed, not restored, even
    once the user has moved the new output away."""
    target = tmp_path / "out"
    write_folder(target, KIND, lambda folder: (folder / "a.txt").write_text("v1"))
    half = tmp_path / ".out.pmbnn-trash-1234abcd"
    shutil.copytree(target, half)
    (half / "a.txt").unlink()  # half deleted: its manifest lists a file that is gone
    damaged = tmp_path / ".out.pmbnn-retired-5678abcd"
    shutil.copytree(half, damaged)
    target.rename(tmp_path / "moved")
    write_folder(target, KIND, lambda folder: (folder / "a.txt").write_text("v2"))
    assert (target / "a.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved", "out"]


def test_a_broken_symlink_in_out_is_one_clear_line(tmp_path, capsys, no_fitting):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    code, _, err = run_cli(capsys, "fit", "--out", str(tmp_path / "dangling" / "run"))
    assert_usage_error(code, err, "cannot write")


TINY_ADVI = (
    '[network]\nhidden = [4]\n[data]\nexample = "sine-gap"\n'
    '[inference]\nmethod = "advi"\niterations = 500\ndraws = 100\n'
)


def _warm_caches(tmp_path: Path) -> None:
    """Compile the model here first, so that the limited process writes nothing but its run."""
    from pmbnn.pipeline import fit
    from pmbnn.spec import load_spec

    (tmp_path / "tiny.toml").write_text(TINY_ADVI)
    fit(load_spec(tmp_path / "tiny.toml"))


def _fit_in_subprocess(
    tmp_path: Path, out: Path, file_size_kib: int | None = None
) -> subprocess.CompletedProcess:
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_ADVI)
    command = shlex.join([sys.executable, "-m", "pmbnn", "fit", str(spec), "--out", str(out)])
    if file_size_kib is not None:
        # Writing past the limit fails with EFBIG (Python ignores SIGXFSZ); limits hold for
        # root too. Set by the shell, not by a fork of this multithreaded (JAX) process.
        command = f"ulimit -f {file_size_kib} && exec {command}"
    return subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | {"CI": "true"},
    )


def _assert_clean_write_error(result: subprocess.CompletedProcess, out: Path) -> None:
    assert result.returncode == 2, result.stderr  # not a crash (a negative code) nor 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot write" in result.stderr and "nothing was written" in result.stderr
    assert not [
        p.name for p in out.parent.iterdir() if p.name.startswith((out.name, f".{out.name}"))
    ]


def test_a_write_error_during_the_save_leaves_nothing(tmp_path):
    """The disk refuses the trace (injected with a file-size limit, which works as any user)."""
    _warm_caches(tmp_path)
    out = tmp_path / "run"
    result = _fit_in_subprocess(tmp_path, out, file_size_kib=100)  # trace.nc is about 160 kB
    _assert_clean_write_error(result, out)
    assert "File too large" in result.stderr


def test_a_full_disk_during_the_save_leaves_nothing(tmp_path):
    """A real full disk: a 120 kB tmpfs (needs the right to mount, as root in CI)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = _fit_in_subprocess(tmp_path, disk / "run")
        _assert_clean_write_error(result, disk / "run")
        assert "No space left on device" in result.stderr
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_every_json_written_is_strict(small_advi_run, capsys):
    """(report.json and the bench's results: in their own tests.)"""
    for name in ("meta.json", "metrics.json", "manifest.json"):
        strict_json((small_advi_run / name).read_text())
    code, out, _ = run_cli(capsys, "diagnose", str(small_advi_run), "--json")
    assert code == 0
    assert strict_json(out)["run"] == str(small_advi_run)


def test_a_statistic_that_cannot_be_computed_is_null_and_a_metric_never_nan():
    from pmbnn import jsontext

    value = {"r_hat": np.float64("nan"), "k": [np.inf, 1]}
    assert strict_json(jsontext.dumps(value, null_for_non_finite=True)) == {
        "r_hat": None, "k": [None, 1]
    }  # fmt: skip
    with pytest.raises(ValueError, match="not JSON compliant"):
        jsontext.dumps({"test_rmse": float("nan")})


def test_a_file_system_without_locks_still_gets_a_whole_output(tmp_path, monkeypatch):
    """Some network and FUSE mounts refuse flock: the write goes ahead, and says it is unlocked."""
    import errno

    import pmbnn.locks
    from pmbnn.errors import OutputWarning

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(pmbnn.locks.fcntl, "flock", no_locks)
    with pytest.warns(OutputWarning, match="does not support file locks"):
        write_folder(tmp_path / "out", KIND, lambda folder: (folder / "a.txt").write_text("1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
