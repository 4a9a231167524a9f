"""Registry of hard processes: Pythia settings and the truth objects a jet must match.

Each process names (i) the Pythia 8 settings that produce its hard scatter (decays of
heavy bosons forced to the channel the paper uses) and (ii) how to find, in the hard
record, the object whose jet we study (the recoiling quark/gluon, or the boson and its
decay partons). A jet is kept only if it is within ΔR of *all* of the truth objects
(RS3L §II B: "one QCD parton ... or a Higgs boson along with its two decay b quarks").
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Classes of final decay products a :class:`DecayChain` may require, by |PDG id|. Classes
#: are nested (b, c ⊂ q) or disjoint, and matching tries every assignment, so e.g. a
#: hadronic W → c b̄ still counts as "q q" and t → b (W → c b̄) as "b q q".
PRODUCT_CLASSES: dict[str, frozenset[int]] = {
    "q": frozenset({1, 2, 3, 4, 5}),  # any quark lighter than the top
    "b": frozenset({5}),
    "c": frozenset({4}),
    "g": frozenset({21}),
    "l": frozenset({11, 13}),  # charged lepton e or mu (JetClass ℓ; τ excluded)
    "nu": frozenset({12, 14}),
}
#: Decay products a jet cannot contain, so they identify a decay but are never matched.
INVISIBLE_PRODUCTS: frozenset[str] = frozenset({"nu"})


@dataclass(frozen=True)
class DecayChain:
    """A resonance and the final products its decay chain must end in.

    Why a chain and not only direct daughters: JetClass-style labels are defined by the
    *final* partons/leptons, through intermediate resonances (t → b W → b q q',
    H → W W* → ℓ ν q q'), and Pythia's decay tables are per particle species, so a sample
    with both W's free to decay needs an event-by-event check of which chain occurred.
    ``products`` lists one class name of :data:`PRODUCT_CLASSES` per final product; the
    leaves of the resonance's decay tree must match them one to one.
    """

    resonance: int  # |PDG id| of the tagged resonance
    products: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [c for c in self.products if c not in PRODUCT_CLASSES]
        if unknown or not self.products:
            raise ValueError(
                f"DecayChain products {self.products!r}: unknown classes {unknown}; "
                f"use one of {sorted(PRODUCT_CLASSES)}"
            )


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
    # A decay chain to identify and match (resonance → … → final products); when set it
    # takes precedence over ``boson``/``decay_ids`` in ``hard.tagged_objects``.
    chain: DecayChain | None = None
    # QCD processes only: "one" = exactly one outgoing parton (V + jet); "central" = the
    # most central of several outgoing partons (2 → 2 dijets, where both have the same pT).
    parton_pick: str = "one"


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
            description=(
                "pp → W(→qq̄') + jet with the W as the jet; out-of-distribution task "
                "(RS3L §III B 2)"
            ),
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


# --- Processes of the single-shower benchmark datasets (JetClass, JetNet, RODEM, top
# tagging, quark–gluon; jetforge.datasets.single). Pythia 8 LO 2 → 2 stand-ins for the
# papers' MadGraph samples: the recoiler of every Higgs is Z → νν̄ (as in RS3L's hbb_zh),
# W/Z jets recoil against a parton, tops come in pairs. Decays are forced per species;
# where one species must decay two ways in one event (H → W W* → ℓν qq', one top hadronic
# and the other free), the table allows both and the hard-process filter keeps only the
# events whose chain matches (``hard.tagged_objects`` raises ``NoTaggedObject`` otherwise).
_W_HADRONIC = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_W_HADRONIC_OR_LIGHT_LEPTON = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13")
_ZH = ("HiggsSM:ffbar2HZ = on", *_Z_TO_NUNU, "25:onMode = off")
_ZJET = (
    "WeakBosonAndParton:qqbar2gmZg = on",
    "WeakBosonAndParton:qg2gmZq = on",
    "WeakZ0:gmZmode = 2",
)
_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")

_BENCHMARK_PROCESSES = [
    Process(
        name="hcc_zh",
        description="pp → Z(→νν̄) H(→cc̄); JetClass H → cc̄ (Qu et al., arXiv:2202.03772 §2)",
        settings=(*_ZH, "25:onIfMatch = 4 -4"),
        label="hcc", boson=25, chain=DecayChain(25, ("c", "c")),
    ),
    Process(
        name="hgg_zh",
        description="pp → Z(→νν̄) H(→gg); JetClass H → gg",
        settings=(*_ZH, "25:onIfMatch = 21 21"),
        label="hgg", boson=25, chain=DecayChain(25, ("g", "g")),
    ),
    Process(
        name="h4q_zh",
        description="pp → Z(→νν̄) H(→WW*→4q); JetClass H → 4q",
        settings=(*_ZH, "25:onIfMatch = 24 -24", *_W_HADRONIC),
        label="h4q", boson=25, chain=DecayChain(25, ("q", "q", "q", "q")),
    ),
    Process(
        name="hlvqq_zh",
        description="pp → Z(→νν̄) H(→WW*→ℓνqq', ℓ = e, μ); JetClass H → ℓνqq'",
        settings=(*_ZH, "25:onIfMatch = 24 -24", *_W_HADRONIC_OR_LIGHT_LEPTON),
        label="hlvqq", boson=25, chain=DecayChain(25, ("l", "nu", "q", "q")),
    ),
    Process(
        name="tbqq_tt",
        description="pp → tt̄, tagged t → bW(→qq'), the other top free (hadronic or e/μ); "
        "JetClass t → bqq', top-tagging and JetNet top jets",
        settings=(*_TTBAR, *_W_HADRONIC_OR_LIGHT_LEPTON),
        label="tbqq", boson=6, chain=DecayChain(6, ("b", "q", "q")),
    ),
    Process(
        name="tblv_tt",
        description="pp → tt̄, tagged t → bW(→ℓν, ℓ = e, μ), the other top free; JetClass t → bℓν",
        settings=(*_TTBAR, *_W_HADRONIC_OR_LIGHT_LEPTON),
        label="tblv", boson=6, chain=DecayChain(6, ("b", "l", "nu")),
    ),
    Process(
        name="zqq_zjet",
        description="pp → Z(→qq̄) + jet with the Z as the jet; JetClass Z → qq̄, JetNet Z",
        settings=(*_ZJET, "23:onMode = off", "23:onIfAny = 1 2 3 4 5"),
        label="zqq", boson=23, chain=DecayChain(23, ("q", "q")),
    ),
    Process(
        name="zjet_q",
        description="qg → Z(→νν̄) q: quark jets (Komiske, Metodiev, Thaler, arXiv:1810.05165 "
        "§4.1 'qg2gmZq'; JetNet q)",
        settings=("WeakBosonAndParton:qg2gmZq = on", "WeakZ0:gmZmode = 2", *_Z_TO_NUNU),
        label="quark",
    ),
    Process(
        name="zjet_g",
        description="qq̄ → Z(→νν̄) g: gluon jets (arXiv:1810.05165 §4.1 'qqbar2gmZg'; JetNet g)",
        settings=("WeakBosonAndParton:qqbar2gmZg = on", "WeakZ0:gmZmode = 2", *_Z_TO_NUNU),
        label="gluon",
    ),
    Process(
        name="qcd_dijet",
        description="pp → jj (HardQCD:all); the more central parton is tagged. QCD "
        "background of top tagging (Kasieczka et al., arXiv:1902.09914) and RODEM",
        settings=("HardQCD:all = on",),
        label="qcd", parton_pick="central",
    ),
]
for _p in _BENCHMARK_PROCESSES:
    if _p.name in PROCESSES:
        raise RuntimeError(f"process {_p.name!r} is defined twice in jetforge.generation.processes")
    PROCESSES[_p.name] = _p



# --- Processes of the hadronization-fork dataset (Rieck et al., SSL strategies for jet
# physics, 2025; jetforge.datasets.hadfork). The paper generates "pairs of quarks,
# gluons, or tau leptons in the final state" with MadGraph5_aMC@NLO, each with pT > 100 GeV
# and |eta| < 3 (cuts: the dataset's hard_cuts, applied to every outgoing particle by the
# fork's process-level veto), in yield ratio 3:3:1 (realised by chunk counts 3:3:1 at equal
# events_per_chunk). Pythia 8 LO 2 -> 2 stand-ins:
#   q q: every 2 -> 2 QCD process with two outgoing quarks (qq' -> qq', qqbar -> q'qbar',
#        gg -> qqbar); HardQCD:nQuarkNew = 4 gives u d s c as new flavours, MadGraph's
#        default 4-flavour "j";
#   g g: gg -> gg and qqbar -> gg;
#   tau tau: f fbar -> gamma*/Z -> tau+ tau- as a genuine 2 -> 2 process
#        (WeakSingleBoson:ffbar2ffbar(s:gmZ)), so PhaseSpace:pTHatMin cuts the taus' pT
#        directly; the resonance form ffbar2gmZ would need mHat > 200 GeV and waste most
#        events on the pT cut. Tau decays are restricted to hadronic 1/3-prong channels by
#        the fork (jetforge.generation.hadfork.TauForcer).
# Dark jets (§5: "dark jet models with four parameter sets as used by the ATLAS
# collaboration [JHEP 02 (2024) 128]"): Pythia's Hidden Valley, q qbar -> Z_v -> q_v qbar_v
# with SU(3)_v showers and string fragmentation into dark mesons that decay promptly back
# to SM quarks. m(Z_v) only sets the dark jets' pT spectrum, which is resampled to the SM
# one anyway, so it is an efficiency choice: 300 GeV (Jacobian peak at 150 GeV, just above
# the 100 GeV cut) overlaps the falling SM spectrum for A and B; the wide (C) and
# semi-visible (D) jets need 500 GeV to pass the jet selection often enough (measured pairs
# per hard event at 300 / 500 GeV: C 0.05 / 0.23, D 0.12 / 0.35; A 1.5 and B 0.65 at 300).
# ATLAS's model table was not available to us; the four sets below are STAND-INS spanning
# the axes that change jet substructure: dark meson mass (A: 2, B: 10, C: 20 GeV;
# multiplicity falls and prongs sharpen as it rises), the rho_v/pi_v mass ratio, and the
# invisible fraction (D = B with 2 flavours, so about half the mesons
# are stable off-diagonal pi_v/rho_v and leave the jet semi-visible). Lambda_v sets the
# running dark coupling (alphaOrder = 1), pTminFSR = 1.1 Lambda_v keeps the shower above it.
# All dark jets are later resampled to the SM jets' (pT, eta) (datasets.hadfork.resample_to).
_HV_COMMON = (
    "HiddenValley:ffbar2Zv = on",
    "HiddenValley:Ngauge = 3",
    "HiddenValley:fragment = on",
    "HiddenValley:FSR = on",
    "HiddenValley:alphaOrder = 1",
    "4900023:onMode = off",
    "4900023:onIfAny = 4900101",
    "4900111:onMode = off",
    "4900111:onIfAny = 1 2 3 4 5",
    "4900113:onMode = off",
    "4900113:onIfAny = 1 2 3 4 5",
)


def _hidden_valley(
    lam: float, m_q: float, m_pi: float, m_rho: float, n_flav: int, m_zv: float
) -> tuple[str, ...]:
    """Hidden Valley settings for one dark-QCD parameter set (masses, Lambda_v in GeV)."""
    return (
        *_HV_COMMON,
        f"4900023:m0 = {m_zv}",
        f"4900023:mWidth = {0.02 * m_zv}",
        f"HiddenValley:Lambda = {lam}",
        f"HiddenValley:pTminFSR = {1.1 * lam}",
        f"HiddenValley:nFlav = {n_flav}",
        f"4900101:m0 = {m_q}",
        f"4900111:m0 = {m_pi}",
        f"4900113:m0 = {m_rho}",
        f"4900211:m0 = {m_pi}",
        f"4900213:m0 = {m_rho}",
    )


_HADFORK_PROCESSES = [
    Process(
        name="hadfork_qq",
        description="pp -> q q (HardQCD qq2qq, qqbar2qqbarNew, gg2qqbar; 4 new flavours); "
        "quark jets of the hadronization-fork dataset (Rieck et al. §2)",
        settings=("HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on", "HardQCD:gg2qqbar = on",
                  "HardQCD:nQuarkNew = 4"),
        label="q", parton_pick="central",
    ),
    Process(
        name="hadfork_gg",
        description="pp -> g g (HardQCD gg2gg, qqbar2gg); gluon jets (Rieck et al. §2)",
        settings=("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"),
        label="g", parton_pick="central",
    ),
    Process(
        name="hadfork_tautau",
        description="pp -> gamma*/Z -> tau+ tau- (2 -> 2, ffbar2ffbar(s:gmZ)); hadronic tau jets "
        "(Rieck et al. §2)",
        settings=("WeakSingleBoson:ffbar2ffbar(s:gmZ) = on", "23:onMode = off", "23:onIfAny = 15"),
        label="tau",
    ),
    Process(
        name="hadfork_dark_a",
        description="Hidden Valley dark jets, set A (stand-in): Lambda_v = 2, m_q = 1, m_pi = 2, "
        "m_rho = 4 GeV, 1 flavour (fully visible, light: high multiplicity)",
        settings=_hidden_valley(2.0, 1.0, 2.0, 4.0, 1, m_zv=300.0),
        label="dark",
    ),
    Process(
        name="hadfork_dark_b",
        description="Hidden Valley dark jets, set B (stand-in): Lambda_v = 10, m_q = 5, m_pi = 10, "
        "m_rho = 20 GeV, 1 flavour (visible; pi_v -> b bbar dominates)",
        settings=_hidden_valley(10.0, 5.0, 10.0, 20.0, 1, m_zv=300.0),
        label="dark",
    ),
    Process(
        name="hadfork_dark_c",
        description="Hidden Valley dark jets, set C (stand-in): Lambda_v = 20, m_q = 10, "
        "m_pi = 20, m_rho = 50 GeV, 1 flavour (few heavy mesons: the most prong-like)",
        settings=_hidden_valley(20.0, 10.0, 20.0, 50.0, 1, m_zv=500.0),
        label="dark",
    ),
    Process(
        name="hadfork_dark_d",
        description="Hidden Valley dark jets, set D (stand-in): as B with 2 flavours, so the "
        "stable off-diagonal mesons (~1/2) make the jets semi-visible",
        settings=_hidden_valley(10.0, 5.0, 10.0, 20.0, 2, m_zv=500.0),
        label="dark",
    ),
]
for _p in _HADFORK_PROCESSES:
    if _p.name in PROCESSES:
        raise RuntimeError(f"process {_p.name!r} is defined twice in jetforge.generation.processes")
    PROCESSES[_p.name] = _p

def get_process(name: str) -> Process:
    try:
        return PROCESSES[name]
    except KeyError:
        raise KeyError(
            f"unknown process {name!r}; known processes: {', '.join(sorted(PROCESSES))}"
        ) from None
