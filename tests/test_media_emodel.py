"""G.107 E-model: the published default rating, loss, burstiness and delay move MOS the
way the Recommendation says, and the burst ratio is measured, not assumed."""

from __future__ import annotations

import random

import pytest

from pytest_sipflow.media import emodel


def gilbert(n: int, p: float, q: float, seed: int = 7) -> list[bool]:
    """Arrival flags from a 2-state Markov chain: p = P(found→lost), q = P(lost→found)."""
    rnd = random.Random(seed)
    arrived, out = True, []
    for _ in range(n):
        arrived = (rnd.random() >= p) if arrived else (rnd.random() < q)
        out.append(arrived)
    return out


def random_loss(n: int, percent: float, seed: int = 3) -> list[bool]:
    rnd = random.Random(seed)
    return [rnd.random() >= percent / 100 for _ in range(n)]


def test_default_terminal_gives_g107_reference_rating() -> None:
    assert emodel.noise_sum() == pytest.approx(-61.18, abs=0.01)
    assert emodel.basic_ratio() == pytest.approx(94.77, abs=0.01)
    assert emodel.simultaneous_impairment() == pytest.approx(1.41, abs=0.01)
    clean = emodel.estimate("PCMU")
    assert clean.r == pytest.approx(93.2, abs=0.05)
    assert clean.mos == pytest.approx(4.41, abs=0.01)


def test_r_to_mos_follows_annex_b() -> None:
    assert emodel.r_to_mos(-5) == 1.0
    assert emodel.r_to_mos(3) == 1.0
    assert emodel.r_to_mos(50) == pytest.approx(2.575)
    assert emodel.r_to_mos(80) == pytest.approx(1 + 2.8 + 80 * 20 * 20 * 7e-6)
    assert emodel.r_to_mos(120) == 4.5
    grid = [emodel.r_to_mos(r) for r in range(7, 101)]
    assert grid == sorted(grid)


def test_pure_delay_impairment_starts_after_100_ms() -> None:
    assert emodel.pure_delay(100) == 0
    assert emodel.pure_delay(200) == pytest.approx(3.04, abs=0.01)
    assert emodel.pure_delay(400) == pytest.approx(24.1, abs=0.1)
    assert emodel.delay_impairment(0) == pytest.approx(0.15, abs=0.01)
    ids = [emodel.delay_impairment(t) for t in (20, 80, 150, 250, 400)]
    assert ids == sorted(ids)


def test_effective_ie_formula() -> None:
    assert emodel.effective_ie(0, 25.1, 0) == 0
    assert emodel.effective_ie(0, 25.1, 10) == pytest.approx(95 * 10 / 35.1)
    assert emodel.effective_ie(11, 19.0, 2, 2.0) == pytest.approx(11 + 84 * 2 / (1 + 19))


def test_clean_g711_loopback_call_rates_above_4_3() -> None:
    ta = emodel.one_way_delay_ms(rtt_ms=0.2, jitter_buffer_ms=40, packetization_ms=20)
    est = emodel.estimate("PCMU", 0.0, 1.0, ta)
    assert est.mos >= 4.3
    assert est.r == pytest.approx(91.9, abs=0.5)


def test_ten_percent_random_loss_drops_mos_well_below_4() -> None:
    flags = random_loss(20000, 10)
    received, lost, _ = emodel.loss_runs(flags)
    est = emodel.estimate("PCMA", 100 * lost / len(flags), emodel.burst_ratio_of(flags), 60)
    assert est.burst_ratio == pytest.approx(1.0, abs=0.05)
    assert 3.0 < est.mos < 3.6


def test_bursty_loss_rates_lower_than_random_loss_of_the_same_rate() -> None:
    bursty = gilbert(50000, p=0.0222, q=0.2)       # stationary loss 10 %, BurstR 4.5
    rnd = random_loss(50000, 10)
    b_ratio, r_ratio = emodel.burst_ratio_of(bursty), emodel.burst_ratio_of(rnd)
    assert b_ratio == pytest.approx(1 / (0.0222 + 0.2), rel=0.1)
    loss_b = 100 * bursty.count(False) / len(bursty)
    loss_r = 100 * rnd.count(False) / len(rnd)
    assert loss_b == pytest.approx(10, abs=1.5)
    mos_b = emodel.estimate("PCMU", loss_b, b_ratio, 60).mos
    mos_r = emodel.estimate("PCMU", loss_r, r_ratio, 60).mos
    assert mos_b < mos_r - 0.2


@pytest.mark.parametrize(("received", "lost", "bursts", "expected"), [
    (900, 100, 90, 1.0),         # random 10 %: runs average 1/(1-0.1) packets
    (900, 100, 20, 4.5),         # runs of 5
    (900, 100, 100, 0.9),        # every tenth packet: more even than random
    (1000, 0, 0, 1.0),           # no loss, nothing to measure
    (0, 50, 1, 1.0),             # everything lost
])
def test_burst_ratio_from_counts(received: int, lost: int, bursts: int,
                                 expected: float) -> None:
    assert emodel.burst_ratio(received, lost, bursts) == pytest.approx(expected)


def test_loss_runs_of_a_pattern() -> None:
    flags = [True, False, False, True, True, False, True, False, False, False]
    assert emodel.loss_runs(flags) == (4, 6, 3)
    assert emodel.loss_runs([False, True]) == (1, 1, 1)


def test_codec_table_and_unknown_codecs() -> None:
    assert (emodel.codec("PCMU").ie, emodel.codec("pcma").bpl) == (0, 25.1)
    assert emodel.codec("speex/16000").name == "speex"
    assert "not in G.113" in emodel.codec("opus").source
    odd = emodel.codec("X-weird")
    assert "not in G.113" in odd.source and odd.bpl == 25.1
    assert emodel.G711_NO_PLC.bpl == 4.3
    assert emodel.estimate("G729").mos < emodel.estimate("PCMU").mos
    assert emodel.effective_ie(0, emodel.G711_NO_PLC.bpl, 1) > emodel.effective_ie(0, 25.1, 1)


def test_one_way_delay_components() -> None:
    assert emodel.one_way_delay_ms() == 20
    assert emodel.one_way_delay_ms(rtt_ms=100, jitter_buffer_ms=30, packetization_ms=20,
                                   codec_ms=5) == 105
    assert emodel.one_way_delay_ms(rtt_ms=None, jitter_buffer_ms=-3) == 20
