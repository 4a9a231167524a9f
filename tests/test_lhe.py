"""Les Houches files: round trip, pairing guarantees, and loud failures on bad files."""

from __future__ import annotations

import gc
import math
import re

import numpy as np
import pytest

from jetforge.generation.hard import HardCuts, generate_hard_events, tagged_objects
from jetforge.generation.processes import get_process
from jetforge.io.lhe import (
    _EVENT_RE,
    LHEError,
    LHEEvent,
    LHEInit,
    LHEParticle,
    _event_blocks,
    _parse_event,
    _parse_events_fast,
    read_lhe,
    write_lhe,
)

FIELDS = ("pid", "status", "mother1", "mother2", "col", "acol",
          "px", "py", "pz", "e", "m", "vtim", "spin")  # fmt: skip


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
            assert math.isclose(sum(getattr(p, comp) for p in inc),
                                sum(getattr(p, comp) for p in out),
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


# ----------------------------------------------------------------------------- fast reader


def _exact(events):
    """Every value with its type and exact repr (tells -0.0 from 0.0, int from float)."""
    return [
        (ev.process_id, repr(ev.weight), repr(ev.scale), repr(ev.aqed), repr(ev.aqcd), ev.comments,
         [tuple((type(getattr(p, f)), repr(getattr(p, f))) for f in FIELDS) for p in ev.particles])
        for ev in events
    ]  # fmt: skip


def _per_event(path):
    """The events as the per-event reference parser reads them."""
    text = path.read_text()
    blocks = _event_blocks(text[text.index("</init>") :])
    return [_parse_event(b, path, i) for i, b in enumerate(blocks)]


def _synthetic(n_events, seed=0):
    """Events with awkward doubles (extremes, subnormals, -0.0, 17 significant digits)."""
    rng = np.random.default_rng(seed)
    special = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3,
               float(2**53 + 1), -123456.78901234567, 1e-300, 6.5e3]  # fmt: skip
    events = []
    for i in range(n_events):
        parts = []
        for j in range(int(rng.integers(0, 7))):
            x = rng.standard_normal(5) * 10.0 ** rng.integers(-5, 5, 5)
            x[rng.random(5) < 0.2] = rng.choice(special)
            x = x.tolist()  # Python floats, as the reader gives
            parts.append(LHEParticle(
                pid=int(rng.choice([21, -5, 6, 25, 1000022, -9900012, 2212])),
                status=int(rng.choice([-1, 1, 2])), mother1=j, mother2=max(0, j - 1),
                col=int(rng.integers(0, 600)), acol=0, px=x[0], py=x[1], pz=x[2], e=x[3],
                m=x[4], vtim=float(rng.choice([0.0, 1.5e-3])), spin=float(rng.choice([9.0, -1.0])),
            ))  # fmt: skip
        mg = "#aMCatNLO 2 5 3 3 1\n<mgrwt>\n<rscale> 2 0.1E+03</rscale>\n</mgrwt>"
        comments = mg if i % 3 else ""
        events.append(LHEEvent(parts, process_id=i % 4 + 1, weight=0.5 * i, scale=91.1875,
                               aqed=0.0078125, aqcd=0.118, comments=comments))  # fmt: skip
    return events


def test_round_trip_is_exact_and_the_fast_path_agrees(tmp_path):
    events = _synthetic(300)
    path = tmp_path / "rt.lhe"
    assert write_lhe(path, events, LHEInit()) == 300
    init, read = read_lhe(path)
    assert init == LHEInit()
    assert _exact(read) == _exact(events)  # bit-identical doubles, ints stay ints
    assert _exact(read) == _exact(_per_event(path))
    again = tmp_path / "again.lhe"
    write_lhe(again, read, init)
    assert again.read_text() == path.read_text()


def test_fast_path_reads_real_events_like_the_per_event_parser(hbb_lhe):
    text = hbb_lhe.read_text()
    fast = _parse_events_fast(_event_blocks(text[text.index("</init>") :]))
    assert fast is not None  # our own files never need the fallback
    assert _exact(fast) == _exact(_per_event(hbb_lhe)) == _exact(read_lhe(hbb_lhe)[1])


