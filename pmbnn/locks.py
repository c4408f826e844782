"""One writer per output: an flock'ed lock file beside it, held while a process writes it.

flock is released by the kernel when the process dies, however it dies, so a killed writer
never blocks the next one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per output is not enforced there
    fcntl = None  # type: ignore[assignment]

from pmbnn.errors import OutputWarning, PmbnnError


class OutputBusy(PmbnnError):
    """Another pmbnn process holds the output's lock: it is writing that output now."""


def lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.pmbnn-lock"


class OutputLock:
    """An exclusive lock file beside an output, held while this process writes it.

    flock is released by the kernel when the process dies, however it dies, so a killed writer
    never blocks the next one. The file is removed on release; a writer that opened it just
    before checks that it still holds the file at that name. On a file system without locks
    (some network and FUSE mounts) the output is written without one, and a warning says so.
    """

    def __init__(self, lock_path: Path, target: Path):
        self.path = lock_path
        self.fd: int | None = None
        while True:
            try:
                # Never through a link, never to anything but a plain file: a lock name
                # planted as a link to someone's file would otherwise be truncated.
                flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(lock_path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise PmbnnError(
                        f"cannot write {target}: its lock file {lock_path} is a symbolic link; "
                        "nothing was written (remove the link, or choose another --out)"
                    ) from None
                raise PmbnnError(
                    f"cannot write {target}: {exc.strerror or exc}; nothing was written "
                    "(choose another --out)"
                ) from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise PmbnnError(
                    f"cannot write {target}: its lock file {lock_path} is not a plain file; "
                    "nothing was written (remove it, or choose another --out)"
                )
            try:
                if self._lock(fd, target) and _still_named(lock_path, fd):
                    os.ftruncate(fd, 0)
                    os.write(fd, str(os.getpid()).encode())
                    self.fd = fd
                    return
            except BaseException:  # an interrupt included: a lock never outlives this call
                os.close(fd)
                raise
            os.close(fd)  # its holder removed it as we opened it: take the new one

    @staticmethod
    def _lock(fd: int, target: Path) -> bool:
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            raise OutputBusy(
                f"another pmbnn process{f' (pid {holder})' if holder else ''} is writing "
                f"{target} now; wait for it to finish, or choose another --out"
            ) from None
        except OSError as exc:  # ENOLCK, ENOSYS, EOPNOTSUPP: this file system has no locks
            warnings.warn(
                f"{target.parent} does not support file locks ({exc.strerror}); writing "
                f"{target} without keeping other pmbnn processes out",
                OutputWarning,
                stacklevel=4,
            )
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None

    def __del__(self) -> None:  # a lock dropped by an interrupt is still released
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)


def _still_named(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
