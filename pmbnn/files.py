"""Outputs written whole or not at all, by one writer at a time, replacing only pmbnn's own.

A `Destination` reserves an output path for one command before any work is done:
- it takes an exclusive lock beside the path, so a second writer is refused at once (exit 2)
  instead of both fitting and one silently replacing the other;
- it checks that the path can be written (by creating the hidden staging path there), that it
  is not the current folder or one that holds an input, and that an existing path is replaced
  only with ``force`` and only if pmbnn wrote it, holding nothing else;
- what the command writes goes to the staging path, which is renamed into place when
  complete. An exception or interrupt removes it; what a killed process left behind is
  removed, or put back if it was the previous output, by the next writer to the same path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pmbnn import interrupts
from pmbnn.errors import PmbnnError
from pmbnn.locks import OutputLock, lock_path
from pmbnn.manifest import MANIFEST, foreign_entries, verify, write_manifest


@dataclass(frozen=True)
class OutputKind:
    """What pmbnn writes at a path: a folder with a manifest, or a single file.

    ``is_ours``: for a file, whether pmbnn wrote it; for a folder, whether it is one that pmbnn
    wrote before manifests existed (recognised by its exact contents), still pmbnn's to replace.
    """

    name: str
    folder: bool = True
    is_ours: Callable[[Path], bool] | None = None
    manifest: str = MANIFEST  # a folder's manifest file (HIDDEN_MANIFEST in a Parquet dataset)


class Destination:
    """An output path reserved for this writer; use as a context manager.

    ``inputs``: paths this command reads, which the output must neither be nor contain
    (replacing a folder deletes what is inside it).
    """

    def __init__(
        self, path: str | Path, kind: OutputKind, force: bool = False, inputs: Iterable = ()
    ):
        self.path = Path(path)
        self.kind = kind
        self.force = force
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.staging: Path | None = None
        self.published = False
        self._lock: OutputLock | None = None
        self._created: list[Path] = []  # parent folders made for this output

    def __enter__(self) -> Destination:
        try:
            self._reserve()
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release(failed=not self.published)

    def write(self, fill: Callable[[Path], None]) -> Path:
        """Let fill write the output into the staging path, then publish it; returns the path."""
        if self.staging is None or self.published:
            raise RuntimeError("write() needs a Destination entered and not yet published")
        try:
            fill(self.staging)
            if self.kind.folder:
                write_manifest(self.staging, self.kind.name, self.kind.manifest)
            _sync(self.staging)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        with interrupts.deferred(f"{self.path} was written completely before the interrupt"):
            self._publish()
            interrupts.note_written(self.path)
        return self.path

    def _reserve(self) -> None:
        path = self.path
        self._check_not_an_input()
        self._make_parent()
        self._lock = OutputLock(lock_path(path), path)
        self._recover_leftovers()
        self._check_replaceable()
        try:
            if self.kind.folder:
                self.staging = Path(
                    tempfile.mkdtemp(prefix=_prefix(path, "staging"), dir=path.parent)
                )
                self.staging.chmod(0o755)  # mkdtemp makes it private; the result is ordinary
            else:
                fd, name = tempfile.mkstemp(prefix=_prefix(path, "staging"), dir=path.parent)
                os.close(fd)
                self.staging = Path(name)
                self.staging.chmod(0o644)
        except OSError as exc:
            raise _write_error(path, exc) from None

    def _check_not_an_input(self) -> None:
        target = self.path.resolve()
        protected = [(Path.cwd().resolve(), "the current folder")]
        protected += [(p.resolve(), f"the input {p}") for p in self.inputs]
        for path, what in protected:
            if path == target or path.is_relative_to(target):
                where = "is" if path == target else "holds"
                raise PmbnnError(
                    f"{self.path} {where} {what}; pmbnn never replaces the current folder or "
                    "an input: choose another --out"
                )
        for folder in (p.resolve() for p in self.inputs if p.is_dir()):
            if target.is_relative_to(folder):  # a run folder holds only what pmbnn wrote
                raise PmbnnError(
                    f"{self.path} is inside the input folder {folder}; choose another --out"
                )

    def _make_parent(self) -> None:
        _make_parents(self.path, self._created)

    def _recover_leftovers(self) -> None:
        """Clean up after writers to this path that were killed (their lock is free now)."""
        path = self.path
        for stale in path.parent.glob(_prefix(path, "staging", glob=True) + "*"):
            _remove(stale)
        for trash in path.parent.glob(_prefix(path, "trash", glob=True) + "*"):
            _remove(trash)
        for retired in path.parent.glob(_prefix(path, "retired", glob=True) + "*"):
            if not os.path.lexists(path) and self._is_whole_output(retired):
                # Killed between moving the old output aside and moving the new one in: put the
                # old one back, so that nothing the user had is lost.
                retired.rename(path)
            else:
                _remove(retired)

    def _is_whole_output(self, path: Path) -> bool:
        """Whether path is a complete, unchanged output of this kind (checksums and all)."""
        if not self.kind.folder:
            return self.kind.is_ours is not None and self.kind.is_ours(path)
        try:
            verify(path, self.kind.name, self.kind.manifest)
        except PmbnnError:
            return False
        return foreign_entries(path, self.kind.name, self.kind.manifest) == []

    def _check_replaceable(self) -> None:
        path = self.path
        if not os.path.lexists(path):
            return
        if not self.force:
            raise PmbnnError(f"{path} already exists; choose another --out or add --force")
        problem = self._why_not_replaceable()
        if problem:
            raise PmbnnError(f"{path} {problem}; --force replaces only what pmbnn wrote")

    def _why_not_replaceable(self) -> str | None:
        path, kind = self.path, self.kind
        if path.is_symlink():
            return "is a symbolic link"
        if not kind.folder:
            if path.is_dir():
                return "is a folder, not a file"
            if kind.is_ours is None or not kind.is_ours(path):
                return f"is not a {kind.name} written by pmbnn"
            return None
        if not path.is_dir():
            return f"is a file, not a pmbnn {kind.name} folder"
        if kind.is_ours is not None and kind.is_ours(path):
            return None  # written by a pmbnn from before manifests
        foreign = foreign_entries(path, kind.name, kind.manifest)
        if foreign is None:
            return f"is not a pmbnn {kind.name} (no valid {kind.manifest} of one)"
        if foreign:
            return f"holds what pmbnn did not write, or changed since ({', '.join(foreign[:5])})"
        return None

    def _publish(self) -> None:
        path, staging = self.path, self.staging
        assert staging is not None
        try:
            if os.path.lexists(path):
                # Something appeared while this command worked; the checks apply again.
                self._check_replaceable()
                token = secrets.token_hex(4)
                retired = _sibling(path, f"pmbnn-retired-{token}")
                path.rename(retired)
                try:
                    staging.rename(path)
                except BaseException:
                    retired.rename(path)
                    raise
                # Renamed before deleting: a deletion cut short is never mistaken for the
                # previous output and put back.
                trash = _sibling(path, f"pmbnn-trash-{token}")
                retired.rename(trash)
                _remove(trash)
            elif self.kind.folder:
                staging.rename(path)  # under the lock: no other pmbnn writer can race this
            else:
                _rename_no_replace(staging, path)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise PmbnnError(
                    f"{path} appeared while this command ran; nothing was replaced"
                ) from None
            raise _write_error(path, exc) from None
        self.published = True
        self.staging = None
        _sync_folder(path.parent)

    def _release(self, failed: bool) -> None:
        try:
            if self.staging is not None:
                _remove(self.staging)
                self.staging = None
        finally:  # a second Ctrl-C while cleaning up must not leave this path locked
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if failed:
                _remove_if_empty(self._created)
            self._created = []


def write_folder(
    path: str | Path,
    kind: OutputKind,
    fill: Callable[[Path], None],
    force: bool = False,
    inputs: Iterable = (),
) -> Path:
    """Reserve path, let fill write the folder, publish it: all in one call."""
    with Destination(path, kind, force, inputs) as destination:
        return destination.write(fill)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the writer's lock of path for the block (a benchmark's work folder, say)."""
    created: list[Path] = []
    try:
        _make_parents(path, created)
        lock = OutputLock(lock_path(path), path)
    except BaseException:
        _remove_if_empty(created)
        raise
    try:
        yield
    finally:
        lock.release()
        _remove_if_empty(created)


