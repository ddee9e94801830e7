"""Fetch the paper's public datasets: MD17 (sGDML) and CMU motion capture.

Files land in the data folder (``dest``, else ``$GRAPHDYN_DATA``, else ``~/.cache/graphdyn``):

* ``md17/<molecule>_dft.npz``: the name the ESTAG code reads (spec 3.1). The source is the
  sGDML site, ``md17_<molecule>.npz`` (falling back to the older ``<molecule>_dft.npz``
  name when the first is not found); benzene is the 2017 file, ``md17_benzene2017.npz``
  (spec 3.1 and pitfall 9: the authors do not say which benzene they used).
* ``mocap/<subject>/<subject>.asf`` and ``<subject>_<trial>.amc`` from
  ``http://mocap.cs.cmu.edu/subjects/<subject>/``.

Walk (subject 35) trial ids. The ESTAG/GMN splits use 0-based ids 0..22 for 23 trials. CMU
subject 35 has 34 trials: 01-16 and 28-34 are "walk", 17-26 "run/jog", 27 "navigate around
obstacles". The 23 walk trials are therefore 35_01..35_16 and 35_28..35_34, and they, not
35_01..35_23 (which would include seven runs), are what is downloaded. The authors numbered
their files in ``glob`` order (file-system order, not recorded), so the id -> file mapping is
not recoverable; graphdyn fixes it as id i -> the i-th walk trial in increasing trial number
(:func:`mocap_trial_files`): 0 -> 35_01, ..., 15 -> 35_16, 16 -> 35_28, ..., 22 -> 35_34.
Basketball (subject 102): CMU has 33 trials (102_09 is a calibration take); which 24 the
paper used is not known, so all 33 are downloaded and the choice is left to the loader.

Every download is resumable (an interrupted transfer stays in ``<file>.part`` and continues
with an HTTP Range request), written atomically (renamed onto the final name only once
complete and verified) and verified: the format (an npz with keys R and z; ASF and AMC
structure) and the SHA-256, against :data:`KNOWN_SHA256` where known, else against the
checksum recorded in ``<data>/manifest.json`` on the first download. A corrupt download is
deleted; nothing is left under the final name. Without network the error says where each
file comes from and where to put it. Only the standard library's urllib is used.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np

from graphdyn.data.cache import DATA_ENV, data_dir
from graphdyn.data.cache import file_sha256 as sha256
from graphdyn.data.mocap import CASES
from graphdyn.errors import GraphdynError
from graphdyn.io import write_json

MD17_URL = "http://www.quantum-machine.org/gdml/data/npz/"
MOCAP_URL = "http://mocap.cs.cmu.edu/subjects/"
MANIFEST = "manifest.json"
TIMEOUT_S = 30.0
CHUNK = 1 << 20

# molecule -> (current sGDML name, older sGDML name)
MD17_REMOTE: dict[str, tuple[str, str]] = {
    "aspirin": ("md17_aspirin.npz", "aspirin_dft.npz"),
    "benzene": ("md17_benzene2017.npz", "benzene2017_dft.npz"),
    "ethanol": ("md17_ethanol.npz", "ethanol_dft.npz"),
    "malonaldehyde": ("md17_malonaldehyde.npz", "malonaldehyde_dft.npz"),
    "naphthalene": ("md17_naphthalene.npz", "naphthalene_dft.npz"),
    "salicylic": ("md17_salicylic.npz", "salicylic_dft.npz"),
    "toluene": ("md17_toluene.npz", "toluene_dft.npz"),
    "uracil": ("md17_uracil.npz", "uracil_dft.npz"),
}

# subject -> CMU trial numbers, in graphdyn's trial-id order (see the module docstring).
# Walk: exactly the paper's trials, as the mocap dataset defines them. Basketball: all 33
# trials of subject 102, since which 24 the paper used is not published.
MOCAP_TRIALS: dict[int, list[int]] = {
    CASES["walk"]["subject"]: list(CASES["walk"]["trials"]),
    CASES["basketball"]["subject"]: list(range(1, 34)),
}
MOCAP_CASES = {spec["subject"]: name for name, spec in CASES.items()}

# url -> sha256 of files whose checksum has been verified independently. None so far: no
# published checksums exist for these files, so the first download's checksum is recorded
# in the manifest and later downloads must match it.
KNOWN_SHA256: dict[str, str] = {}


@dataclass(frozen=True)
class Remote:
    """One file to fetch: candidate URLs (tried in order on HTTP 404) and its local path."""

    urls: tuple[str, ...]
    path: Path
    kind: str  # "npz", "asf" or "amc"


def md17_path(molecule: str, dest: str | Path | None = None) -> Path:
    """Where the MD17 file of ``molecule`` lives: ``<data>/md17/<molecule>_dft.npz``."""
    return data_dir(dest) / "md17" / f"{molecule}_dft.npz"


def mocap_dir(subject: int, dest: str | Path | None = None) -> Path:
    """Where a CMU subject's files live: ``<data>/mocap/<subject>/``."""
    return data_dir(dest) / "mocap" / str(subject)


