"""Les Houches files: round trip, pairing guarantees, and loud failures on bad files."""

from __future__ import annotations

import math

import pytest

from jetforge.generation.hard import HardCuts, generate_hard_events, tagged_objects
from jetforge.generation.processes import get_process
from jetforge.io.lhe import LHEError, read_lhe


def test_hard_events_pass_cuts_and_round_trip(hbb_lhe):
    init, events = read_lhe(hbb_lhe)
    assert len(events) == 40
    assert init.beam_energies == (6500.0, 6500.0)
    proc = get_process("hbb_zh")
    for ev in events:
        higgs, *bs = tagged_objects(ev, proc)
        assert higgs.pid == 25 and 400 <= higgs.pt <= 600 and abs(higgs.eta) < 0.1
        assert sorted(b.pid for b in bs) == [-5, 5]
        # four-momentum conservation of the whole hard scatter (incoming = outgoing finals)
        inc = [p for p in ev.particles if p.status == -1]
        out = [p for p in ev.particles if p.status == 1]
        for comp in ("px", "py", "pz", "e"):
            assert math.isclose(sum(getattr(p, comp) for p in inc), sum(getattr(p, comp) for p in out),
                                rel_tol=1e-9, abs_tol=1e-6)


def test_same_seed_same_events_different_seed_different():
    proc, cuts = get_process("qcd_zjet"), HardCuts(400, 600, 0.5)
    a, _ = generate_hard_events(proc, 5, cuts, 3, 13000.0)
    b, _ = generate_hard_events(proc, 5, cuts, 3, 13000.0)
    c, _ = generate_hard_events(proc, 5, cuts, 4, 13000.0)
    assert [e.momenta().tolist() for e in a] == [e.momenta().tolist() for e in b]
    assert [e.momenta().tolist() for e in a] != [e.momenta().tolist() for e in c]


def test_truncated_file_is_refused(hbb_lhe, tmp_path):
    text = hbb_lhe.read_text()
    bad = tmp_path / "truncated.lhe"
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(LHEError, match="truncated"):
        read_lhe(bad)


def test_malformed_event_names_file_and_event(hbb_lhe, tmp_path):
    text = hbb_lhe.read_text()
    start = text.index("<event>", text.index("<event>") + 1)  # second event
    line_start = text.index("\n", text.index("\n", start) + 1) + 1
    bad = tmp_path / "malformed.lhe"
    bad.write_text(text[:line_start] + "  25 2 x y\n" + text[text.index("\n", line_start) + 1 :])
    with pytest.raises(LHEError, match=r"malformed\.lhe: event 1"):
        read_lhe(bad)


def test_missing_and_non_lhe_files(tmp_path):
    with pytest.raises(LHEError, match="does not exist"):
        read_lhe(tmp_path / "nope.lhe")
    (tmp_path / "x.lhe").write_text("hello")
    with pytest.raises(LHEError, match="not a Les Houches"):
        read_lhe(tmp_path / "x.lhe")


def test_impossible_cut_is_refused():
    with pytest.raises(ValueError, match="pt_min=700"):
        HardCuts(700, 600, 0.1)
