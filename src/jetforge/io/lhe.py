"""Les Houches Event (LHEF 3.0) files: the hand-off between hard process and shower.

jetforge stores every hard scatter as LHE so that (i) each one can be re-showered any
number of times with different settings (RS3L re-simulation), and (ii) users can replace
our Pythia hard process with MadGraph (or any LHEF producer) output. The reader is strict:
a truncated or malformed file raises ``LHEError`` naming the file and the event, since a
silently short file would misalign the re-simulated variants. Gzipped files (MadGraph's
``unweighted_events.lhe.gz``) are read transparently, recognised by their magic bytes
rather than the name, with the same checks; Pythia reads them as they are
(``Beams:LHEF``), so they need no unpacking anywhere in the chain.
"""

from __future__ import annotations

import gc
import gzip
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import starmap
from pathlib import Path
from typing import Any

import numpy as np


class LHEError(ValueError):
    """A Les Houches file that cannot be read as complete, well-formed events."""


@dataclass
class LHEParticle:
    pid: int
    status: int  # LHE ISTUP: -1 incoming, 1 outgoing, 2 intermediate resonance
    mother1: int  # 1-based index within the event, 0 = none
    mother2: int
    col: int
    acol: int
    px: float
    py: float
    pz: float
    e: float
    m: float
    vtim: float = 0.0
    spin: float = 9.0

    @property
    def pt(self) -> float:
        return math.hypot(self.px, self.py)

    @property
    def eta(self) -> float:
        p = math.sqrt(self.px**2 + self.py**2 + self.pz**2)
        if p == abs(self.pz):
            return math.copysign(1e9, self.pz)
        return 0.5 * math.log((p + self.pz) / (p - self.pz))

    @property
    def phi(self) -> float:
        return math.atan2(self.py, self.px)


@dataclass
class LHEEvent:
    particles: list[LHEParticle]
    process_id: int = 1
    weight: float = 1.0
    scale: float = 0.0
    aqed: float = -1.0
    aqcd: float = -1.0
    comments: str = ""

    def momenta(self) -> np.ndarray:
        return np.array([[p.px, p.py, p.pz, p.e] for p in self.particles])


@dataclass
class LHEInit:
    beam_ids: tuple[int, int] = (2212, 2212)
    beam_energies: tuple[float, float] = (6500.0, 6500.0)
    weight_strategy: int = 3  # IDWTUP = 3: unweighted events of unit weight
    processes: list[tuple[float, float, float, int]] = field(
        default_factory=lambda: [(1.0, 0.0, 1.0, 1)]
    )  # (xsec pb, xsec error pb, max weight, process id)


def _format_particle(p: LHEParticle) -> str:
    return (
        f" {p.pid:8d} {p.status:2d} {p.mother1:4d} {p.mother2:4d} {p.col:4d} {p.acol:4d}"
        f" {p.px:+.16e} {p.py:+.16e} {p.pz:+.16e} {p.e:+.16e} {p.m:+.16e}"
        f" {p.vtim:.4e} {p.spin:.1f}"
    )


def format_event(ev: LHEEvent) -> str:
    head = (
        f" {len(ev.particles)} {ev.process_id} {ev.weight:+.10e} {ev.scale:+.10e}"
        f" {ev.aqed:+.10e} {ev.aqcd:+.10e}"
    )
    body = "\n".join(_format_particle(p) for p in ev.particles)
    comments = f"\n{ev.comments}" if ev.comments else ""
    return f"<event>\n{head}\n{body}{comments}\n</event>\n"


def write_lhe(
    path: str | os.PathLike[str],
    events: Iterable[LHEEvent],
    init: LHEInit,
    header: str = "",
) -> int:
    """Write a complete LHEF 3.0 file; returns the number of events written.

    The caller is responsible for atomicity (pass a temporary path from
    ``jetforge.io.atomic.atomic_path``).
    """
    n = 0
    with open(path, "w") as f:
        f.write('<LesHouchesEvents version="3.0">\n<header>\n')
        f.write(header.rstrip() + "\n" if header else "")
        f.write("</header>\n<init>\n")
        (ia, ib), (ea, eb) = init.beam_ids, init.beam_energies
        f.write(
            f" {ia} {ib} {ea:.8e} {eb:.8e} 0 0 0 0 {init.weight_strategy} {len(init.processes)}\n"
        )
        for xs, xe, xm, pid in init.processes:
            f.write(f" {xs:.8e} {xe:.8e} {xm:.8e} {pid}\n")
        f.write("</init>\n")
        for ev in events:
            f.write(format_event(ev))
            n += 1
        f.write("</LesHouchesEvents>\n")
    return n