MADGRAPH = """<LesHouchesEvents version="3.0">
<header>
<!-- File generated with MadGraph5_aMC@NLO; <event> in a comment is not an event -->
<MGVersion>
3.5.0
</MGVersion>
</header>
<init>
  2212  2212 +6.5000000e+03 +6.5000000e+03 0 0 247000 247000 -4 1
 +5.0500000e+02 +1.6300000e+00 +5.0500000e+02 1
<generator name='MadGraph5_aMC@NLO' version='3.5.1'>please cite 1405.0301 </generator>
# a comment line inside init
</init>
<event>
 4      1 +5.0500000e+02 9.11880000e+01 7.54677100e-03 1.30000000e-01
	21 -1    0    0  501  502 +0.0000000000e+00 +0.0e+00 +2.4e+02 2.4e+02 0.0 0.0000e+00 -1.0000e+00

        -1 -1    0    0    0  501 -0.0 +0.0 -1.1e+02 1.1e+02 0.0 0. 1.
        23  1    1    2    0    0 +1.0e+01 -2.0e+01 +3.0e+01 9.8e+01 9.1188e+01 0 9
         -1  1    1    2    0  502 -1.0e+01 +2.0e+01 +1.0e+02 1.0e+02 0.0 0 9
#aMCatNLO 2 5 3 3 1 0.45577560E+03 0.45577560E+03 9 0 0 0.99999999E+00
<mgrwt>
<rscale>  0 0.91188000E+02</rscale>
<asrwt>0</asrwt>
<pdfrwt beam="1">  1       21 0.36923077E-01 0.91188000E+02</pdfrwt>
</mgrwt>
<rwgt>
<wgt id='1'> +5.0500000e+02 </wgt>
</rwgt>
</event>
<event npLO=" -1 " npNLO=" 1 ">
 2 2 -1.0e+00 1.0e+02 -1 -1 extra header columns are ignored
 21 -1 0 0 501 502 0 0 1e2 1e2 0 0 9
 21 -1 0 0 502 501 0 0 -1e2 1e2 0 0 9 # extra particle columns too, as ever
</event>
</LesHouchesEvents>
"""


def test_madgraph_style_file_is_read(tmp_path):
    path = tmp_path / "mg.lhe"
    path.write_text(MADGRAPH)
    init, events = read_lhe(path)
    assert init.beam_ids == (2212, 2212) and init.weight_strategy == -4
    assert init.processes == [(505.0, 1.63, 505.0, 1)]
    assert [len(ev.particles) for ev in events] == [4, 2]
    a, b = events
    assert (a.process_id, a.weight, a.scale, a.aqcd) == (1, 505.0, 91.188, 0.13)
    assert [p.pid for p in a.particles] == [21, -1, 23, -1]
    z = a.particles[2]
    assert (z.px, z.py, z.pz, z.e, z.m) == (10.0, -20.0, 30.0, 98.0, 91.188)
    assert (z.vtim, z.spin) == (0.0, 9.0)
    assert math.copysign(1.0, a.particles[1].px) == -1.0
    assert a.comments.startswith("#aMCatNLO") and a.comments.endswith("</rwgt>")
    assert "<pdfrwt beam=\"1\">" in a.comments
    assert (b.process_id, b.weight, b.aqed, b.comments) == (2, -1.0, -1.0, "")
    assert [p.pz for p in b.particles] == [100.0, -100.0]
    text = path.read_text()
    assert _parse_events_fast(_event_blocks(text[text.index("</init>") :])) is not None
    assert _exact(events) == _exact(_per_event(path))


