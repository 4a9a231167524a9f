"""What each variant of a re-simulated dataset is: a shower setting list, or a fork.

``datasets.<d>.shower.variants`` maps a variant name to either

* a list of Pythia settings appended to ``base_settings`` (RS3L's nominal, seed, FSR up/down
  and alternative shower, Harris et al., arXiv:2403.07066 §II B): its own shower of the
  shared hard event; or
* ``{fork_of: <variant>}``: the *same* hard process and parton shower as that variant,
  hadronized anew (Rieck et al., arXiv:2503.11632 §2; built by
  :mod:`jetforge.generation.resim_fork`). Its source must be a settings variant listed
  before it, so that the source's parton-level records exist when the fork is made.

Kept free of the generator stack: the config check (driver env) imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the key of a fork variant's mapping
FORK_KEY = "fork_of"


@dataclass(frozen=True)
class VariantSpec:
    """One variant: its extra shower ``settings``, or the variant it is a fork of."""

    name: str
    settings: tuple[str, ...] = ()
    fork_of: str | None = None


def parse_variants(variants: Mapping[str, Any], key: str = "shower.variants") -> list[VariantSpec]:
    """The variants in config order; ``ValueError`` naming key, value and fix otherwise."""
    out: list[VariantSpec] = []
    showered: set[str] = set()
    for name, spec in variants.items():
        where = f"config key {key}.{name}"
        if isinstance(spec, Mapping):
            src = spec.get(FORK_KEY)
            if set(spec) != {FORK_KEY}:
                raise ValueError(
                    f"{where}: value {dict(spec)!r} is neither a settings list nor a fork; a "
                    f"fork is {{{FORK_KEY}: <variant>}} and nothing else, e.g. "
                    f"{{{FORK_KEY}: nominal}}"
                )
            if src not in showered:
                raise ValueError(
                    f"{where}.{FORK_KEY}: value {src!r} is not a showered variant listed before "
                    f"{name!r} (have {sorted(showered)}); fork a settings variant listed "
                    f"earlier, e.g. {FORK_KEY}: nominal"
                )
            out.append(VariantSpec(str(name), fork_of=str(src)))
        elif isinstance(spec, list | tuple) or spec is None:
            out.append(VariantSpec(str(name), tuple(str(s) for s in spec or ())))
            showered.add(str(name))
        else:
            raise ValueError(
                f"{where}: value {spec!r} must be a list of Pythia settings or "
                f"{{{FORK_KEY}: <variant>}}"
            )
    return out  # (the first variant, the nominal, cannot be a fork: nothing precedes it)


def variant_errors(key: str, ds: Mapping[str, Any]) -> list[str]:
    """:func:`parse_variants` of a resim dataset config as messages (config checks)."""
    variants = (ds.get("shower") or {}).get("variants") or {}
    try:
        parse_variants(variants, f"{key}.shower.variants")
    except ValueError as exc:
        return [str(exc)]
    return []
