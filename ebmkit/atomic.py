"""Atomic files and the all-or-nothing multi-file commit, split out of
[`ebmkit.checkpoint`][ebmkit.checkpoint] (which re-exports every public name here).

Every file is written to a temporary file in the same directory, flushed and fsynced, then
renamed over the target with ``os.replace`` (and the directory fsynced).
[`commit`][ebmkit.checkpoint.commit] journals a set of renames so that
[`recover`][ebmkit.checkpoint.recover] can finish or discard an interrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

COMMIT_FORMAT = "ebmkit.commit/1"
#: The journal of an in-progress multi-file commit.
JOURNAL = ".ebmkit-commit.json"


class CheckpointError(ConfigError):
    """A checkpoint or saved model that cannot be loaded: malformed, inconsistent or mismatched."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A saved model or checkpoint file that does not exist."""



# ------------------------------------------------------------------------ atomic writes
def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories can't be opened)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def _temp_name(path: Path, token: str | None = None) -> Path:
    # Hidden, same directory (os.replace must not cross file systems), and unique per writer.
    token = token or f"{os.getpid()}.{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}.{token}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Write the file's complete contents to the yielded path inside the ``with`` block. On a
    normal exit the file is fsynced and renamed over ``path`` (and the directory fsynced);
    on an exception the temporary file is removed and ``path`` is left untouched.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> target.read_text()
        'hello'
    """
    path = Path(path)
    tmp = _temp_name(path)
    # Created with open() rather than mkstemp so the file gets the umask's usual mode, not 0600.
    with open(tmp, "xb"):
        pass
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see
    [`atomic_path`][ebmkit.checkpoint.atomic_path])."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """``obj`` as indented JSON text with a final newline (NaN and infinity allowed)."""
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json_text(obj))


# ------------------------------------------------------------------ multi-file commits
def commit(directory: str | os.PathLike[str],
           writers: Mapping[str, Callable[[Path], None]]) -> None:
    """Replace several files in ``directory`` as one unit.

    Each ``writers[name](tmp)`` writes the complete new contents of ``directory/name`` to
    ``tmp``. All files are written and fsynced first; then a journal naming the renames is
    written atomically (the commit point); then the renames happen and the journal goes.
    A crash before the commit point leaves the old files (the temporary ones are removed
    by [`recover`][ebmkit.checkpoint.recover]); a crash after it is rolled forward by
    ``recover``. Either way the set of files is consistent once ``recover`` has run.

    Args:
        directory: An existing directory.
        writers: File name (no directory part) to a function writing that file's contents.
    """
    directory = Path(directory)
    recover(directory)  # an earlier commit cut short is finished first, never mixed with this one
    token = f"{os.getpid()}.{secrets.token_hex(4)}"
    temps: list[tuple[Path, str]] = []
    journal_written = False
    try:
        for name, write in writers.items():
            if Path(name).name != name or name == JOURNAL:
                raise ValueError(f"commit: {name!r} must be a plain file name")
            tmp = _temp_name(directory / name, token)
            temps.append((tmp, name))
            write(tmp)
            _fsync_file(tmp)
        _fsync_dir(directory)
        journal = {"format": COMMIT_FORMAT, "token": token,
                   "renames": [[tmp.name, name] for tmp, name in temps]}
        atomic_write_json(directory / JOURNAL, journal)
        journal_written = True
    except BaseException:
        # Nothing was committed: drop the temporaries (and our journal, should the failure
        # have come after its rename, e.g. in the directory fsync).
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if not journal_written:
            with contextlib.suppress(OSError, ValueError):
                if json.loads((directory / JOURNAL).read_text()).get("token") == token:
                    os.unlink(directory / JOURNAL)
        raise
    _roll_forward(directory, journal)


def _roll_forward(directory: Path, journal: Mapping[str, Any]) -> None:
    for tmp_name, name in journal["renames"]:
        tmp = directory / tmp_name
        if tmp.exists():  # absent: renamed before an interruption
            os.replace(tmp, directory / name)
    _fsync_dir(directory)
    os.unlink(directory / JOURNAL)
    _fsync_dir(directory)


def recover(directory: str | os.PathLike[str]) -> bool:
    """Finish or discard an interrupted [`commit`][ebmkit.checkpoint.commit] in ``directory``.

    Safe to call at any time when no commit is running in that directory.

    Returns:
        True when an interrupted commit was rolled forward.
    """
    directory = Path(directory)
    rolled = False
    journal_path = directory / JOURNAL
    if journal_path.exists():
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            # Plain names only: a journal never moves anything outside its directory.
            ok = (journal.get("format") == COMMIT_FORMAT
                  and all(isinstance(p, list) and len(p) == 2
                          and all(isinstance(n, str) and n and Path(n).name == n for n in p)
                          for p in journal["renames"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if ok:
            _roll_forward(directory, journal)
            rolled = True
        else:  # cannot happen with atomic journal writes; never guess
            raise CheckpointError(f"{journal_path} is not a valid ebmkit commit journal; inspect "
                                  f"{directory} by hand and delete the file to continue")
    for stray in directory.glob(".*.tmp"):  # temporaries of commits that never committed
        if _TEMP.match(stray.name):  # only names this module makes
            with contextlib.suppress(OSError):
                stray.unlink()
    return rolled

