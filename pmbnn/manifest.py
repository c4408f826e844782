"""What pmbnn wrote into a folder, so that it can tell its own output, and notice any change.

Every folder pmbnn writes (a run, a report) holds ``manifest.json``: the kind of output, the
format version, and the size and sha256 of every other file. The manifest carries a checksum
of its own canonical text, so a change to any byte of any file, the manifest included, is
detected; and a folder whose manifest lists every file in it is known to hold nothing a user
put there, which is what lets ``--force`` replace it.

A folder that other programs read as a whole (a Parquet dataset of predictions) names its
manifest ``_manifest.json`` instead: Parquet readers skip files whose names begin with "_".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pmbnn.errors import PmbnnError

MANIFEST = "manifest.json"
HIDDEN_MANIFEST = "_manifest.json"  # in a Parquet dataset folder, which readers skip
FORMAT_VERSION = 1
WRITER = "pmbnn"
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(content: dict) -> str:
    return json.dumps(content, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _checksum(content: dict) -> str:
    body = {key: value for key, value in content.items() if key != "checksum"}
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def write_manifest(folder: Path, kind: str, name: str = MANIFEST) -> None:
    """List every file in folder (flat: pmbnn writes no subfolders) in its manifest, `name`."""
    from importlib.metadata import version

    files = sorted(p for p in folder.iterdir() if p.name != name)
    nested = [p.name for p in files if not p.is_file()]
    if nested:
        raise ValueError(f"manifests cover flat folders only; {folder} holds {nested}")
    content = {
        "writer": WRITER,
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "pmbnn_version": version("pmbnn"),
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": file_digest(p)} for p in files},
    }
    content["checksum"] = _checksum(content)
    (folder / name).write_text(_canonical(content))


def read_manifest(folder: Path, name: str = MANIFEST) -> dict:
    """The folder's manifest, checked against itself; PmbnnError naming what is wrong."""
    path = folder / name
    if not path.is_file():
        raise PmbnnError(f"{folder} has no {name}")
    text = path.read_bytes().decode("utf-8", errors="replace")
    try:
        content = json.loads(text, parse_constant=_not_json)
    except ValueError:  # JSONDecodeError included
        raise PmbnnError(f"{path} is not valid JSON") from None
    if not isinstance(content, dict) or content.get("writer") != WRITER:
        raise PmbnnError(f"{path} was not written by pmbnn")
    if text != _canonical(content) or content.get("checksum") != _checksum(content):
        raise PmbnnError(f"{path} was changed after pmbnn wrote it")
    if not _well_formed(content, name):
        raise PmbnnError(f"{path} does not describe a pmbnn output")
    return content


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _well_formed(content: dict, manifest: str) -> bool:
    """The fields every manifest has, of the right types, naming plain files of the folder."""
    files = content.get("files")
    return (
        isinstance(content.get("kind"), str)
        and isinstance(content.get("format_version"), int)
        and isinstance(files, dict)
        and all(
            isinstance(entry, dict)
            and Path(name).name == name
            and name not in ("", ".", "..", manifest)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
            for name, entry in files.items()
        )
    )


def verify(folder: Path, kind: str, name: str = MANIFEST) -> None:
    """Raise PmbnnError unless folder is a complete, unchanged pmbnn output of this kind."""
    content = read_manifest(folder, name)
    if content["kind"] != kind:
        raise PmbnnError(f"{folder} is a pmbnn {content['kind']}, not a {kind}")
    if content["format_version"] != FORMAT_VERSION:
        raise PmbnnError(
            f"{folder} has format version {content['format_version']}; this pmbnn reads "
            f"version {FORMAT_VERSION}"
        )
    for name, expected in content["files"].items():
        path = folder / name
        if not path.is_file():
            raise PmbnnError(f"{path} is missing")
        if path.stat().st_size != expected["bytes"] or file_digest(path) != expected["sha256"]:
            raise PmbnnError(f"{path} was changed after pmbnn wrote it (its checksum differs)")


def foreign_entries(folder: Path, kind: str, name: str = MANIFEST) -> list[str] | None:
    """Entries of folder that pmbnn did not write as a `kind`, or that changed since (a file
    edited, a file replaced by a folder or a link); None if it is not one at all.

    Used before replacing a folder: only one that pmbnn wrote, unchanged and holding nothing
    else, may go (a file it wrote but that is missing now loses nothing).
    """
    try:
        content = read_manifest(folder, name)
    except PmbnnError:
        return None
    if content["kind"] != kind:
        return None
    files = content["files"]
    foreign = []
    for entry in folder.iterdir():
        if entry.name not in files and entry.name != name:
            foreign.append(entry.name)
        elif entry.is_symlink() or not entry.is_file():  # a folder or link where pmbnn wrote
            foreign.append(entry.name)  # a file: the user's now
        elif entry.name in files and _changed(entry, files[entry.name]):
            foreign.append(f"{entry.name} (changed since pmbnn wrote it)")
    return sorted(foreign)


def _changed(path: Path, expected: dict) -> bool:
    return path.stat().st_size != expected["bytes"] or file_digest(path) != expected["sha256"]
