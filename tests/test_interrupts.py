"""Real signals sent to real fits: exit 130 / 143, nothing written, no process left behind;
SIGKILL leaves nothing a later command takes for a run; two writers to one --out race."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmbnn import interrupts
from pmbnn.inference.samplers import SAMPLERS
from pmbnn.run import load_run
from tests.helpers import require_extra, run_cli

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

SINE = '[network]\nhidden = [4]\n[data]\nexample = "sine-gap"\n'
# Long enough that no fit ends before the signal: the signal must land during sampling.
NUTS = SINE + '[inference]\nmethod = "nuts"\ntune = 50\ndraws = 1000000\nsampler = "{sampler}"\n'
ADVI = SINE + '[inference]\nmethod = "advi"\niterations = {iterations}\ndraws = 100\n'
# A JAX import first, as in a notebook that fitted with JAX earlier: PyMC's chains then start
# from a forkserver rather than by fork.
JAX_FIRST = "import jax, sys\nfrom pmbnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
PATIENCE_S = 120  # for a fit to reach sampling on a loaded machine
EXIT_S = 15  # from the signal to the process's exit
ADVI_COMPILED_CPU_S = 12  # imports and compile of the tiny ADVI fit take ~6 (measured)
CHAIN_BUSY_S = 2.0  # CPU seconds of a chain process that has started sampling


@pytest.fixture(autouse=True)
def interrupt_as_from_a_terminal():
    """A test run a shell started in the background (`pytest &`) inherits SIGINT ignored, which
    pmbnn rightly leaves so and child processes inherit: these tests need Ctrl-C's default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is not None:  # None: installed outside Python, cannot be put back
        signal.signal(signal.SIGINT, previous)


def start_fit(
    tmp_path: Path, spec_text: str, out: str, jax_first: bool = False
) -> subprocess.Popen:
    spec = tmp_path / f"spec-for-{out}.toml"
    spec.write_text(spec_text)
    if jax_first:
        script = tmp_path / "jax_first.py"
        script.write_text(f'if __name__ == "__main__":\n    exec({JAX_FIRST!r})\n')
        program = [str(script)]
    else:
        program = ["-m", "pmbnn"]
    return subprocess.Popen(
        [sys.executable, *program, "fit", str(spec), "--out", out],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: every helper process is findable
        env=os.environ | {"CI": "true"},
    )


def group_members(group: int) -> list[int]:
    """Live processes in a process group (zombies excluded: they are already gone)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry))
    return members


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_chain_processes(fit: subprocess.Popen, count: int) -> None:
    """Until the chains sample: `count` processes in the group, two of them besides the fit
    busy for CHAIN_BUSY_S of CPU. A chain started from a forkserver first unpickles its work
    (importing PyMC on the way); a signal in that window is not "while sampling"."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        members = group_members(fit.pid)
        busy = [pid for pid in members if pid != fit.pid and _cpu_or_zero(pid) >= CHAIN_BUSY_S]
        if len(members) >= count and len(busy) >= 2:
            break
        assert fit.poll() is None, fit.communicate()
        assert time.monotonic() < deadline, "the chains never started sampling"
        time.sleep(0.2)
    time.sleep(2.0)  # past the 50 tuning steps: PyMC would now return the draws so far


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # gone meanwhile
        return 0.0


# The threads that run the chains of the samplers that sample in threads (names measured):
# XLA's CPU pool for the JAX samplers (idle while JAX compiles), nutpie's workers.
SAMPLING_THREADS = {"numpyro": "tf_XLAEigen", "blackjax": "tf_XLAEigen", "nutpie": "nutpie-worker"}


