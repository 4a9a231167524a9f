"""Send everything a rule prints, Pythia's C++ output included, to the rule's log file.

On a cluster the rule's ``log:`` file is often all a user has, so it must say what ran,
how it went and, when it failed, why:

- a header: rule, wildcards, threads, the device (``auto`` resolved, with the GPU's name
  or a plain statement that it fell back to the CPU), inputs and outputs;
- every ``logging`` record at INFO and above (a handler on the root logger);
- everything written to file descriptors 1 and 2: Pythia and fastjet write there
  directly, which ``contextlib``'s Python-level redirection does not catch; duplicating
  the descriptors does. ``sys.stdout``/``sys.stderr`` are redirected as well, line
  buffered, so ``print`` lands in order with the rest even where they are not backed by
  descriptors 1 and 2 (notebooks, pytest's capture);
- on failure the full traceback, written *before* the descriptors are restored (Python
  prints an uncaught exception only after leaving the ``with`` block, by which time
  stderr is the console again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import IO, Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Inputs listed in the header at most (a paper table reads hundreds of prediction files).
MAX_LISTED = 40

log = logging.getLogger(__name__)


def describe_device(requested: str | None) -> str:
    """What ``device: requested`` means on this machine, in words for the log.

    ``None``: the rule never asks for an accelerator (generation, merging, figures).
    Mirrors :func:`jetforge.training.engine.resolve_device`, which refuses ``cuda``
    without a GPU; ``auto`` falling back to the CPU is legal but must not go unsaid.
    """
    if requested is None:
        return "cpu (this rule does not use an accelerator)"
    try:
        import torch
    except ImportError:  # an environment without torch (generation-only)
        return f"{requested} (torch not importable here)"
    try:
        return _torch_device_words(torch, requested)
    except Exception as err:  # a broken driver must not stop the job before its log exists
        return f"{requested} (could not query CUDA: {err})"


def _torch_device_words(torch: Any, requested: str) -> str:
    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        if has_cuda:
            return f"cuda:0 ({torch.cuda.get_device_name(0)}; device: auto)"
        return "cpu (no CUDA device found; device: auto fell back to CPU)"
    if requested.startswith("cuda"):
        if not has_cuda:
            return f"{requested} requested, but no CUDA device found"
        index = torch.device(requested).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return requested


def _listing(label: str, paths: Iterable[Any]) -> list[str]:
    paths = [os.fspath(p) for p in paths]
    shown = paths[:MAX_LISTED] or ["(none)"]
    lines = [f"{label:<10} {shown[0]}"] + [f"{'':<10} {p}" for p in shown[1:]]
    if len(paths) > MAX_LISTED:
        lines.append(f"{'':<10} … and {len(paths) - MAX_LISTED} more")
    return lines


def format_header(
    rule: str,
    wildcards: dict[str, Any] | None = None,
    inputs: Iterable[Any] = (),
    outputs: Iterable[Any] = (),
    threads: int | None = None,
    device: str | None = None,
) -> str:
    """The block a job's log starts with: what ran, where, on what, when."""
    when = time.strftime(DATE_FORMAT + " %Z", time.localtime())
    wc = ", ".join(f"{k}={v}" for k, v in (wildcards or {}).items()) or "(none)"
    lines = [
        f"==== jetforge rule {rule}: started {when} on {socket.gethostname()} (pid {os.getpid()})",
        f"{'wildcards:':<10} {wc}",
        f"{'threads:':<10} {threads if threads is not None else '?'}",
        f"{'device:':<10} {describe_device(device)}",
        *_listing("input:", inputs),
        *_listing("output:", outputs),
    ]
    return "\n".join(lines) + "\n====\n"


def job_header(job: Any) -> str:
    """:func:`format_header` of a Snakemake script's ``snakemake`` object.

    The device is the rule's ``params.device`` (the training and probe rules pass the
    config's ``device``); rules without it run on the CPU only.
    """
    params = getattr(job, "params", None)
    device = params.get("device") if params is not None else None
    return format_header(
        rule=job.rule,
        wildcards=dict(job.wildcards.items()),
        inputs=list(job.input),
        outputs=list(job.output),
        threads=job.threads,
        device=device,
    )


def job_log(job: Any) -> contextlib.AbstractContextManager[None]:
    """``log_to`` the job's first log file with its header: the one line every
    ``workflow/scripts/*.py`` wraps its work in.

    Temporaries that a killed earlier run of this job left beside its outputs are swept
    here, at the start of the rule, even if this run fails before it writes anything.
    """
    from jetforge.io.atomic import sweep_stale

    swept = [os.fspath(p) for out in job.output for p in sweep_stale(out)]
    header = job_header(job)
    if swept:
        header += "".join(f"swept stale temporary {p}\n" for p in swept)
    return log_to(job.log[0] if len(job.log) else None, header=header)


@contextlib.contextmanager
def _root_handler(stream: IO[str]) -> Iterator[None]:
    """INFO and above of every logger to ``stream`` while the block runs."""
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    level = root.level
    if level > logging.INFO:  # NOTSET (0) on the root already lets everything through
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _write_failure(f: IO[str], exc: BaseException, seconds: float) -> None:
    """Timestamped failure line and full traceback, straight into the log file (not via
    ``logging``, which a library may have silenced)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    stamp = time.strftime(DATE_FORMAT, time.localtime())
    f.write(f"{stamp} ERROR jetforge.workflow: job failed after {seconds:.1f} s\n")
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the ``yield`` of log_to: not where the job failed
    f.write("".join(traceback.format_exception(type(exc), exc, tb)))
    f.flush()


def _is_failure(exc: BaseException) -> bool:
    return not (isinstance(exc, SystemExit) and exc.code in (None, 0))


@contextlib.contextmanager
def log_to(path: str | os.PathLike[str] | None, header: str | None = None) -> Iterator[None]:
    """Everything the block writes or logs, and its traceback if it raises, into ``path``.

    ``header`` (see :func:`format_header`) is written first. The exception is re-raised
    after the descriptors are restored, so Snakemake still sees the job fail and the
    console still shows the traceback. ``path`` empty or ``None``: no redirection.
    """
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    start = time.monotonic()
    with open(path, "a", buffering=1) as f:
        if header:
            f.write(header)
            f.flush()
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            with (
                _root_handler(f),
                contextlib.redirect_stdout(f),
                contextlib.redirect_stderr(f),
            ):
                try:
                    yield
                except BaseException as exc:
                    if _is_failure(exc):
                        _write_failure(f, exc, time.monotonic() - start)
                    raise
                log.info("job done in %.1f s", time.monotonic() - start)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