def mocap_trial_files(subject: int, dest: str | Path | None = None) -> list[Path]:
    """AMC paths of ``subject`` in trial-id order: element i is the paper's trial id i."""
    folder = mocap_dir(subject, dest)
    return [folder / f"{subject}_{t:02d}.amc" for t in _trials(subject)]


def _trials(subject: int) -> list[int]:
    if subject not in MOCAP_TRIALS:
        known = ", ".join(f"{s} ({MOCAP_CASES[s]})" for s in MOCAP_TRIALS)
        raise GraphdynError(f"unknown motion-capture subject {subject}; known: {known}", field="subject")
    return MOCAP_TRIALS[subject]


def _base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def remotes(dataset: str, *, molecule: str | None = None, subject: int | None = None,
            dest: str | Path | None = None, base_url: str | None = None) -> list[Remote]:
    """The files that :func:`download` fetches for these arguments (nothing is fetched)."""
    dataset = dataset.lower()
    if dataset == "md17":
        if molecule is None:
            raise GraphdynError(f"md17 needs --molecule: one of {', '.join(MD17_REMOTE)}, or all", field="molecule")
        names = list(MD17_REMOTE) if molecule.lower() == "all" else [molecule.lower()]
        unknown = [m for m in names if m not in MD17_REMOTE]
        if unknown:
            raise GraphdynError(f"unknown MD17 molecule '{molecule}'; known: {', '.join(MD17_REMOTE)}", field="molecule")
        base = _base(base_url or MD17_URL)
        return [Remote(tuple(base + r for r in MD17_REMOTE[m]), md17_path(m, dest), "npz") for m in names]
    if dataset == "mocap":
        if subject is None:
            raise GraphdynError("mocap needs --subject: 35 (walk) or 102 (basketball)", field="subject")
        trials = _trials(subject)
        base = _base(base_url or MOCAP_URL) + f"{subject}/"
        folder = mocap_dir(subject, dest)
        names = [(f"{subject}.asf", "asf")] + [(f"{subject}_{t:02d}.amc", "amc") for t in trials]
        return [Remote((base + n,), folder / n, kind) for n, kind in names]
    raise GraphdynError(f"unknown dataset '{dataset}'; downloadable: md17, mocap (AdK comes through MDAnalysisData)", field="dataset")


def download(dataset: str, *, molecule: str | None = None, subject: int | None = None,
             dest: str | Path | None = None, base_url: str | None = None) -> list[Path]:
    """Fetch ``dataset`` (``md17`` with ``molecule``, ``mocap`` with ``subject``).

    Files already present and matching the manifest are not fetched again. Returns the
    paths written or found, in order. Raises GraphdynError (one line) on a network failure,
    a corrupt download or a checksum mismatch.
    """
    files = remotes(dataset, molecule=molecule, subject=subject, dest=dest, base_url=base_url)
    root = data_dir(dest)
    done = []
    for remote in files:
        try:
            done.append(fetch(remote, root, progress=_progress_bar()))
        except _Offline as exc:
            raise GraphdynError(_offline_message(files, exc, root)) from None
    return done


