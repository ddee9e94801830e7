"""Native CPU kernels: plain C compiled on first use, loaded with :mod:`ctypes`, optional.

A few layers spend most of a training step on edge-sized intermediates (``[B, E, hidden]``
tensors written and read back by a dozen separate PyTorch kernels). Their fused C versions
(``*.c`` beside this file) compute the same functions edge by edge with every intermediate in
registers. They are an *accelerator, never a requirement*:

* The first call compiles the sources with the system C compiler (``$CC``, else ``cc``) as
  ``-O3 -march=native -ffp-contract=fast -fno-math-errno -fno-trapping-math
  -fno-tree-loop-distribute-patterns -funroll-loops -fopenmp`` (:data:`FLAGS`; with glibc's vector math
  library ``libmvec`` for SIMD ``exp``/``tanh`` where it links, else without) into ``graphdyn-<key>.so`` in :func:`cache_dir`
  (``$GRAPHDYN_NATIVE_CACHE``, else ``~/.cache/graphdyn/native``). ``key`` hashes the sources, the compiler,
  the flags and the CPU's feature flags, so a changed source or another CPU builds afresh; the
  library is written to a temporary name and renamed, so a crash leaves nothing half-written.
  The translation units (:data:`UNITS`, each for both dtypes) compile in parallel, one compiler
  process per core, and are linked into one library: 25-35 s on a 2-core machine, once per
  machine and source version.
* No compiler, a failed build or ``GRAPHDYN_NATIVE=0`` leaves :func:`load` returning ``None``
  (with one warning naming the reason, except when disabled on purpose); every op then runs
  its reference, which computes the same numbers. With ``GRAPHDYN_REQUIRE_NATIVE=1`` (set by
  ``make test``) a failed build raises instead, so a broken C source fails the suite.
  :func:`status` says what happened.
* OpenMP: the library links ``libgomp.so.1``. PyTorch has already loaded its own copy under
  that name, so the dynamic loader reuses it and both share one thread pool. Kernels take the
  thread count from :func:`torch.get_num_threads`.

Kernels take raw pointers: callers pass contiguous CPU tensors of one dtype (float32 or
float64; the C functions come in ``_f32`` / ``_f64`` pairs) and ``int64`` indices, and check shapes
before the call.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch

ENV = "GRAPHDYN_NATIVE"
REQUIRE_ENV = "GRAPHDYN_REQUIRE_NATIVE"
FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fno-tree-loop-distribute-patterns", "-funroll-loops", "-fopenmp", "-fPIC", "-shared", "-std=c11")
# translation units, each compiled after common.c (interaction.c uses edge_sum.c's helpers, both
# EGNN edge kernels egnn_tiles.c's), for both dtypes, in parallel; the slowest first
UNITS = (("attention.c",), ("egnn_tiles.c", "egnn_edges.c"), ("egnn_tiles.c", "egnn_multichannel.c"),
         ("edge_sum.c", "interaction.c"), ("edft.c", "node_update.c"))
SOURCES = tuple(dict.fromkeys(("common.c", *(name for unit in UNITS for name in unit))))  # each file once
# each source is written once over `real`, F(name), EXP, EXPU, EXP_ARG, TANH and SQRT and emitted
# for both dtypes. EXPU is exp for arguments already passed through EXP_ARG (float32: clamped to
# [-87, 88], see graphdyn_expf in common.c; float64: libm's exp, which needs no clamp)
_TYPES = (
    ("float", "f32", "graphdyn_expf", "graphdyn_expf_unclamped", "graphdyn_expf_arg", "tanhf", "sqrtf"),
    ("double", "f64", "exp", "exp", "", "tanh", "sqrt"),
)

#: the sizes the kernels were compiled for, stated once: every unit starts with them as #defines,
#: and the ops read them from here (``native_refusal``)
LIMITS = {
    "EDFT_MAXK": 256,  # frequencies (edft.c)
    "EGNN_MAXD": 8,  # spatial dimension of the EGNN edge kernels (egnn_edges.c, egnn_multichannel.c)
    "EGNN_MAXC": 5,  # coordinate channels of the multi-channel EGNN edge kernel (C C <= LIN_MAXH)
    "AT_MAXC": 8,  # coordinate channels of the attention kernel (AdK's backbone has 4)
    "AT_MAXD": 8,  # spatial dimension of the attention kernel
    "LIN_MAXH": 32,  # the widest hidden width of any kernel (common.c's small linear layers)
    "LEAKY_SLOPE": 0.2,  # leaky_relu's negative slope (graphdyn.nn.mlp.activation)
}
#: the activations the kernels know (common.c), #defined as ACT_<NAME>; leaky_relu with the slope
#: of graphdyn.nn.mlp.activation (LEAKY_SLOPE), as the authors' multi-channel ESTAG uses
ACTS = {"relu": 0, "silu": 1, "tanh": 2, "leaky_relu": 3}

_lock = threading.Lock()
_state: dict[str, object] = {}


CACHE_ENV = "GRAPHDYN_NATIVE_CACHE"


def cache_dir() -> Path:
    """Where built libraries live: ``$GRAPHDYN_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/graphdyn/native``,
    else ``~/.cache/graphdyn/native`` (machine-specific builds, apart from any data folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "graphdyn" / "native"


def enabled() -> bool:
    """False when ``$GRAPHDYN_NATIVE`` is ``0``, ``false`` or ``off``."""
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "off", "no"}


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def _compiler() -> str | None:
    cc = os.environ.get("CC", "cc")
    return shutil.which(cc)


