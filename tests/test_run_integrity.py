"""A run verifies itself on load: any changed byte, and any spec, metadata and trace that do
not belong together, is refused with one line and exit 2, never predicted from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xarray import DataTree

import pmbnn
from pmbnn.errors import PmbnnError
from pmbnn.manifest import MANIFEST, write_manifest
from pmbnn.run import RUN_FILES, load_run, save_run
from tests.helpers import BLR_NOISE_SD, BLR_PROBES, assert_usage_error, run_cli

FILES = (*RUN_FILES, MANIFEST)


@pytest.fixture
def run_copy(small_advi_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(small_advi_run, copy)
    return copy


@pytest.fixture(scope="module")
def pristine(small_advi_run) -> dict[str, bytes]:
    return {name: (small_advi_run / name).read_bytes() for name in FILES}


def _refused(run: Path) -> bool:
    try:
        load_run(run)
    except PmbnnError:
        return True
    return False


@pytest.mark.parametrize("name", [n for n in FILES if n != "trace.nc"])
def test_every_single_byte_change_in_the_small_files_is_detected(run_copy, pristine, name):
    """Exhaustive: each byte of spec, meta, metrics and manifest, changed in turn."""
    path, original = run_copy / name, pristine[name]
    undetected = []
    for position in range(len(original)):
        changed = bytearray(original)
        changed[position] ^= 0x01  # the smallest change: one bit ("1" -> "0", " " -> "!")
        path.write_bytes(changed)
        if not _refused(run_copy):
            undetected.append(position)
    path.write_bytes(original)
    assert undetected == []
    load_run(run_copy)  # restored: loads again


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_in_any_run_file_is_detected(run_copy, pristine, data):
    name = data.draw(st.sampled_from(FILES), label="file")
    original = pristine[name]
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != original[position]), label="byte")
    changed = bytearray(original)
    changed[position] = value
    (run_copy / name).write_bytes(changed)
    try:
        assert _refused(run_copy)
    finally:
        (run_copy / name).write_bytes(original)


@pytest.mark.parametrize(
    ("edit", "file"),
    [
        (lambda t: t.replace('activation = "tanh"', 'activation = "relu"'), "spec.toml"),
        (lambda t: t.replace("[likelihood]\n", "[likelihood]\nsigma = 0.3\n"), "spec.toml"),
        (lambda t: _json_edit(t, lambda m: m["standardization"]["x_scale"].pop()), "meta.json"),
        (lambda t: _json_edit(t, lambda m: m["feature_names"].append("z")), "meta.json"),
    ],
    ids=["activation", "fixed-sigma", "short-x_scale", "extra-feature"],
)
def test_an_edited_run_is_refused_naming_the_file(run_copy, capsys, tmp_path, edit, file):
    path = run_copy / file
    path.write_text(edit(path.read_text()))
    pd.DataFrame({"x": [0.0, 1.0]}).to_csv(tmp_path / "new.csv", index=False)
    for command in (
        ("predict", str(run_copy), "--data", str(tmp_path / "new.csv")),
        ("diagnose", str(run_copy), "--strict"),
        ("report", str(run_copy), "--out", str(tmp_path / "report")),
    ):
        code, out, err = run_cli(capsys, *command)
        assert_usage_error(code, err, "damaged run", f"{file} was changed")
        assert out == ""
    assert not (tmp_path / "report").exists()


def _json_edit(text: str, change) -> str:
    content = json.loads(text)
    change(content)
    return json.dumps(content, indent=2) + "\n"


@pytest.mark.parametrize(
    ("edit", "file", "fragment"),
    [
        (
            lambda t: t.replace("[likelihood]\n", "[likelihood]\nsigma = 0.3\n"),
            "spec.toml",
            "trace.nc holds variables",
        ),
        (lambda t: t.replace("    4,\n", "    5,\n"), "spec.toml", "w_0 has shape"),
        (
            lambda t: _json_edit(t, lambda m: m["standardization"]["x_scale"].append(1.0)),
            "meta.json",
            "standardization.x_scale has 2 values for 1 features",
        ),
        (
            lambda t: _json_edit(t, lambda m: m.update(feature_names=["z"])),
            "meta.json",
            "disagree on the feature names",
        ),
        (lambda t: _json_edit(t, lambda m: m.update(seed=7)), "meta.json", "method or seed"),
    ],
    ids=["fixed-sigma", "width", "x_scale", "feature-name", "seed"],
)
def test_a_consistent_looking_run_is_cross_checked(run_copy, edit, file, fragment):
    """Edited and re-signed (a valid manifest): the parts must still fit together."""
    path = run_copy / file
    path.write_text(edit(path.read_text()))
    write_manifest(run_copy, "run")
    with pytest.raises(PmbnnError, match="damaged run") as info:
        load_run(run_copy)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda run: (run / "trace.nc").write_bytes((run / "trace.nc").read_bytes()[:5000]),
        lambda run: (run / "trace.nc").write_bytes(b"garbage"),
        lambda run: (run / "meta.json").write_text("{not json"),
        lambda run: (run / "metrics.json").unlink(),
        lambda run: (run / MANIFEST).write_text("[]"),
    ],
    ids=["truncated-trace", "garbage-trace", "bad-meta", "missing-metrics", "bad-manifest"],
)
def test_a_damaged_run_is_exit_2_not_a_crash_nor_a_failed_check(run_copy, capsys, damage):
    """Exit 1 means 'diagnose --strict found a FAIL'; a damaged run must not look like one."""
    damage(run_copy)
    code, _, err = run_cli(capsys, "diagnose", str(run_copy), "--strict")
    assert_usage_error(code, err, str(run_copy))


@pytest.mark.parametrize(
    ("file", "content", "fragment"),
    [
        ("trace.nc", b"garbage", "cannot read"),
        ("meta.json", b"[1, 2]", "does not hold a JSON object"),
        ("meta.json", b'{"feature_names": "x"}', "feature_names is not a list"),
        ("spec.toml", b"[network\n", "is not valid TOML"),
    ],
)
def test_a_damaged_run_that_is_re_signed_still_cannot_crash(
    run_copy, capsys, file, content, fragment
):
    (run_copy / file).write_bytes(content)
    write_manifest(run_copy, "run")
    code, _, err = run_cli(capsys, "diagnose", str(run_copy))
    assert_usage_error(code, err, fragment)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(format_version=float("nan")),
        lambda m: m.update(files=[]),
        lambda m: m["files"].update({"../escape": {"bytes": 1, "sha256": "0"}}),
        lambda m: m.pop("kind"),
    ],
    ids=["nan", "files-not-a-table", "path-outside", "no-kind"],
)
def test_a_re_signed_but_malformed_manifest_is_refused_cleanly(run_copy, capsys, edit):
    """A manifest whose own checksum holds but whose fields are nonsense: exit 2, not a crash."""
    import hashlib

    from pmbnn import manifest

    content = json.loads((run_copy / MANIFEST).read_text())
    edit(content)
    content.pop("checksum")
    text = json.dumps(content, indent=2, sort_keys=True) + "\n"  # NaN written as Python does
    content["checksum"] = hashlib.sha256(text.encode()).hexdigest()
    (run_copy / MANIFEST).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    assert manifest.foreign_entries(run_copy, "run") is None  # not replaceable by --force
    code, _, err = run_cli(capsys, "diagnose", str(run_copy))
    assert_usage_error(code, err, "damaged run", MANIFEST)


def test_a_run_from_before_manifests_is_refused_with_the_fix(run_copy):
    (run_copy / MANIFEST).unlink()
    with pytest.raises(PmbnnError, match="from before runs verified themselves: fit it again"):
        load_run(run_copy)


def test_a_verified_run_still_predicts_bit_for_bit(small_advi_run, run_copy):
    x = np.linspace(-5, 5, 7)[:, None]
    a, b = load_run(small_advi_run).predict(x), load_run(run_copy).predict(x)
    np.testing.assert_array_equal(a.to_frame().to_numpy(), b.to_frame().to_numpy())


def test_a_fixed_sigma_run_without_its_unit_is_refused(blr_spec, tmp_path):
    """Runs saved before the unit of a fixed sigma was stored read it in standardized units:
    predicting them now would silently change their noise, so they are refused."""
    spec = blr_spec.with_overrides(
        data={"standardize": True}, inference={"method": "advi", "iterations": 100, "draws": 20}
    )
    fitted, metrics = pmbnn.fit(spec)
    assert float(fitted.trace["constant_data"]["y_scale"]) == fitted.scaler.y_scale
    run = tmp_path / "run"
    save_run(fitted, metrics, run)
    assert load_run(run).predict(BLR_PROBES).sd_aleatoric == pytest.approx(BLR_NOISE_SD)
    old = fitted.trace.copy()
    old["constant_data"] = DataTree(old["constant_data"].to_dataset().drop_vars("y_scale"))
    save_run(fitted.with_trace(old), metrics, tmp_path / "old")
    with pytest.raises(PmbnnError, match=r"y_scale .* is missing or disagrees"):
        load_run(tmp_path / "old")