def _progress_bar() -> Callable[[str, int, int | None], None] | None:
    """A one-line byte counter on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None

    def show(name: str, done: int, total: int | None) -> None:
        size = f"{done / 1e6:.1f}" + (f" / {total / 1e6:.1f}" if total else "")
        end = "\n" if total is not None and done >= total else ""
        sys.stderr.write(f"\r{name}: {size} MB{end}")
        sys.stderr.flush()

    return show


class _Offline(Exception):
    """The server could not be reached (DNS, refused, timeout)."""

    def __init__(self, url: str, reason: str):
        super().__init__(reason)
        self.url, self.reason = url, reason


def _offline_message(files: list[Remote], exc: _Offline, root: Path) -> str:
    if len(files) == 1:
        where = f"download {files[0].urls[0]} and save it as {files[0].path}"
    else:
        base = files[0].urls[0].rsplit("/", 1)[0] + "/"
        asf = [r.path.name for r in files if r.kind == "asf"]
        amc = [r.path.stem for r in files if r.kind == "amc"]
        if asf and amc:
            subject = amc[0].split("_")[0]
            trials = _ranges([int(n.split("_")[1]) for n in amc])
            what = f"{asf[0]} and {subject}_NN.amc for NN = {trials}"
        else:
            what = ", ".join(r.path.name for r in files)
        where = f"download {what} ({len(files)} files) from {base} into {files[0].path.parent}/"
    return f"cannot reach {exc.url} ({exc.reason}); without network, {where}"


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> "01-03, 07, 09-10"."""
    parts, start = [], None
    for k, n in enumerate(numbers):
        if start is None:
            start = n
        if k + 1 == len(numbers) or numbers[k + 1] != n + 1:
            parts.append(f"{start:02d}" if start == n else f"{start:02d}-{n:02d}")
            start = None
    return ", ".join(parts)