def wait_for_sampling_threads(fit: subprocess.Popen, sampler: str) -> None:
    """Until two of the fit's chain threads have each run CHAIN_BUSY_S of CPU: both chains
    are sampling. Counted per thread in CPU seconds, which a loaded machine (or a parallel
    test process) only delays, unlike the share of the cores the fit gets."""
    deadline = time.monotonic() + PATIENCE_S
    while sum(seconds >= CHAIN_BUSY_S for seconds in _thread_cpu(fit.pid, sampler)) < 2:
        assert fit.poll() is None, fit.communicate()
        assert time.monotonic() < deadline, f"the {sampler} chains never started sampling"
        time.sleep(0.2)
    time.sleep(1.0)


def _thread_cpu(pid: int, sampler: str) -> list[float]:
    seconds = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().startswith(SAMPLING_THREADS[sampler]):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                seconds.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        except OSError:  # the thread ended meanwhile
            continue
    return seconds


def assert_stopped_cleanly(
    fit: subprocess.Popen, signum: int, tmp_path: Path, out: str
) -> subprocess.CompletedProcess:
    sent = time.monotonic()
    fit.send_signal(signum)
    try:
        stdout, stderr = fit.communicate(timeout=EXIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(fit.pid, signal.SIGKILL)
        fit.communicate()
        pytest.fail(f"still running {EXIT_S} s after {signal.Signals(signum).name}")
    assert time.monotonic() - sent < EXIT_S
    name = signal.Signals(signum).name
    assert fit.returncode == interrupts.EXIT_CODES[signum], stderr
    assert stderr.strip().splitlines()[-1] == f"pmbnn: interrupted ({name}); nothing was written"
    assert "Traceback" not in stderr
    assert stdout == ""
    assert [p.name for p in tmp_path.iterdir() if p.name in (out, f".{out}")] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out}.")] == []
    assert_no_process_left(fit.pid)
    return subprocess.CompletedProcess(fit.args, fit.returncode, stdout, stderr)


def assert_no_process_left(group: int) -> None:
    deadline = time.monotonic() + 10
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = group_members(group)
    if left:
        os.killpg(group, signal.SIGKILL)
    assert left == [], "processes outlived the command"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_pymc_nuts_interrupted_while_sampling(tmp_path, signum):
    """PyMC returned the draws so far as a finished run (SIGINT) and left its chain processes
    blocked forever (SIGTERM)."""
    fit = start_fit(tmp_path, NUTS.format(sampler="pymc"), "run")
    wait_for_chain_processes(fit, 3)  # this process and two chains
    assert_stopped_cleanly(fit, signum, tmp_path, "run")


@pytest.mark.parametrize("jax_first", [False, True], ids=["fork", "forkserver"])
def test_sigkill_leaves_no_process_and_nothing_taken_for_a_run(tmp_path, capsys, jax_first):
    if jax_first:
        require_extra("jax")
    fit = start_fit(tmp_path, NUTS.format(sampler="pymc"), "run", jax_first)
    wait_for_chain_processes(fit, 4 if jax_first else 3)
    fit.send_signal(signal.SIGKILL)
    _, stderr = fit.communicate(timeout=EXIT_S)
    assert_no_process_left(fit.pid)
    assert "Traceback" not in stderr  # the orphaned chains die quietly
    assert not (tmp_path / "run").exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run."))
    assert leftovers and all(".pmbnn-" in name for name in leftovers)
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "run"), "--data", "x.csv")
    assert code == 2 and "not a pmbnn run" in err
    # The next write to the same place removes them and succeeds.
    (tmp_path / "advi.toml").write_text(ADVI.format(iterations=300))
    os.chdir(tmp_path)
    assert run_cli(capsys, "fit", "advi.toml", "--out", "run")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    load_run(tmp_path / "run")


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax", "nutpie"])
def test_jax_and_rust_samplers_interrupted_while_sampling(tmp_path, sampler):
    """nutpie returned an empty trace (a traceback), NumPyro's computation held the exit."""
    require_extra(*SAMPLERS[sampler].modules)
    spec = NUTS.format(sampler=sampler)
    if sampler == "nutpie":  # its chains then run in parallel, without the GIL: detectable
        spec += 'backend = "numba"\n'
    fit = start_fit(tmp_path, spec, "run")
    wait_for_sampling_threads(fit, sampler)
    assert_stopped_cleanly(fit, signal.SIGINT, tmp_path, "run")


