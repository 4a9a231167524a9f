"""Atomic file outputs.

Snakemake treats an existing output as done; a job killed half-way through writing must
therefore never leave a file at the final path. Everything jetforge writes goes to a
temporary sibling first and is renamed into place only once complete (rename is atomic
on POSIX within one filesystem).

Three details make the outputs behave like files written directly:

- the temporary is created 0600 by :func:`tempfile.mkstemp`; it is given the mode the
  umask allows (``0o666 & ~umask``) before the rename, so group members of a shared
  project directory can read the results;
- a job killed with SIGKILL cannot remove its temporary; the next write of the same output
  sweeps such leftovers (:func:`sweep_stale`), so reruns leave no hidden files behind;
- ``torch.save`` records the archive name, taken from the file name, inside the file:
  :func:`write_torch` serialises to memory first so a model file's bytes depend only on
  its contents, never on the random temporary name.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Wall-clock time this module was imported, i.e. (about) when this job's process started.
#: Temporaries older than this cannot belong to a write of this process.
_PROCESS_START = time.time()

#: :func:`tempfile.mkstemp` draws 8 characters from this alphabet between prefix and suffix.
_MKSTEMP_RANDOM = r"[a-z0-9_]{8}"


def _temp_prefix_suffix(final: Path) -> tuple[str, str]:
    return f".{final.stem}.", f".tmp{final.suffix}"


def sweep_stale(path: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries that an earlier, killed write of ``path`` left behind.

    Only siblings matching exactly our own name pattern (``.<stem>.<8 random>.tmp<suffix>``,
    so ``a.h5`` never touches the temporaries of ``a.b.h5``) and last modified before this
    process started are removed: Snakemake never runs two jobs for the same output at once,
    and the age test keeps a write begun by a later process safe all the same. Returns the
    removed paths.
    """
    final = Path(path)
    if not final.parent.is_dir():
        return []
    prefix, suffix = _temp_prefix_suffix(final)
    pattern = re.compile(re.escape(prefix) + _MKSTEMP_RANDOM + re.escape(suffix))
    removed = []
    for p in final.parent.glob(".*"):
        if not pattern.fullmatch(p.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if p.is_file() and p.stat().st_mtime < _PROCESS_START:
                p.unlink()
                removed.append(p)
    return removed


def current_umask() -> int:
    """The process umask, read without changing it.

    ``os.umask`` can only be read by setting it; doing so briefly opens a window in which
    another thread creates world-writable files. Linux reports it in /proc instead.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary keeps the final suffix so libraries that sniff extensions (matplotlib,
    h5py) behave the same. On any exception the temporary is removed and nothing appears
    at ``path``. Stale temporaries of ``path`` are swept first, and the result gets the
    permissions the umask allows.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final)
    prefix, suffix = _temp_prefix_suffix(final)
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically, with bytes that depend only on ``obj``.

    Saving to a file stores that file's name inside the zip archive; a temporary's random
    name would make every ``model.pt`` differ. An in-memory buffer gets the fixed name
    ``archive``.
    """
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON; non-finite floats become ``null``.

    ``json.dumps`` would write a bare ``NaN``/``Infinity``, which is not JSON and which
    strict readers (jq, browsers, other languages) refuse. ``allow_nan=False`` makes
    anything the conversion misses fail here rather than in someone else's reader.
    """
    text = json.dumps(
        _json_safe(obj), indent=2, sort_keys=True, allow_nan=False, default=_json_default
    )
    write_text(path, text + "\n")


def _json_safe(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and NaN/±inf as ``None``, recursively."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {_json_key(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _json_key(key: Any) -> Any:
    import numpy as np

    return key.item() if isinstance(key, np.generic) else key


def _json_default(obj: Any) -> Any:
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON: {obj!r:.80}")
