"""Output files and folders written so that a failure leaves nothing half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["check_folder_path", "make_folders", "remove_created", "write_texts_atomic"]


def check_folder_path(folder, what: str) -> Path:
    """``folder`` as a path if it is a folder or can be made one (no file in its place or
    in a parent's); else one clear error naming ``what``."""
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path, not {type(folder).__name__}")
    path = Path(folder)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise FileExistsError(f"{what} {os.fspath(folder)!r}: "
                                      + ("exists and is not a folder" if p == path
                                         else f"{os.fspath(p)!r} is a file, not a folder"))
            break
    return path


def make_folders(folder: str | os.PathLike) -> list[Path]:
    """Create ``folder`` and its missing parents; return the folders created, deepest first
    (for :func:`remove_created` should the run fail)."""
    folder = Path(folder)
    made = []
    p = folder
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made


def remove_created(folders: list[Path], *, contents: bool = False) -> None:
    """Remove the folders :func:`make_folders` created, deepest first: the first (the
    output folder itself) with everything in it if ``contents``, the rest only while
    empty."""
    for i, f in enumerate(folders):
        try:
            if contents and i == 0:
                shutil.rmtree(f)
            else:
                f.rmdir()
        except OSError:
            return


def write_texts_atomic(texts: dict[Path, str]) -> None:
    """Write every ``{path: text}``: each into a temporary file beside it, then all renamed
    into place, so that a failure while writing leaves the old files (and no temporary
    ones)."""
    tmps = {}
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, text in texts.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmps[path] = Path(tmp)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            # mkstemp makes the file private; give it the mode a plain open() would.
            os.chmod(tmp, 0o666 & ~umask)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