@pytest.mark.parametrize(
    "line, message",
    [
        (" 21 -1 0 0 501 502 0 0 1e2", r"event 2: particle line has 9 columns, expected 13"),
        (" 21.0 -1 0 0 501 502 0 0 1e2 1e2 0 0 9", r"event 2 is malformed \(invalid literal"),
        (" 21 -1 0 0 501 502 0 0 1e2 x 0 0 9", r"event 2 is malformed \(could not convert string"),
        (" 21 -1 0 0 501 502 0 0 0x1p3 1e2 0 0 9", r"event 2 is malformed \(could not convert"),
        (" 21 -1 0 0 501 502 0 0 1.5d2 1e2 0 0 9", r"event 2 is malformed \(could not convert"),
        (" 21 -1 0 0 501 502 0 0 # 1e2 0 0 9", r"event 2 is malformed \(could not convert"),
    ],
)
def test_bad_particle_line_names_file_and_event(tmp_path, line, message):
    path = tmp_path / "bad.lhe"
    one = LHEEvent([LHEParticle(1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0)])
    write_lhe(path, [*_synthetic(6, seed=1)[:2], one, *_synthetic(4, seed=2)], LHEInit())
    text = path.read_text()
    start = [m.end() for m in re.finditer("<event>", text)][2]  # third event = event 2
    first = text.index("\n", text.index("\n", start) + 1) + 1  # its particle line
    path.write_text(text[:first] + line + text[text.index("\n", first) :])
    with pytest.raises(LHEError, match=re.escape(str(path)) + ": " + message):
        read_lhe(path)
    assert gc.isenabled()


def test_short_event_and_short_event_line_name_the_event(tmp_path):
    path = tmp_path / "short.lhe"
    write_lhe(path, _synthetic(5, seed=3), LHEInit())
    text = path.read_text()
    starts = [m.end() for m in re.finditer("<event>", text)]
    head_end = text.index("\n", starts[3] + 1)
    nup = int(text[starts[3] : head_end].split()[0])
    bad = text[:starts[3]] + f"\n {nup + 2} 1 +1.0e+00 +0.0e+00 -1 -1" + text[head_end:]
    path.write_text(bad)
    with pytest.raises(LHEError, match=rf"short\.lhe: event 3: declares {nup + 2} particles"):
        read_lhe(path)
    path.write_text(text[:starts[1]] + "\n 0 1 +1.0e+00" + text[text.index("\n", starts[1] + 1) :])
    with pytest.raises(LHEError, match=r"short\.lhe: event 1 is malformed \(list index"):
        read_lhe(path)


@pytest.mark.parametrize(
    "body",
    [
        "<event>a</event><event x='1'>b</event>",
        "<event>a<event>b</event>c</event>",  # a nested open tag stays in the first block
        "<event a>b</event><event>unclosed",
        "<event no close bracket",
        "<eventgroup>\n<event>\nx\n</event>\n</eventgroup>",
        "</event><event>\n1\n</event></event>",
        "",
    ],
)
def test_event_blocks_are_the_regex_blocks(body):
    assert _event_blocks(body) == _EVENT_RE.findall(body)


def test_slabs_join_seamlessly_and_errors_keep_the_file_event_number(tmp_path, monkeypatch):
    import jetforge.io.lhe as lhe

    path = tmp_path / "slabs.lhe"
    events = _synthetic(40, seed=5)
    write_lhe(path, events, LHEInit())
    monkeypatch.setattr(lhe, "_SLAB_EVENTS", 7)
    assert _exact(read_lhe(path)[1]) == _exact(events)
    text = path.read_text()
    start = [m.end() for m in re.finditer("<event>", text)][30]
    path.write_text(text[:start] + "\n 1 1 +1.0e+00 +0.0e+00 -1 -1\n 1 1 0 0" + text[start:])
    with pytest.raises(LHEError, match=r"slabs\.lhe: event 30: particle line has 4 columns"):
        read_lhe(path)


def test_reading_leaves_the_garbage_collector_as_it_was(hbb_lhe):
    read_lhe(hbb_lhe)
    assert gc.isenabled()
    gc.disable()
    try:
        read_lhe(hbb_lhe)
        assert not gc.isenabled()
    finally:
        gc.enable()


MG_HEADER = """<MGVersion>
3.5.1
</MGVersion>
<MG5ProcCard>
<![CDATA[
import model sm
define j = g u c d s u~ c~ d~ s~
generate p p > z j, z > vl vl~
output zj_mg5
]]>
</MG5ProcCard>
<MGRunCard>
<![CDATA[
  1000 = nevents ! Number of unweighted events requested
]]>
</MGRunCard>"""