_EVENT_RE = re.compile(r"<event[^>]*>(.*?)</event>", re.S)


def _event_blocks(body: str) -> list[str]:
    """The contents of the complete ``<event …>…</event>`` elements of ``body``.

    Exactly ``_EVENT_RE.findall(body)`` (the first ``>`` after ``<event`` opens the
    element, the first ``</event>`` after it closes it, non-overlapping), by ``str.find``:
    the lazy ``.*?`` regex costs ~1.5 µs per particle line, this ~0.1.
    """
    out: list[str] = []
    find = body.find
    pos = 0
    while True:
        i = find("<event", pos)
        if i < 0:
            break
        j = find(">", i + 6)
        if j < 0:
            break
        k = find("</event>", j + 1)
        if k < 0:  # no later <event> can be closed either
            break
        out.append(body[j + 1 : k])
        pos = k + 8
    return out


#: first characters of the comment lines LHEF allows after an event's particles
#: (``#aMCatNLO …``, ``<mgrwt>``, ``<rwgt>``, ``<weights>`` …)
_COMMENT_START = ("<", "#")


def _particle_like(line: str) -> bool:
    """Whether ``line`` reads as a particle line: six integers, then seven numbers (further
    columns ignored, as the parser does). No comment line does, so one past the NUP
    particles means NUP is wrong."""
    c = line.split()
    if len(c) < 13:
        return False
    try:
        for x in c[:6]:
            int(x)
        for x in c[6:13]:
            float(x)
    except ValueError:
        return False
    return True


def _check_particle_count(lines: list[str], nup: int) -> None:
    """Raise if the event's particle lines (the run of particle-like lines after the event
    line) are not NUP: more would be kept as a comment and dropped, silently; fewer would
    turn a comment into a particle. A malformed particle line is left to the caller."""
    n = 0
    while 1 + n < len(lines) and _particle_like(lines[1 + n]):
        n += 1
    fewer = n < nup and (len(lines) <= 1 + n or lines[1 + n].lstrip().startswith(_COMMENT_START))
    if n > nup or fewer:
        raise LHEError(
            f"declares {nup} particles (NUP, the first number of its event line) but has {n} "
            "particle lines; fix NUP or the particle lines"
        )


def _parse_event(block: str, path: Path, index: int) -> LHEEvent:
    """One event, field by field: the reference parser, and the one that names what is
    wrong with a file the vectorised :func:`_parse_events_fast` does not take."""
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    try:
        head = lines[0].split()
        nup = int(head[0])
        ev = LHEEvent(
            particles=[],
            process_id=int(head[1]),
            weight=float(head[2]),
            scale=float(head[3]),
            aqed=float(head[4]),
            aqcd=float(head[5]),
        )
        _check_particle_count(lines, nup)
        if len(lines) < 1 + nup:
            raise LHEError(f"declares {nup} particles but has {len(lines) - 1} lines")
        for ln in lines[1 : 1 + nup]:
            c = ln.split()
            if len(c) < 13:
                raise LHEError(f"particle line has {len(c)} columns, expected 13: {ln!r}")
            ev.particles.append(
                LHEParticle(
                    pid=int(c[0]), status=int(c[1]), mother1=int(c[2]), mother2=int(c[3]),
                    col=int(c[4]), acol=int(c[5]), px=float(c[6]), py=float(c[7]),
                    pz=float(c[8]), e=float(c[9]), m=float(c[10]), vtim=float(c[11]),
                    spin=float(c[12]),
                )
            )
        ev.comments = "\n".join(lines[1 + nup :])
        return ev
    except LHEError as exc:
        raise LHEError(f"{path}: event {index}: {exc}") from None
    except (IndexError, ValueError) as exc:
        raise LHEError(f"{path}: event {index} is malformed ({exc})") from None