def replace_file(path: Path, text: str) -> None:
    """Write a file pmbnn owns (a benchmark's results) whole: a reader sees old or new text."""
    staging = _sibling(path, f"pmbnn-staging-{secrets.token_hex(4)}")
    try:
        with staging.open("w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        staging.replace(path)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def _rename_no_replace(source: Path, target: Path) -> None:
    """Move a file to target, failing (FileExistsError) if something is there."""
    try:
        os.link(source, target)  # atomic, and never replaces
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # No hard links on this file system (vfat, some network mounts): the lock keeps other
        # pmbnn writers out, so a check before the rename is enough.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        source.rename(target)
        return
    source.unlink()


def _make_parents(path: Path, created: list[Path]) -> None:
    """Make path's missing parent folders, listing each in `created` (to remove on failure)."""
    parent = path.parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            pass  # made meanwhile; checked below
        except OSError as exc:
            raise _write_error(path, exc) from None
        else:
            created.append(folder)
    if not parent.is_dir():
        bad = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), parent)
        raise PmbnnError(f"cannot write {path}: {bad} is not a folder; choose another --out")


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if still empty


def _sibling(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{suffix}"


def _prefix(path: Path, role: str, glob: bool = False) -> str:
    name = f".{path.name}.pmbnn-{role}-"
    if glob:
        from glob import escape

        return escape(name)
    return name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _sync(path: Path) -> None:
    """Flush what was written to disk before it is published."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        _sync_folder(path)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(path: Path, exc: OSError) -> PmbnnError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free some space or choose another --out"
    else:
        fix = "choose another --out"
    return PmbnnError(f"cannot write {path}: {reason}; nothing was written ({fix})")
