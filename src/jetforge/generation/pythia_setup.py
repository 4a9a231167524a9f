"""Creating configured Pythia instances.

One place builds every Pythia object so the quiet/seed conventions are identical for hard
process, shower variants and minimum bias: banner off, ``Print:quiet``, an explicit seed,
no event-count printing. An unknown or mistyped setting makes Pythia print a warning and
carry on with the default; we instead fail loudly, because a silently ignored shower
setting would invalidate a whole re-simulated dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class PythiaSettingError(ValueError):
    """A Pythia setting that Pythia did not accept."""


def make_pythia(settings: Iterable[str], seed: int | None, hooks: Any | None = None) -> Any:
    """An initialised Pythia; ``seed`` None leaves Pythia's default seed (for instances that
    draw no random numbers), ``hooks`` (a ``pythia8mc.UserHooks``) is set before ``init``."""
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    base = ["Print:quiet = on", "Next:numberCount = 0"]
    if seed is not None:
        base += ["Random:setSeed = on", f"Random:seed = {seed}"]
    for s in [*base, *settings]:
        if not py.readString(s):
            raise PythiaSettingError(
                f"Pythia rejected the setting {s!r}; check its spelling against the Pythia 8 "
                "manual (settings are 'Group:name = value')"
            )
    if hooks is not None:
        py.setUserHooksPtr(hooks)
    if not py.init():
        raise RuntimeError(
            "Pythia failed to initialise with settings:\n  " + "\n  ".join(map(str, settings))
        )
    return py
