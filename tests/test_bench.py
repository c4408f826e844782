"""bench uci: the standard layout in, per-split results out, parallel and resumable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pmbnn.bench import make_bench, parse_splits, run_bench
from pmbnn.errors import PmbnnError
from pmbnn.pipeline import Refitter, fit_split
from pmbnn.spec import Spec
from pmbnn.uci import load_uci, published, split_rows
from tests.helpers import assert_usage_error, run_cli, strict_json

SHARED_UCI = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
ROWS, SPLITS, TEST_ROWS = 60, 3, 10


@pytest.fixture(scope="module")
def uci_dir(tmp_path_factory) -> Path:
    """A small dataset in the standard layout, named like a real one to get its comparison."""
    root = tmp_path_factory.mktemp("uci")
    folder = root / "yacht"
    folder.mkdir()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(ROWS, 3))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.normal(size=ROWS)
    np.savetxt(folder / "data.txt", np.c_[x, y])
    np.savetxt(folder / "index_features.txt", [0, 1, 2], fmt="%d")
    np.savetxt(folder / "index_target.txt", [3], fmt="%d")
    for k in range(SPLITS):
        order = np.random.default_rng(k).permutation(ROWS)
        np.savetxt(folder / f"index_train_{k}.txt", np.sort(order[TEST_ROWS:]), fmt="%d")
        np.savetxt(folder / f"index_test_{k}.txt", np.sort(order[:TEST_ROWS]), fmt="%d")
    return root


@pytest.fixture(scope="module")
def tiny_spec() -> Spec:
    return Spec().with_overrides(
        network={"hidden": [4]}, inference={"method": "advi", "iterations": 1000, "draws": 100}
    )


@pytest.fixture(scope="module")
def bench_run(uci_dir, tiny_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    bench = make_bench("yacht", "advi", "0-2", uci_dir, out, spec=tiny_spec)
    return bench, run_bench(bench, workers=2)


def test_results_follow_the_documented_layout(bench_run):
    bench, summary = bench_run
    stored = strict_json((bench.out_dir / "uci-yacht-advi.json").read_text())
    assert stored == json.loads(json.dumps(summary))
    assert [r["split"] for r in stored["splits"]] == [0, 1, 2]
    for row in stored["splits"]:
        assert {"split", "rmse", "test_ll", "seconds"} <= set(row)
    rmse = np.array([r["rmse"] for r in stored["splits"]])
    assert stored["rmse_mean"] == pytest.approx(rmse.mean())
    assert stored["rmse_se"] == pytest.approx(rmse.std(ddof=1) / np.sqrt(3))
    # The tiny spec learns its scales (the default prior): each split says where they went.
    assert all(set(row["layer_scale"]) == {"0", "out"} for row in stored["splits"])
    assert all(row["verdict"] in ("OK", "WARN", "FAIL") for row in stored["splits"])
    # Where the intervals' width comes from: the parts add in quadrature row by row, so their
    # means obey the triangle inequalities; one noise sd per chain, in the target's units.
    for row in stored["splits"]:
        sd = row["test_sd"]
        assert max(sd["epistemic"], sd["aleatoric"]) <= sd["total"]
        assert sd["total"] <= sd["epistemic"] + sd["aleatoric"] + 1e-12
        chains = [value for key, value in sd.items() if key.startswith("noise_chain_")]
        assert len(chains) == (bench.spec.inference.chains if bench.method == "nuts" else 1)
        assert all(v > 0 for v in chains)
    pooled = sum(r["coverage_90"] * r["n_test"] for r in stored["splits"]) / (3 * TEST_ROWS)
    assert stored["coverage_90_pooled"] == pytest.approx(pooled)
    markdown = (bench.out_dir / "uci-yacht-advi.md").read_text()
    for entry in published().values():  # every published method, with its citation
        assert f"| {entry['method']} (published" in markdown and entry["citation"] in markdown
    assert "| Deep Ensembles (published, best) | 1.580 | -1.180 |" in markdown  # no SE given


def test_differences_are_called_only_beyond_two_standard_errors():
    from pmbnn.bench.results import comparison_table

    published = {
        "a": {"method": "A", "rmse": 1.0, "test_ll": -1.00, "test_ll_se": 0.05},
        "b": {"method": "B", "rmse": 1.0, "test_ll": -1.30, "test_ll_se": 0.01},
        "c": {"method": "C", "rmse": 1.0, "test_ll": -0.80},  # no standard error published
    }
    summary = {"method": "nuts", "splits": [{}] * 4, "rmse_mean": 1.0, "rmse_se": 0.1,
               "test_ll_mean": -1.10, "test_ll_se": 0.05, "published": published}  # fmt: skip
    rows = {who: versus for who, _, _, versus in comparison_table(summary)}
    # -0.10 against 2 x hypot(0.05, 0.05) = 0.141: not called.
    assert rows["A (published)"] == "-0.100 (within 2 SE)"
    assert rows["B (published)"] == "+0.200 (better)"  # 0.2 > 2 x hypot(0.05, 0.01)
    assert rows["C (published, best)"] == "-0.300 (worse)"  # 0.3 > 2 x 0.05


def test_cluster_workers_reproduce_serial_fits(bench_run, uci_dir, tiny_spec):
    """Each split on a 2-worker LocalCluster (compiled once per worker, data swapped) equals
    a fresh serial in-process fit."""
    _, summary = bench_run
    assert summary["workers"] == 2
    data = load_uci(uci_dir, "yacht")
    refitter = Refitter()  # serial: one process, one compiled model, splits in order
    for split in range(SPLITS):
        train, test = split_rows(uci_dir, "yacht", split)
        spec = tiny_spec.with_overrides(inference={"method": "advi", "seed": split})
        _, metrics = fit_split(spec, data, train, test, refitter=refitter)
        assert summary["splits"][split]["rmse"] == pytest.approx(metrics.test.rmse, rel=1e-9)
        assert summary["splits"][split]["test_ll"] == pytest.approx(metrics.test.lpd, rel=1e-9)


def test_interrupted_bench_resumes(bench_run):
    bench, summary = bench_run
    kept = bench.work_dir / "split-0.json"
    before = kept.stat().st_mtime_ns
    (bench.work_dir / "split-1.json").unlink()  # as if interrupted before split 1 finished
    again = run_bench(bench, workers=1)
    assert kept.stat().st_mtime_ns == before  # finished splits are not refitted
    assert again["splits"][1]["rmse"] == pytest.approx(summary["splits"][1]["rmse"], rel=1e-9)
    assert again["workers"] == 1
    done = run_bench(bench)  # nothing left to fit: no worker count is claimed for it
    assert done["workers"] is None
    assert "s, summed over the splits.\n" in (bench.out_dir / f"{bench.name}.md").read_text()


def test_a_different_spec_is_not_mixed_in(bench_run, tiny_spec):
    bench, _ = bench_run
    other = make_bench(
        "yacht",
        "advi",
        "0",
        bench.uci_dir,
        bench.out_dir,
        spec=tiny_spec.with_overrides(network={"hidden": [5]}),
    )
    with pytest.raises(PmbnnError, match="different spec"):
        run_bench(other)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_workers_are_sized_by_the_cores_this_process_may_use(tiny_spec):
    """Under `taskset` (or a container's cpuset) the machine's core count would oversubscribe."""
    script = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from pmbnn.cluster import default_workers; from pmbnn.spec import Spec\n"
        "print(default_workers(Spec.model_validate_json(input()), 8))"
    )
    for method in ("advi", "nuts"):
        spec = tiny_spec.with_overrides(inference={"method": method}).model_dump_json()
        found = subprocess.run(
            [sys.executable, "-c", script], input=spec, capture_output=True, text=True, check=True
        )
        assert found.stdout.strip() == "1"


def test_the_method_is_the_specs_unless_given(uci_dir, tiny_spec, tmp_path):
    """`bench uci --spec uci-1x50-nuts` without --method samples: it once fitted ADVI."""
    nuts_spec, advi_spec = (
        tiny_spec.with_overrides(inference={"method": m}) for m in ("nuts", "advi")
    )
    assert make_bench("yacht", None, "0", uci_dir, tmp_path, spec=nuts_spec).method == "nuts"
    assert make_bench("yacht", None, "0", uci_dir, tmp_path, spec=advi_spec).method == "advi"
    chosen = make_bench("yacht", "advi", "0", uci_dir, tmp_path, spec=nuts_spec)
    assert chosen.method == chosen.spec.inference.method == "advi"


def test_results_files_pmbnn_did_not_write_are_not_replaced(bench_run, tmp_path):
    bench, _ = bench_run
    other = make_bench("yacht", "advi", "0", bench.uci_dir, tmp_path, spec=bench.spec)
    mine = tmp_path / "uci-yacht-advi.md"
    mine.write_text("my notes on yacht\n")
    with pytest.raises(PmbnnError, match="is not a pmbnn result of this bench"):
        run_bench(other)
    assert mine.read_text() == "my notes on yacht\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uci-yacht-advi.md"]


def test_a_spec_key_added_later_does_not_block_resuming(bench_run):
    """A work folder written before a spec key existed resumes: its spec, with the new key's
    default filled in, is the same spec."""
    bench, summary = bench_run
    spec_file = bench.work_dir / "spec.toml"
    text = spec_file.read_text()
    spec_file.write_text(text.replace('backend = "auto"\n', ""))
    assert spec_file.read_text() != text
    again = run_bench(bench, workers=1)

    def scores(result: dict) -> np.ndarray:
        return np.array([(r["split"], r["rmse"], r["test_ll"]) for r in result["splits"]])

    np.testing.assert_allclose(scores(again), scores(summary), rtol=1e-9)


@pytest.mark.parametrize(
    ("text", "expected"), [("0-2", [0, 1, 2]), ("2,0", [0, 2]), ("1", [1]), ("0-1,1-2", [0, 1, 2])]
)
def test_parse_splits(text, expected):
    assert parse_splits(text, 3) == expected


@pytest.mark.parametrize(("text", "fragment"), [("0-3", "split 3 does not exist"), ("a", "0-19")])
def test_parse_splits_rejects(text, fragment):
    with pytest.raises(PmbnnError, match=fragment):
        parse_splits(text, 3)


def test_bench_usage_errors(uci_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("PMBNN_UCI_DIR", raising=False)
    code, _, err = run_cli(capsys, "bench", "uci", "--dataset", "yacht")
    assert_usage_error(code, err, "--uci-dir")
    code, _, err = run_cli(capsys, "bench", "uci", "--dataset", "boston", "--uci-dir", str(uci_dir))
    assert_usage_error(code, err, "no dataset 'boston'", "there are: yacht")
    code, _, err = run_cli(
        capsys, "bench", "uci", "--dataset", "yacht", "--uci-dir", str(uci_dir), "--splits", "7"
    )
    assert_usage_error(code, err, "split 7 does not exist")


def test_published_figures_carry_their_source():
    for entry in published().values():
        assert entry["citation"] and entry["source"]
        assert {"bostonHousing", "concrete", "energy", "wine-quality-red", "yacht"} <= set(
            entry["results"]
        )


@pytest.mark.skipif(not SHARED_UCI.is_dir(), reason="the shared UCI data is not beside the project")
def test_reads_the_shared_uci_layout():
    data = load_uci(SHARED_UCI, "yacht")
    assert data.x.shape == (308, 6)
    train, test = split_rows(SHARED_UCI, "yacht", 0)
    assert (len(train), len(test)) == (277, 31) and not set(train) & set(test)


def test_refitting_nuts_on_swapped_data_is_reproducible(uci_dir, tiny_spec):
    """NUTS with its compiled step reused across splits: split 0 twice gives the same draws.

    The first fit is not compared: on a cold PyTensor cache, functions compiled afresh differ
    from cached ones in the last bit (measured: ADVI outputs differ by 1e-16), and NUTS
    trajectories amplify that. Fits 2 and 3 both use cached code.
    """
    spec = tiny_spec.with_overrides(
        inference={"method": "nuts", "sampler": "pymc", "tune": 30, "draws": 30}
    )
    data = load_uci(uci_dir, "yacht")
    refitter = Refitter()
    results = []
    for split in (1, 0, 0):
        train, test = split_rows(uci_dir, "yacht", split)
        fitted, metrics = fit_split(spec, data, train, test, refitter=refitter)
        assert fitted.trace["observed_data"]["y"].size == len(train)  # the new split's rows
        results.append(metrics.test.rmse)
    assert results[1] == results[2] and results[0] != results[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-threaded workers, each its own process, started by the
    `dask` command as a cluster's administrator would; all stopped at the end."""
    dask = str(Path(sys.executable).parent / "dask")
    address_file = tmp_path / "scheduler.json"
    log = (tmp_path / "cluster.log").open("w")
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    processes = [subprocess.Popen([*scheduler, "--scheduler-file", str(address_file)],
                                  stdout=log, stderr=log)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not address_file.is_file():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        for name in ("worker-a", "worker-b"):
            worker = [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--name", name]
            processes.append(subprocess.Popen(worker, stdout=log, stderr=log))
        yield address
    finally:
        for process in reversed(processes):  # workers first: none waits on a closed scheduler
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_bench_on_a_scheduler_survives_a_killed_worker(dask_cluster, uci_dir, tiny_spec, tmp_path):
    """--scheduler: the splits run on the cluster's workers; one worker SIGKILLed while
    fitting a split loses nothing and duplicates nothing (Dask reruns the task elsewhere)."""
    from distributed import Client

    (tmp_path / "spec.toml").write_text(tiny_spec.to_toml())
    out = tmp_path / "results"
    with Client(dask_cluster, timeout="30s") as watcher:
        watcher.wait_for_workers(2, timeout=60)
        pids = watcher.run(os.getpid)
        bench = subprocess.Popen(
            [sys.executable, "-m", "pmbnn", "bench", "uci", "--dataset", "yacht", "--uci-dir",
             str(uci_dir), "--spec", str(tmp_path / "spec.toml"), "--out", str(out),
             "--scheduler", dask_cluster],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=os.environ | {"CI": "true"},
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not (busy := [a for a, keys in watcher.processing().items() if keys]):
            assert bench.poll() is None, bench.communicate()
            assert time.monotonic() < deadline, "no split was ever sent to a worker"
            time.sleep(0.05)
        os.kill(pids[busy[0]], signal.SIGKILL)
        stdout, stderr = bench.communicate(timeout=300)
        assert "uci-yacht-advi" in stdout  # the summary was printed
        assert len(watcher.scheduler_info()["workers"]) == 1  # the killed one is gone
    assert bench.returncode == 0, stderr
    stored = strict_json((out / "uci-yacht-advi.json").read_text())
    assert [row["split"] for row in stored["splits"]] == [0, 1, 2]
    assert sorted(p.name for p in (out / ".uci-yacht-advi").glob("split-*")) == [
        "split-0.json", "split-1.json", "split-2.json"]  # fmt: skip
    assert "Traceback" not in stderr


def test_split_ranges_are_checked_before_they_are_built():
    with pytest.raises(PmbnnError, match="split 20 does not exist: this dataset has 0-19"):
        parse_splits("0-4000000000", 20)  # at once, not after building 4e9 numbers
    with pytest.raises(PmbnnError, match="counts down; write 2-5"):
        parse_splits("5-2", 20)


def test_a_tls_address_without_tls_settings_is_one_line(uci_dir, capsys, tmp_path):
    address = f"tls://127.0.0.1:{_free_port()}"
    code, _, err = run_cli(
        capsys, "bench", "uci", "--dataset", "yacht", "--uci-dir", str(uci_dir), "--splits",
        "0", "--out", str(tmp_path / "results"), "--scheduler", address,
    )  # fmt: skip
    assert_usage_error(code, err, f"cannot reach the Dask scheduler at {address}", "tls")
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_scheduler_fails_fast_with_one_line(uci_dir, capsys, tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    code, _, err = run_cli(
        capsys, "bench", "uci", "--dataset", "yacht", "--uci-dir", str(uci_dir), "--splits",
        "0", "--out", str(tmp_path / "results"), "--scheduler", address,
    )  # fmt: skip
    assert time.monotonic() - started < 30  # the connect timeout, not Dask's default minutes
    assert_usage_error(code, err, f"cannot reach the Dask scheduler at {address}")
    assert list(tmp_path.iterdir()) == []  # nothing written