def _madgraph_gz(tmp_path, n_events, seed=0):
    """MadGraph's unweighted_events.lhe.gz: its header blocks, an <init> block with the
    <generator> element, <event> blocks with #aMCatNLO and <rwgt> comment lines, gzipped."""
    import gzip

    plain = tmp_path / "plain.lhe"
    events = _synthetic(n_events, seed=seed)
    for ev in events:
        ev.comments = "#aMCatNLO 2 5 3 3 1\n<rwgt>\n<wgt id='1'> +5.05e+02 </wgt>\n</rwgt>"
    write_lhe(plain, events, LHEInit(processes=[(505.0, 1.63, 505.0, 1)]), header=MG_HEADER)
    text = plain.read_text().replace(
        "</init>", "<generator name='MadGraph5_aMC@NLO' version='3.5.1'>cite</generator>\n</init>"
    )
    plain.write_text(text)
    gz = tmp_path / "unweighted_events.lhe.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    return plain, gz, events


def test_gzipped_madgraph_file_round_trips(tmp_path):
    """MadGraph writes unweighted_events.lhe.gz: read as it is, value for value the events
    written, the same as the unpacked file (the fast and per-event parsers agree)."""
    plain, gz, events = _madgraph_gz(tmp_path, 25, seed=3)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    init, got = read_lhe(gz)
    assert init.processes == [(505.0, 1.63, 505.0, 1)] and init.weight_strategy == 3
    assert _exact(got) == _exact(events) == _exact(read_lhe(plain)[1])
    assert _exact(got) == _exact(_per_event(plain))
    assert got[0].comments.startswith("#aMCatNLO") and got[0].comments.endswith("</rwgt>")
    # recognised by content, not by name
    renamed = tmp_path / "events_without_suffix.lhe"
    renamed.write_bytes(gz.read_bytes())
    assert _exact(read_lhe(renamed)[1]) == _exact(events)


def test_gzipped_file_keeps_the_strict_checks(tmp_path):
    """The count checks hold through gzip: too few events for events_per_chunk, a stream
    cut short, and a complete stream of a cut file are each refused, naming the file."""
    import gzip

    plain, gz, _ = _madgraph_gz(tmp_path, 12, seed=4)
    assert len(read_lhe(gz, min_events=12)[1]) == 12
    too_few = re.escape(f"{gz}: holds 12 events but") + ".*events_per_chunk is 13"
    with pytest.raises(LHEError, match=too_few):
        read_lhe(gz, min_events=13)
    cut = tmp_path / "cut_stream.lhe.gz"
    cut.write_bytes(gz.read_bytes()[:-40])
    with pytest.raises(LHEError, match=re.escape(str(cut)) + ": gzip stream cannot be read"):
        read_lhe(cut)
    text = plain.read_text()
    short = tmp_path / "cut_file.lhe.gz"
    short.write_bytes(gzip.compress(text[: text.rindex("<event>") + 30].encode()))
    with pytest.raises(LHEError, match=re.escape(str(short)) + r": truncated \(no closing"):
        read_lhe(short)
    odd = tmp_path / "odd_count.lhe.gz"
    i = text.rindex("</event>")
    odd.write_bytes(gzip.compress((text[:i] + "</event>\n<event>\n" + text[i:]).encode()))
    with pytest.raises(LHEError, match=re.escape(str(odd))):
        read_lhe(odd)


def test_pythia_reads_the_gzipped_file_as_the_plain_one(hbb_lhe, tmp_path):
    """The shower step hands the LHE path to Pythia (Beams:LHEF): a .lhe.gz gives the same
    hard events, so MadGraph's output needs no unpacking anywhere in the chain."""
    import gzip

    from jetforge.generation.pythia_setup import make_pythia

    gz = tmp_path / "hbb.lhe.gz"
    gz.write_bytes(gzip.compress(hbb_lhe.read_bytes()))
    _, events = read_lhe(gz)
    records = []
    for path in (hbb_lhe, gz):
        py = make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {path}",
                          "PartonLevel:all = off", "HadronLevel:all = off"], seed=1)  # fmt: skip
        rec = []
        for _ in range(5):
            assert py.next()
            rec.append(sorted(round(py.process[i].pz(), 6) for i in range(3, py.process.size())))
        records.append(rec)
    assert records[0] == records[1]
    lhe_pz = [sorted(round(p.pz, 6) for p in ev.particles if p.status != -1) for ev in events[:5]]
    assert all(set(b) <= set(a) for a, b in zip(records[1], lhe_pz, strict=True))