def test_advi_terminated(tmp_path):
    fit = start_fit(tmp_path, ADVI.format(iterations=10_000_000), "run")
    # Past the compile and into the optimizer's steps: a compiler (XLA, a C compiler) finishes
    # its call before Python sees a signal, and on a loaded machine that call can outlast
    # EXIT_S. Counted in CPU seconds, which a loaded machine slows like the compile itself.
    deadline = time.monotonic() + PATIENCE_S
    while not any(p.name.startswith(".run.pmbnn-staging") for p in tmp_path.iterdir()) or (
        cpu_seconds(fit.pid) < ADVI_COMPILED_CPU_S
    ):
        assert fit.poll() is None, fit.communicate()
        assert time.monotonic() < deadline, "the fit never got past its compile"
        time.sleep(0.2)
    time.sleep(1.0)
    assert_stopped_cleanly(fit, signal.SIGTERM, tmp_path, "run")


def test_bench_terminated_stops_its_workers(tmp_path):
    import numpy as np

    folder = tmp_path / "uci" / "tiny"
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", np.random.default_rng(0).normal(size=(20, 3)))
    np.savetxt(folder / "index_features.txt", [0, 1], fmt="%d")
    np.savetxt(folder / "index_target.txt", [2], fmt="%d")
    for split in range(2):
        np.savetxt(folder / f"index_train_{split}.txt", range(split, 15 + split), fmt="%d")
        np.savetxt(folder / f"index_test_{split}.txt", range(15 + split, 20), fmt="%d")
    spec = ADVI.format(iterations=10_000_000).replace(SINE, "[network]\nhidden = [2]\n")
    (tmp_path / "spec.toml").write_text(spec)
    bench = subprocess.Popen(
        [sys.executable, "-m", "pmbnn", "bench", "uci", "--dataset", "tiny", "--uci-dir", "uci",
         "--spec", "spec.toml", "--method", "advi", "--out", "results", "--workers", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=os.environ | {"CI": "true"},
    )  # fmt: skip
    wait_for_chain_processes(bench, 3)  # the bench and its two worker processes
    time.sleep(3.0)  # the workers are fitting
    assert_stopped_cleanly(bench, signal.SIGTERM, tmp_path, "results")
    assert not (tmp_path / "results").exists()  # no split finished: no work folder either


def test_two_fits_racing_for_one_out_cannot_both_succeed(tmp_path):
    spec = ADVI.format(iterations=3000)
    fits = [start_fit(tmp_path, spec, "run") for _ in range(2)]
    results = [fit.communicate(timeout=300) for fit in fits]
    codes = sorted(fit.returncode for fit in fits)
    assert codes == [0, 2], results
    loser = results[[fit.returncode for fit in fits].index(2)][1]
    assert len(loser.strip().splitlines()) == 1 and "Traceback" not in loser
    assert "another pmbnn process" in loser or "already exists" in loser
    load_run(tmp_path / "run")  # the winner's run, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])  # through pm.sample, pmbnn's own
def test_a_sampler_that_returns_a_short_trace_is_not_believed(monkeypatch, sampler):
    """Whatever a backend returns after an interrupt, a trace cut short is never a result."""
    import numpy as np
    import pymc as pm
    import xarray as xr
    from xarray import DataTree

    from pmbnn.inference import blackjax_nuts
    from pmbnn.inference.nuts import sample_nuts
    from pmbnn.model import build_model
    from pmbnn.spec import Spec

    spec = Spec().with_overrides(
        network={"hidden": [2]}, inference={"draws": 10, "chains": 2, "sampler": sampler}
    )
    bnn = build_model(spec, np.zeros((5, 1)), np.zeros(5), ["x"], target_scale=1.0)
    draws = ("chain", "draw")
    short = DataTree.from_dict(
        {
            "posterior": xr.Dataset({"sigma": (draws, np.ones((1, 3)))}),
            "sample_stats": xr.Dataset(
                {name: (draws, np.zeros((1, 3))) for name in ("diverging", "energy", "tree_depth")}
            ),
        }
    )
    monkeypatch.setattr(pm, "sample", lambda *args, **kwargs: short)
    monkeypatch.setattr(blackjax_nuts, "sample_blackjax", lambda *args, **kwargs: short)
    with pytest.raises(KeyboardInterrupt, match=r"1 chains x 3 draws of 2 x 10"):
        sample_nuts(bnn, spec.inference, progress=False, step=object())


def test_an_interrupt_during_publication_is_held_and_reported_after_it(tmp_path, monkeypatch):
    from contextlib import contextmanager

    from pmbnn.files import OutputKind, write_folder

    kind = OutputKind("thing")

    def fill_then_terminate(folder: Path) -> None:
        (folder / "a.txt").write_text("whole")
        os.kill(os.getpid(), signal.SIGTERM)  # handled at once: writing is not protected

    with interrupts.handle_signals(), pytest.raises(KeyboardInterrupt):
        write_folder(tmp_path / "out", kind, fill_then_terminate)
    assert list(tmp_path.iterdir()) == []

    original = interrupts.deferred

    @contextmanager
    def interrupted_meanwhile(note: str):
        with original(note):
            os.kill(os.getpid(), signal.SIGINT)  # arrives as the renames begin
            yield

    monkeypatch.setattr(interrupts, "deferred", interrupted_meanwhile)
    with interrupts.handle_signals(), pytest.raises(interrupts.CompletedBeforeInterrupt) as info:
        write_folder(tmp_path / "out", kind, lambda folder: (folder / "a.txt").write_text("1"))
    assert "was written completely" in str(info.value)
    assert (tmp_path / "out" / "a.txt").read_text() == "1"


def test_an_interrupt_just_after_publication_does_not_deny_the_output(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C after the output was renamed in, as its lock is released: the exit says the
    output was written (it once said "nothing was written" beside a whole report)."""
    from pmbnn import locks

    release = locks.OutputLock.release

    def interrupted_release(lock):
        os.kill(os.getpid(), signal.SIGINT)
        release(lock)

    monkeypatch.setattr(locks.OutputLock, "release", interrupted_release)
    out = tmp_path / "prior"
    code, _, err = run_cli(capsys, "prior", "--draws", "2", "--out", str(out))
    assert code == 130, err
    assert err.strip().splitlines()[-1] == (
        f"pmbnn: interrupted (SIGINT); {out} was written completely"
    )
    assert (out / "index.html").is_file()


@pytest.mark.parametrize("broken", ["eof", "broken pipe", "truncated pickle"])
def test_a_chain_whose_parent_stopped_mid_message_exits_quietly(capfd, broken):
    """A chain whose parent is interrupted while handing it its work reads a truncated pickle
    (seen under load: the interrupt tests' stderr then ended in PyMC's traceback); like one
    whose pipe broke, it exits 1 with no traceback to bury the parent's one-line message."""
    import pickle

    from pmbnn.interrupts import child_process_context

    child = child_process_context("fork").Process(target=_fail_as_a_chain, args=(broken,))
    child.start()
    child.join(EXIT_S)
    assert child.exitcode == 1
    assert "Traceback" not in capfd.readouterr().err
    with pytest.raises(pickle.UnpicklingError):  # what the child met, in this process
        _fail_as_a_chain("truncated pickle")


def _fail_as_a_chain(broken: str) -> None:
    import pickle

    if broken == "truncated pickle":
        pickle.loads(pickle.dumps(list(range(100)))[:20])
    raise EOFError if broken == "eof" else BrokenPipeError