def _units() -> list[str]:
    """The C text of every translation unit: each of ``UNITS`` after common.c, once per dtype (see ``_TYPES``)."""
    text = {name: (resources.files(__name__) / name).read_text() for name in SOURCES}
    limits = "".join(f"#define {k} {v}\n" for k, v in LIMITS.items())
    limits += "".join(f"#define ACT_{k.upper()} {v}\n" for k, v in ACTS.items())
    return [
        limits + f"#define real {real}\n#define F(name) name##_{sfx}\n#define EXP {exp}\n#define EXPU {expu}\n"
        f"#define EXP_ARG {exparg}\n#define TANH {tanh}\n#define SQRT {sqrt}\n"
        + "\n".join(text[name] for name in ("common.c", *unit))
        for unit in UNITS
        for real, sfx, exp, expu, exparg, tanh, sqrt in _TYPES
    ]


def _compile(cc: str, flags: tuple[str, ...], libs: tuple[str, ...], units: list[str], tmp: Path) -> Path | str:
    """Compile ``units`` into objects in parallel (one compiler process per unit, up to the CPU count)
    and link them into a shared library in ``tmp``; its path, or the compiler's last lines of error."""
    sources = []
    for k, text in enumerate(units):
        sources.append(tmp / f"unit{k}.c")
        sources[-1].write_text(text)
    objects = [s.with_suffix(".o") for s in sources]
    compile_flags = tuple(f for f in flags if f != "-shared")

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=max(1, min(len(units), os.cpu_count() or 1))) as pool:
        procs = list(pool.map(run, ([cc, *compile_flags, "-c", str(s), "-o", str(o)] for s, o in zip(sources, objects))))
    so = tmp / "graphdyn_native.so"
    procs = [p for p in procs if p.returncode != 0] or [run([cc, *flags, *map(str, objects), "-o", str(so), *libs])]
    if procs[0].returncode == 0:
        return so
    lines = (procs[0].stderr or procs[0].stdout).strip().splitlines()
    errors = [line.strip() for line in lines if "error" in line]  # the compiler's "file:line: error: ..." lines first
    return " | ".join(errors[:3] or lines[-3:])


# tried in order: with glibc's vector math library (SIMD exp/tanh), then without
VARIANTS = ((("-DGRAPHDYN_MVEC",), ("-lmvec", "-lm")), ((), ("-lm",)))


def _build(out_dir: Path) -> Path:
    """Compile the sources into ``out_dir`` (or reuse an earlier build); the library's path."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError(f"no C compiler ({os.environ.get('CC', 'cc')!r} not on PATH)")
    units = _units()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"{cc} --version failed: {e}") from None
    builds = []  # (flags, libs, path) per variant
    for defines, libs in VARIANTS:
        flags = (*FLAGS, *defines)
        key = hashlib.sha256("\0".join([*units, cc, version, " ".join(flags + libs), _cpu_flags()]).encode()).hexdigest()[:16]
        builds.append((flags, libs, out_dir / f"graphdyn-{key}.so"))
    for _, _, lib in builds:  # any earlier build: a variant that failed to link is not retried every start
        if lib.exists():
            return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    error = ""
    for flags, libs, lib in builds:
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            result = _compile(cc, flags, libs, units, Path(tmp))
            if isinstance(result, Path):
                os.replace(result, lib)
                return lib
            error = result
    raise RuntimeError(f"{cc} failed: {error}")


def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; ``None`` where unavailable (see the module doc)."""
    if not enabled():
        return None
    if "lib" in _state:  # loaded (or failed) already: no lock needed to read it
        return _cached()
    with _lock:
        if "lib" in _state:
            return _cached()
        lib = None
        try:
            try:
                path = _build(cache_dir())
            except OSError:  # cache folder not writable: build in a private temporary folder
                path = _build(Path(tempfile.mkdtemp(prefix="graphdyn-native-")))
            lib = ctypes.CDLL(str(path))
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _state["error"] = str(e)
            if required():
                _state["lib"] = None
                raise RuntimeError(f"graphdyn: native kernels failed to build and ${REQUIRE_ENV} is set: {e}") from None
            warnings.warn(f"graphdyn: native kernels unavailable ({e}); using the PyTorch implementation", stacklevel=2)
        else:
            _state["path"] = str(path)
        _state["lib"] = lib
        return lib