#: Columns of an event's first line (NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP) and of a
#: particle line (IDUP ISTUP MOTHUP×2 ICOLUP×2 PUP×5 VTIMUP SPINUP), as np.loadtxt parses
#: them: integers strictly as int64 (``1.0`` or ``1e0`` is refused, as ``int()`` does).
_HEAD_DTYPE = np.dtype(
    [("nup", "i8"), ("process_id", "i8")]
    + [(k, "f8") for k in ("weight", "scale", "aqed", "aqcd")]
)
_PARTICLE_DTYPE = np.dtype(
    [(k, "i8") for k in ("pid", "status", "mother1", "mother2", "col", "acol")]
    + [(k, "f8") for k in ("px", "py", "pz", "e", "m", "vtim", "spin")]
)


def _columns(lines: list[str], dtype: np.dtype) -> list[list]:
    """The first ``len(dtype)`` whitespace-separated columns of ``lines`` as Python lists
    (int / float); raises ValueError (or a warning as an error) on anything np.loadtxt
    cannot convert exactly, including a line with fewer columns."""
    if not lines:
        return [[] for _ in dtype.names]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. numpy < 2 parsing "1.0" as an integer
        arr = np.loadtxt(lines, dtype=dtype, comments=None, usecols=range(len(dtype.names)))
    arr = arr.reshape(-1)
    return [arr[k].tolist() for k in dtype.names]


def _parse_events_fast(blocks: list[str]) -> list[LHEEvent] | None:
    """All events at once: the same values as :func:`_parse_event` on each block, or None
    where a block is anything but regular (then the per-event parser decides, and names
    the event at fault).

    Each block is cut into lines exactly as :func:`_parse_event` does (first non-blank line
    the event line, the next NUP the particles, the rest the comments), but the numbers of
    the events are converted by two ``np.loadtxt`` calls (C parser; a float column is the
    correctly rounded double of its text, as ``float()`` gives) instead of 13 ``float()``
    / ``int()`` calls per particle line, and the objects are built by ``starmap`` over the
    columns. np.loadtxt accepts a subset of what ``int()`` / ``float()`` accept (no
    ``1_000``, no non-ASCII digits); whatever it refuses falls back to the per-event parser.
    """
    heads: list[str] = []
    nups: list[int] = []
    plines: list[str] = []
    comments: list[str] = []
    for block in blocks:
        lines = block.strip().splitlines()
        if not all(map(str.strip, lines)):  # blank lines inside the event: drop them
            lines = [ln for ln in lines if ln.strip()]
        if not lines:
            return None
        try:
            nup = int(lines[0].split(None, 1)[0])
        except ValueError:
            return None
        if nup < 0 or len(lines) < 1 + nup:
            return None
        if len(lines) > 1 + nup and not lines[1 + nup].lstrip().startswith(_COMMENT_START):
            return None  # a line past NUP that is no comment: the per-event parser decides
        heads.append(lines[0])
        nups.append(nup)
        plines += lines[1 : 1 + nup]
        comments.append("\n".join(lines[1 + nup :]))
    try:
        head = _columns(heads, _HEAD_DTYPE)
        cols = _columns(plines, _PARTICLE_DTYPE)
    except (ValueError, TypeError, OverflowError, Warning):
        return None
    if head[0] != nups:  # NUP as int() read it (it cut the blocks); never differs in practice
        return None
    particles = list(starmap(LHEParticle, zip(*cols, strict=True)))
    per_event: list[list[LHEParticle]] = []
    start = 0
    for n in nups:
        per_event.append(particles[start : start + n])
        start += n
    return list(starmap(LHEEvent, zip(per_event, *head[1:], comments, strict=True)))


#: Events converted per np.loadtxt call: bounds the transient copies (line strings,
#: arrays, column lists) of a large file to ~15 MB without costing speed.
_SLAB_EVENTS = 10_000


def _parse_events(blocks: list[str], path: Path) -> list[LHEEvent]:
    """The events of ``blocks`` (file order); a slab of events the vectorised parser
    does not take is parsed event by event, which raises the error naming the event."""
    events: list[LHEEvent] = []
    # The cyclic garbage collector would run every ~700 of the new (acyclic) objects and
    # rescan the live ones: ~60 % of the object-building time of a 10k-event file.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for start in range(0, len(blocks), _SLAB_EVENTS):
            slab = blocks[start : start + _SLAB_EVENTS]
            fast = _parse_events_fast(slab)
            if fast is None:
                fast = [_parse_event(blk, path, start + i) for i, blk in enumerate(slab)]
            events += fast
    finally:
        if gc_was_enabled:
            gc.enable()
    return events


