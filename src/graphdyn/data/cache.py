"""Cache of prepared trajectories, keyed by the source files' contents and the options.

Preparing a dataset (reading a 200 MB MD17 file, parsing a DCD with MDAnalysis) is done once;
the prepared :class:`~graphdyn.data.trajectory.Trajectory` is written in graphdyn's own
``.npz`` format under ``<data folder>/cache/`` and reused while *nothing that made it* has
changed. The key is the SHA-256 of a canonical JSON document holding:

* the SHA-256 of every source file's bytes (not its name or time stamp, so an edited or
  replaced file never matches an old entry),
* every preparation option,
* the dataset name and its preparation version (bumped when the preparation code changes).

So a stale cache is never reused: a changed input gives a new key and a new file. A cache
file that cannot be read, or whose recorded key differs from its name, is deleted and
rebuilt. Writes are atomic (:func:`graphdyn.io.save_npz`), so an error during preparation
leaves no half-written entry. A data folder that cannot be written only costs the cache (a
warning), never the run.

Window start indices are *not* cached: they are recomputed from the options (milliseconds)
and recorded with a checksum in the dataset description.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphdyn.data.trajectory import Trajectory
from graphdyn.errors import GraphdynError

#: Environment variable naming the data folder.
DATA_ENV = "GRAPHDYN_DATA"

# (resolved path, inode, size, mtime_ns, ctime_ns) -> sha256: saves re-hashing a large file
# within one process; replacing or rewriting the file changes at least one of them.
_SHA_MEMO: dict[tuple[str, int, int, int, int], str] = {}


def data_dir(override: str | Path | None = None) -> Path:
    """The data folder: ``override``, else ``$GRAPHDYN_DATA``, else ``~/.cache/graphdyn``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "graphdyn"


def file_sha256(path: str | Path) -> str:
    """Full hexadecimal SHA-256 of a file's bytes (read in 1 MiB chunks).

    Memoised per process on (path, inode, size, modification and change times), so a rebuilt
    dataset does not hash a large file twice; replacing or rewriting the file re-hashes.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise GraphdynError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    memo_key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo_key in _SHA_MEMO:
        return _SHA_MEMO[memo_key]
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise GraphdynError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    digest = h.hexdigest()
    _SHA_MEMO[memo_key] = digest
    return digest


def cache_key(dataset: str, version: int, sources: dict[str, str], options: dict[str, Any]) -> str:
    """A 24-hex-digit key from the dataset name, preparation version, source checksums and options.

    ``sources`` maps a role (``"R"``, ``"topology"``, ``"trajectory[0]"``...) to a file's
    SHA-256; ``options`` must be JSON-serialisable (paths as strings). Keys are sorted, so
    the order options were given in does not matter.
    """
    doc = json.dumps(
        {"dataset": dataset, "version": version, "sources": sources, "options": options},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(doc.encode()).hexdigest()[:24]


def cache_path(cache_dir: str | Path, dataset: str, key: str) -> Path:
    """Where the entry for ``key`` lives: ``<cache_dir>/<dataset>-<key>.npz``."""
    return Path(cache_dir) / f"{dataset}-{key}.npz"


def load_or_build(
    dataset: str,
    key: str,
    build: Callable[[], Trajectory],
    *,
    cache_dir: str | Path | None,
) -> tuple[Trajectory, str]:
    """Return the cached trajectory for ``key``, or ``build()`` it and cache it.

    Args:
        dataset: dataset name, the first part of the file name.
        key: from :func:`cache_key`.
        build: prepares the trajectory; any exception it raises propagates and nothing is
            written.
        cache_dir: folder of the cache; None disables caching (always builds).

    Returns:
        ``(trajectory, status)`` with status ``"disabled"``, ``"hit"``, ``"built"``,
        ``"rebuilt"`` (an unreadable or mismatching entry was replaced) or ``"unwritable"``.
        The trajectory's ``metadata["cache_key"]`` is ``key``.
    """
    if cache_dir is None:
        traj = build()
        traj.metadata["cache_key"] = key
        return traj, "disabled"
    path = cache_path(cache_dir, dataset, key)
    status = "built"
    if path.exists():
        try:
            traj = Trajectory.load(path)
            if traj.metadata.get("cache_key") != key:
                raise GraphdynError("cache key recorded in the file does not match its name", path=path)
            return traj, "hit"
        except Exception as exc:  # any unreadable entry is rebuilt, never trusted
            warnings.warn(f"graphdyn: rebuilding unreadable cache {path} ({exc})", stacklevel=2)
            _unlink_quietly(path)
            status = "rebuilt"
    traj = build()
    traj.metadata["cache_key"] = key
    try:
        traj.save(path)
    except OSError as exc:
        warnings.warn(f"graphdyn: could not write cache {path} ({exc}); continuing without it", stacklevel=2)
        status = "unwritable"
    return traj, status


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