def fetch(remote: Remote, root: Path, progress: Callable[[str, int, int | None], None] | None = None) -> Path:
    """Download one file (resuming a ``.part``), verify it, rename it into place.

    ``progress(name, bytes_so_far, total_or_None)`` is called as the data arrive.
    """
    manifest = _read_manifest(root)
    key = remote.path.relative_to(root).as_posix() if remote.path.is_relative_to(root) else str(remote.path)
    if remote.path.exists():
        entry = manifest.get(key)
        digest = sha256(remote.path)
        if entry is not None and entry.get("sha256") != digest:
            raise GraphdynError(f"checksum differs from the one recorded in {root / MANIFEST} when it was downloaded; delete the file to fetch it again", path=remote.path)
        if entry is None:
            verify_format(remote.path, remote.kind)
            _record(root, key, {"url": None, "sha256": digest, "size": remote.path.stat().st_size, "note": "found in place, not downloaded"})
        return remote.path

    part = remote.path.with_name(remote.path.name + ".part")
    remote.path.parent.mkdir(parents=True, exist_ok=True)
    url = _transfer(remote, part, progress)
    try:
        verify_format(part, remote.kind)
        digest = sha256(part)
        expected = KNOWN_SHA256.get(url) or (manifest.get(key) or {}).get("sha256")
        if expected is not None and digest != expected:
            raise GraphdynError(f"sha256 {digest[:12]}... of the download does not match the expected {expected[:12]}...", path=url)
    except GraphdynError as exc:
        part.unlink(missing_ok=True)
        _source_file(part).unlink(missing_ok=True)
        raise GraphdynError(f"corrupt download rejected and deleted: {exc}") from None
    os.replace(part, remote.path)
    _source_file(part).unlink(missing_ok=True)
    _record(root, key, {"url": url, "sha256": digest, "size": remote.path.stat().st_size,
                        "downloaded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return remote.path


def _transfer(remote: Remote, part: Path, progress=None) -> str:
    """Fill ``part`` from the first URL that exists; return that URL."""
    last_404 = None
    for url in remote.urls:
        try:
            _get(url, part, progress)
            return url
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                last_404 = url
                continue
            raise GraphdynError(f"HTTP {exc.code} {exc.reason}", path=url) from None
    raise GraphdynError(f"not found on the server (HTTP 404); tried {', '.join(remote.urls)}", path=last_404)


def _get(url: str, part: Path, progress=None) -> None:
    """GET ``url`` into ``part``, continuing from its current size with a Range request.

    ``<part>.url`` names the URL the part came from: bytes of one URL are never continued
    from another (the MD17 fallback name may be a different file).
    """
    source = _source_file(part)
    if part.exists() and source.exists() and source.read_text().strip() != url:
        part.unlink()
    source.write_text(url + "\n")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "graphdyn"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # Nothing left to send: the part is already complete (verification decides).
            return
        raise
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Offline(url, str(reason)) from None
    with response:
        if have and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                raise GraphdynError(f"server resumed at byte {start}, expected {have}", path=url)
            mode = "ab"
        else:
            mode = "wb"  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        problem = None
        offset = have if mode == "ab" else 0
        total = None if expected is None else offset + expected
        try:
            with open(part, mode) as f:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(part.name.removesuffix(".part"), offset + received, total)
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as exc:
            problem = type(exc).__name__
        # http.client returns b"" when the connection drops early, so count the bytes.
        if problem is None and expected is not None and received < expected:
            problem = f"{received} of {expected} bytes"
        if problem is not None:
            raise GraphdynError(f"transfer interrupted ({problem}); {part.stat().st_size} bytes kept in {part}, run the command again to resume", path=url)


def _source_file(part: Path) -> Path:
    return part.with_name(part.name + ".url")


def _content_range_start(header: str | None) -> int | None:
    # "bytes START-END/TOTAL"
    if not header or not header.startswith("bytes "):
        return None
    try:
        return int(header[6:].split("-", 1)[0])
    except ValueError:
        return None


def verify_format(path: str | Path, kind: str) -> None:
    """Check that ``path`` is a plausible file of ``kind``; raise GraphdynError if not.

    npz: opens without pickles and holds ``R`` (frames, atoms, 3) and ``z`` (atoms,).
    asf: has ``:root``, ``:bonedata`` and ``:hierarchy`` sections. amc: has ``:DEGREES``
    and a frame numbered 1 whose first line is the root's.
    """
    path = Path(path)
    if kind == "npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("R", "z") if k not in data.files]
                if missing:
                    raise GraphdynError(f"not an MD17 file: key(s) {', '.join(missing)} missing", path=path)
                R, z = data["R"], data["z"]
        except GraphdynError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise GraphdynError(f"not a readable .npz ({type(exc).__name__})", path=path) from None
        if R.ndim != 3 or R.shape[2] != 3 or z.shape != (R.shape[1],) or R.shape[0] == 0:
            raise GraphdynError(f"MD17 shapes are wrong: R {R.shape}, z {z.shape}", path=path, field="R")
        return
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphdynError(f"not a text {kind.upper()} file ({type(exc).__name__})", path=path) from None
    if kind == "asf":
        missing = [s for s in (":root", ":bonedata", ":hierarchy") if s not in text]
        if missing:
            raise GraphdynError(f"not an ASF skeleton: section(s) {', '.join(missing)} missing", path=path)
        return
    if kind == "amc":
        lines = [line.strip() for line in text.splitlines()]
        if ":DEGREES" not in lines:
            raise GraphdynError("not an AMC motion: ':DEGREES' missing", path=path)
        try:
            first = lines.index("1")
        except ValueError:
            raise GraphdynError("not an AMC motion: no frame 1", path=path) from None
        if first + 1 >= len(lines) or not lines[first + 1].startswith("root"):
            raise GraphdynError("not an AMC motion: frame 1 does not start with 'root'", path=path)
        return
    raise ValueError(f"unknown kind {kind!r}")


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise GraphdynError("unreadable manifest; delete it to start a new one", path=path) from None


def _record(root: Path, key: str, entry: dict) -> None:
    manifest = _read_manifest(root)
    manifest[key] = entry
    write_json(root / MANIFEST, dict(sorted(manifest.items())))