def read_lhe(
    path: str | os.PathLike[str], min_events: int | None = None
) -> tuple[LHEInit, list[LHEEvent]]:
    """Read a whole LHE file; raise ``LHEError`` if it is truncated or malformed, or holds
    fewer than ``min_events`` events (a chunk's ``events_per_chunk``)."""
    init, events = _read(Path(path))
    if min_events is not None and len(events) < min_events:
        raise LHEError(
            f"{path}: holds {len(events)} events but the dataset's events_per_chunk is "
            f"{min_events}; give each chunk file at least that many events or lower "
            "events_per_chunk"
        )
    return init, events


def chunk_min_events(ds_cfg: Mapping[str, Any]) -> int | None:
    """The events a chunk's LHE file must hold: ``events_per_chunk`` for your files
    (``hard_process.source: lhe``); None for ours, which the hard-process rule writes with
    exactly that many (and tests re-shower shorter samples)."""
    if (ds_cfg.get("hard_process") or {}).get("source") != "lhe":
        return None
    return int(ds_cfg["events_per_chunk"])


def iter_lhe_events(path: str | os.PathLike[str]) -> Iterator[LHEEvent]:
    yield from _read(Path(path))[1]


#: the first two bytes of every gzip member (RFC 1952)
GZIP_MAGIC = b"\x1f\x8b"


def _read_text(path: Path) -> str:
    """The file's text, inflated if it is gzip; a damaged or cut gzip stream is an
    ``LHEError`` naming the file (gzip's own EOFError names none)."""
    with open(path, "rb") as fh:
        packed = fh.read(2) == GZIP_MAGIC
    if not packed:
        return path.read_text()
    try:
        with gzip.open(path, "rt") as fh:
            return fh.read()
    except (EOFError, OSError, UnicodeDecodeError) as exc:
        raise LHEError(
            f"{path}: gzip stream cannot be read to its end ({exc}); a truncated or damaged "
            ".lhe.gz: copy it again or regenerate it"
        ) from None


def _read(path: Path) -> tuple[LHEInit, list[LHEEvent]]:
    if not path.exists():
        raise LHEError(f"{path}: LHE file does not exist")
    text = _read_text(path)
    if "<LesHouchesEvents" not in text:
        raise LHEError(f"{path}: not a Les Houches file (no <LesHouchesEvents> tag)")
    if "</LesHouchesEvents>" not in text:
        raise LHEError(
            f"{path}: truncated (no closing </LesHouchesEvents>); regenerate it or "
            "delete it so Snakemake rebuilds it"
        )
    m = re.search(r"<init>(.*?)</init>", text, re.S)
    if not m:
        raise LHEError(f"{path}: no <init> block")
    # MadGraph5_aMC@NLO puts a <generator ...>...</generator> element (and sometimes '#'
    # comment lines) inside <init>: optional information, not part of the numeric block
    block = re.sub(r"<(\w+)[^>]*>.*?</\1>|<[^>]*/>", "", m.group(1), flags=re.S)
    try:
        rows = [
            r.split()
            for r in block.strip().splitlines()
            if r.strip() and not r.lstrip().startswith("#")
        ]
        b = rows[0]
        n_proc = int(b[9]) if len(b) > 9 else len(rows) - 1  # NPRUP
        init = LHEInit(
            beam_ids=(int(b[0]), int(b[1])),
            beam_energies=(float(b[2]), float(b[3])),
            weight_strategy=int(b[8]),
            processes=[
                (float(r[0]), float(r[1]), float(r[2]), int(r[3])) for r in rows[1 : 1 + n_proc]
            ],
        )
    except (IndexError, ValueError) as exc:
        raise LHEError(f"{path}: malformed <init> block ({exc})") from None
    body = text[m.end() :]
    n_open = body.count("<event")
    events = _parse_events(_event_blocks(body), path)
    if len(events) != n_open:
        raise LHEError(f"{path}: {n_open} <event> tags but {len(events)} complete events")
    return init, events
