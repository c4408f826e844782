"""Folders written whole or not at all, and never over something the caller did not release."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pmbnn.errors import PmbnnError


def check_writable(out_dir: Path, force: bool) -> None:
    """Fail before any work if out_dir holds something that must not be overwritten."""
    if out_dir.exists() and not force:
        raise PmbnnError(
            f"{out_dir} already exists; choose another --out or add --force to replace it"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise PmbnnError(f"{out_dir} exists and is not a folder; choose another --out")


def write_folder(out_dir: str | Path, fill: Callable[[Path], None], force: bool = False) -> Path:
    """Let `fill` write into a hidden staging folder beside out_dir, then rename it into place.

    An interrupted or failing `fill` leaves nothing behind; an existing out_dir is replaced only
    with force, and is moved aside first and deleted only once the new folder is in place.
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        fill(staging)
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
    retired.rmdir()
    out_dir.rename(retired)
    try:
        staging.rename(out_dir)
    except BaseException:
        retired.rename(out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)
