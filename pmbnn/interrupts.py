"""Ctrl-C and SIGTERM stop a command cleanly; helper processes never outlive it.

Samplers and optimizers disagree about interrupts: PyMC's NUTS and ``pm.fit`` catch
KeyboardInterrupt and return what they have so far, nutpie returns an empty or partial trace,
JAX keeps computing in its own threads. So each interrupting signal is recorded when it arrives,
and the code after every such library call asks whether one came (`raise_if_interrupted`)
instead of trusting what the library returned. SIGTERM is turned into the same
KeyboardInterrupt, so the libraries' own clean-up (PyMC terminating its chain processes) runs
for it too; the command then exits 143 rather than 130.

Processes started for sampling ask the kernel to kill them when their parent dies
(`die_with_parent`), so even SIGKILL, which no handler sees, leaves no orphan behind.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

# Exit codes of a command stopped by a signal, as a shell reports them (128 + signal number).
EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
_PR_SET_PDEATHSIG = 1  # prctl option, from <sys/prctl.h>


class CompletedBeforeInterrupt(KeyboardInterrupt):
    """An interrupt that arrived while work was being completed; its message says what was."""


class _State:
    received: int | None = None  # the signal that interrupted the running command
    deferring = False  # inside `deferred`: record signals, raise after the block
    depth = 0  # nesting of `handle_signals`
    written: ClassVar[list[str]] = []  # outputs published since `handle_signals` began


def received_signal() -> int | None:
    """The interrupting signal received since the outermost `handle_signals` began, if any."""
    return _State.received


def note_written(output: object) -> None:
    """Record a published output: an interrupt after it must not say "nothing was written"."""
    _State.written.append(str(output))


def written() -> list[str]:
    """The outputs published since the outermost `handle_signals` began."""
    return list(_State.written)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even if a library swallowed it."""
    if _State.received is not None:
        raise KeyboardInterrupt(signal.Signals(_State.received).name)


def _handler(signum: int, frame: object) -> None:
    if _State.received is None:
        _State.received = signum
    if not _State.deferring:
        raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def handle_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the given signals raise KeyboardInterrupt and are recorded.

    Read `received_signal` inside the block: the record ends with the outermost block.

    A signal the process ignores (``nohup``, a background job's SIGINT) stays ignored, and so
    does one whose handler someone else installed. Off the main thread, where Python cannot
    install handlers, this does nothing. Nested uses share the outermost one's record.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _State.depth == 0:
        _State.received = None
        _State.written = []
    _State.depth += 1
    previous = {}
    try:
        for signum in signals:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                previous[signum] = current
                signal.signal(signum, _handler)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.depth -= 1
        if _State.depth == 0:
            _State.received = None  # read it inside the block; it is not carried to the next


@contextmanager
def deferred(note: str) -> Iterator[None]:
    """Hold interrupts until the block is done (a rename sequence must not stop half-way).

    A signal that arrived meanwhile raises KeyboardInterrupt(note) afterwards: the note says
    what the block completed, so the message on exit is true.
    """
    before = _State.received
    _State.deferring = True
    try:
        yield
    finally:
        _State.deferring = False
    if _State.received is not None and before is None:
        raise CompletedBeforeInterrupt(note)


def die_with_parent(creator: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if `creator` (the
    process that asked for this one) is already gone.

    Called first thing in sampling and benchmark worker processes: without it, a parent killed
    by SIGKILL (or any signal it does not handle) leaves them blocked on a pipe forever. The
    kernel part is Linux's prctl; elsewhere only the check is made.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        os.kill(creator, 0)  # after the request, so a death in between is not missed
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass  # alive, under another user


TRUNCATED_MESSAGE_ERROR = "UnpicklingError"  # the standard library's, for a cut-off message


def _run_orphan_proof(run: Callable[[], None], creator: int) -> None:
    """A child's run(): dies with its creator, and quietly when the creator is gone."""
    die_with_parent(creator)
    try:
        run()
    except (BrokenPipeError, ConnectionResetError, EOFError):
        os._exit(1)  # its pipe to the parent broke: the parent died, nobody reads a traceback
    except Exception as error:
        # The parent stopped mid-message (an interrupt while it handed the chain its work,
        # measured on a loaded machine): multiprocessing's reader raises its truncated-message
        # error, matched by name; pmbnn itself never deserializes objects. The parent is dying
        # or reporting the interrupt itself, and a chain's traceback would only bury that.
        if type(error).__name__ != TRUNCATED_MESSAGE_ERROR:
            raise
        os._exit(1)


class _ForkChild(multiprocessing.context.ForkProcess):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._creator = os.getpid()

    def run(self) -> None:
        _run_orphan_proof(super().run, self._creator)


class _ForkServerChild(multiprocessing.context.ForkServerProcess):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._creator = os.getpid()  # travels with the process object to the forkserver

    def run(self) -> None:
        # The forkserver is the parent; it exits when the creator dies, so the chain follows.
        _run_orphan_proof(super().run, self._creator)


class _ForkContext(multiprocessing.context.ForkContext):
    Process = _ForkChild


class _ForkServerContext(multiprocessing.context.ForkServerContext):
    Process = _ForkServerChild


def child_process_context(start_method: str) -> multiprocessing.context.BaseContext:
    """A multiprocessing context ("fork" or "forkserver") whose processes die with the parent."""
    contexts = {"fork": _ForkContext, "forkserver": _ForkServerContext}
    return contexts[start_method]()
