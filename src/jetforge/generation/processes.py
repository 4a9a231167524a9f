"""Registry of hard processes: Pythia settings and the truth objects a jet must match.

Each process names (i) the Pythia 8 settings that produce its hard scatter (decays of
heavy bosons forced to the channel the paper uses) and (ii) how to find, in the hard
record, the object whose jet we study (the recoiling quark/gluon, or the boson and its
decay partons). A jet is kept only if it is within ΔR of *all* of the truth objects
(RS3L §II B: "one QCD parton ... or a Higgs boson along with its two decay b quarks").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Process:
    name: str
    description: str
    settings: tuple[str, ...]
    label: str  # class name written to the dataset
    # PDG id (absolute) of the tagged boson; None = the recoiling QCD parton is tagged
    boson: int | None = None
    # PDG ids (absolute) of the boson decay partons that must be matched too
    decay_ids: tuple[int, ...] = field(default_factory=tuple)


_Z_TO_NUNU = ("23:onMode = off", "23:onIfAny = 12 14 16")

PROCESSES: dict[str, Process] = {
    p.name: p
    for p in [
        Process(
            name="qcd_zjet",
            description="pp → Z(→νν̄) + jet; the jet is the QCD background (RS3L §II B)",
            settings=(
                "WeakBosonAndParton:qqbar2gmZg = on",
                "WeakBosonAndParton:qg2gmZq = on",
                "WeakZ0:gmZmode = 2",
                *_Z_TO_NUNU,
            ),
            label="qcd",
        ),
        Process(
            name="hbb_zh",
            description="pp → Z(→νν̄) H(→bb̄); the Higgs jet is the signal (RS3L §II B)",
            settings=(
                "HiggsSM:ffbar2HZ = on",
                "25:onMode = off",
                "25:onIfMatch = 5 -5",
                *_Z_TO_NUNU,
            ),
            label="hbb",
            boson=25,
            decay_ids=(5, 5),
        ),
        Process(
            name="wqq_wjet",
            description="pp → W(→qq̄') + jet with the W as the jet; out-of-distribution task (RS3L §III B 2)",
            settings=(
                "WeakBosonAndParton:qqbar2Wg = on",
                "WeakBosonAndParton:qg2Wq = on",
                "24:onMode = off",
                "24:onIfAny = 1 2 3 4",
            ),
            label="wqq",
            boson=24,
            decay_ids=(),  # two light quarks of any flavour; matched as "both daughters"
        ),
    ]
}


def get_process(name: str) -> Process:
    try:
        return PROCESSES[name]
    except KeyError:
        raise KeyError(
            f"unknown process {name!r}; known processes: {', '.join(sorted(PROCESSES))}"
        ) from None