def required() -> bool:
    """True when ``$GRAPHDYN_REQUIRE_NATIVE`` is ``1`` (``make test`` sets it): a failed build is
    then an error, raised by :func:`load` every time it is asked, instead of a warning."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def status() -> dict[str, object]:
    """Whether the kernels are enabled and built (building them if needed), from where, and why not:
    ``{"enabled", "compiled", "library", "compiler", "error"}``."""
    try:
        lib = load()
    except RuntimeError:
        lib = None
    cc = _compiler()
    error = None if lib is not None else ("disabled by $GRAPHDYN_NATIVE" if not enabled() else _state.get("error"))
    return {"enabled": enabled(), "compiled": lib is not None, "library": _state.get("path"),
            "compiler": cc, "error": error}


def _cached() -> ctypes.CDLL | None:
    if _state["lib"] is None and required():
        raise RuntimeError(f"graphdyn: native kernels failed to build and ${REQUIRE_ENV} is set: {_state.get('error')}")
    return _state["lib"]  # type: ignore[return-value]


def available() -> bool:
    """Whether the native kernels are (or can be) loaded."""
    return load() is not None


def kernel(name: str, dtype: torch.dtype):
    """The C function ``name`` for ``dtype`` (``_f32`` / ``_f64``), or ``None``."""
    lib = load()
    if lib is None or dtype not in (torch.float32, torch.float64):
        return None
    return getattr(lib, f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")


i64 = ctypes.c_int64


def accepts(name: str, tensors) -> bool:
    """Whether kernel ``name`` can take ``tensors``: all on the CPU, all of one float32 or float64
    dtype, and the library loaded. Wrappers return ``None`` (PyTorch runs) otherwise."""
    tensors = list(tensors)
    dtype = tensors[0].dtype
    return all(t.is_cpu and t.dtype == dtype for t in tensors) and kernel(name, dtype) is not None


def refusal(tensors) -> str | None:
    """Why the kernels cannot take ``tensors`` (None: they can): all must be on the CPU, of one
    float32 or float64 dtype, and the library loaded."""
    tensors = [t for t in tensors if t is not None]
    dtype = tensors[0].dtype
    if not all(t.device.type == "cpu" for t in tensors):
        return "tensors not on the CPU"
    if dtype not in (torch.float32, torch.float64) or any(t.dtype != dtype for t in tensors):
        return f"dtype {dtype} (the kernels take float32 or float64, all tensors alike)"
    if load() is None:
        return f"the kernels are unavailable ({status()['error']})"
    return None


def check_edges(
    edge_index: torch.Tensor, n_nodes: int, edge_attr: torch.Tensor | None = None, batch: int = 1, k: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous int64 (receivers, senders) after checking what a kernel would otherwise read out
    of bounds: node numbers in ``[0, n_nodes)`` and edge attributes ``[E, K]`` or ``[B, E, K]``."""
    E = edge_index.shape[1]
    if edge_attr is not None and edge_attr.shape not in ((E, k), (batch, E, k)):
        raise ValueError(f"edge_attr {tuple(edge_attr.shape)} is neither [E, K] nor [B, E, K] with E = {E}")
    ei = edge_index.to(torch.int64)
    if E and (int(ei.min()) < 0 or int(ei.max()) >= n_nodes):
        raise IndexError(f"edge_index holds node numbers outside [0, {n_nodes})")
    return ei[0].contiguous(), ei[1].contiguous()


def call(name: str, dtype: torch.dtype, *args) -> None:
    """Run kernel ``name`` for ``dtype``; kernels return 0, 1 when memory ran out, 2 for sizes they do not take."""
    code = kernel(name, dtype)(*args)
    if code == 1:
        raise MemoryError(f"graphdyn native kernel {name}: out of memory")
    if code != 0:
        raise ValueError(f"graphdyn native kernel {name}: unsupported sizes (code {code})")


def ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    """A tensor's data pointer for a kernel argument (``NULL`` for ``None``)."""
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def real(dtype: torch.dtype, v: float) -> ctypes.c_float | ctypes.c_double:
    """A scalar kernel argument of the kernel's ``real`` type for ``dtype`` (float32: C float, else double)."""
    return (ctypes.c_float if dtype == torch.float32 else ctypes.c_double)(v)
