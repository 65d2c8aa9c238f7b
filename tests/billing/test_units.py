"""Pure parts: the per-minute meter, licence terms checks, the test clock, the wire types."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cuefarm.config import ConfigError, SupervisorConfig
from supervisor.billing import month_bounds
from tests.fastclock import FastClock
from supervisor.licensing import Licensing, Terms, TermsError, check_rate, check_sink, parse_count
from supervisor.metering import MinuteMeter, cost_of, minute_cost
from supervisor.usage import split_days

T0 = 1_700_000_000 // 60 * 60 + 60 * 60 * 24     # a minute boundary


@pytest.mark.parametrize("samples, closed", [
    # (seconds after T0, busy, metered) ...           -> closed (minute offset, peak, metered)
    ([(0, 3, True), (30, 5, True), (59, 4, True)], []),
    ([(0, 3, True), (30, 5, True), (60, 1, True)], [(0, 5, True)]),
    # the count carried into a minute counts in it: 5 was running when minute 60 began
    ([(0, 5, True), (65, 1, True), (125, 1, True)], [(0, 5, True), (60, 5, True)]),
    # a stall: the skipped minutes get the last count seen
    ([(0, 2, True), (250, 2, True)], [(0, 2, True), (60, 2, True), (120, 2, True),
                                      (180, 2, True)]),
    # metering switched on mid-minute: the minute is metered
    ([(0, 4, False), (30, 4, True), (60, 4, True)], [(0, 4, True)]),
    ([(0, 4, False), (60, 4, False)], [(0, 4, False)]),
    # the wall clock stepping back keeps the open minute
    ([(0, 1, True), (-30, 3, True), (60, 1, True)], [(0, 3, True)]),
])
def test_minute_meter(samples, closed):
    meter = MinuteMeter()
    got = []
    for dt, busy, metered in samples:
        got += meter.sample(T0 + dt, busy, metered)
    assert got == [(T0 + m, peak, met) for m, peak, met in closed]


def test_minute_meter_ignores_a_clock_jump_of_days():
    meter = MinuteMeter()
    meter.sample(T0, 3, True)
    assert meter.sample(T0 + 30 * 86400, 3, True) == [(T0, 3, True)]


def test_minute_cost_is_per_worker_hour_billed_per_minute():
    assert minute_cost(60, Decimal("0.10")) == Decimal("0.100000")
    assert minute_cost(1, Decimal("0.10")) == Decimal("0.001667")        # rounded half up
    assert minute_cost(600, Decimal("0.10")) == Decimal("1")
    # Rounded once per batch, not per minute: 3 minutes are $0.005, not 3 x $0.001667.
    assert cost_of([(1, Decimal("0.1"))] * 3) == Decimal("0.005000")
    assert cost_of([(2, Decimal("0.1")), (1, Decimal("0.25"))]) == Decimal("0.007500")


@pytest.mark.parametrize("given, rate", [(0.1, "0.1"), ("0.10", "0.1"), (3, "3"),
                                          (Decimal("0.000001"), "0.000001"), (" 2.5 ", "2.5")])
def test_rates_are_exact_decimals(given, rate):
    assert check_rate(given) == Decimal(rate) and check_rate(given).as_tuple().exponent == -6


@pytest.mark.parametrize("text, value", [("", None), ("  ", None), (None, None), ("0", 0),
                                         ("12", 12), (7, 7)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text, words", [
    ("-1", "cannot be negative"), (-5, "cannot be negative"), ("1.5", "not a whole number"),
    ("ten", "not a whole number"), ("１２", "not a whole number"), (True, "not a whole number"),
    ("99999999999", "more than")])
def test_bad_counts_are_refused_clearly(text, words):
    with pytest.raises(TermsError) as info:
        parse_count(text)
    assert words in str(info.value) and info.value.field == "count"


@pytest.mark.parametrize("text, expected", [
    ("https://billing.example.com/v1/overage", "https://billing.example.com/v1/overage"),
    ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
    ("/var/spool/cuefarm", "/var/spool/cuefarm"),
    ("file:///var/spool/cuefarm", "/var/spool/cuefarm"),
    ("", "")])
def test_sinks(text, expected):
    assert check_sink(text) == expected


@pytest.mark.parametrize("text, words", [
    ("http://host:99999/x", "does not parse"), ("http://host:port/x", "does not parse"),
    ("http:///x", "no host"), ("ftp://host/x", "scheme 'ftp'"), ("relative/dir", "absolute"),
    ("http://exa mple/x", "spaces"), ("file://other-host/x", "local directory"),
    ("http://[::1/x", "does not parse"), ("http://h/\x00", "control characters")])
def test_bad_sinks_are_refused_clearly(text, words):
    with pytest.raises(TermsError) as info:
        check_sink(text)
    assert words in str(info.value) and info.value.field == "sink"


@pytest.mark.parametrize("rate, words", [
    (-0.1, "from 0 to"), (float("nan"), "from 0 to"), (float("inf"), "from 0 to"),
    (True, "from 0 to"), ("ten", "from 0 to"), ("0.0000001", "six decimal places"),
    ("1e9", "from 0 to")])
def test_bad_rates(rate, words):
    with pytest.raises(TermsError) as info:
        check_rate(rate)
    assert words in str(info.value) and info.value.field == "rate"


def test_bad_configuration_is_a_config_error():
    for settings in ({"worker_licences": "-2"}, {"metering_sink": "ftp://x/y"},
                     {"metering": True}, {"metering_rate": -1.0}):
        cfg = SupervisorConfig(**settings)
        with pytest.raises(ConfigError):
            Licensing(cfg)
    lic = Licensing(SupervisorConfig(worker_licences="5", metering=True,
                                     metering_sink="/tmp/sink"))
    assert lic.cap() is None and lic.terms.installed == 5


def test_cap_follows_the_terms():
    assert Terms(None).cap() is None
    assert Terms(4).cap() == 4
    assert Terms(4, metered=True, sink="/x").cap() is None
    assert Terms(4, metered=True, revoked=True, sink="/x").cap() == 4


def test_fast_clock_runs_faster_from_its_origin():
    import time
    clock = FastClock.parse(f"600@{time.time() - 1.0}")
    assert clock() - time.time() >= 599 * 1.0 - 1
    assert FastClock.parse(clock.spec)(1e9) == clock(1e9)


def test_month_bounds():
    start, end, name = month_bounds(1_703_980_800.0 + 3600)    # 2023-12-31 01:00 UTC
    assert (start, end, name) == (1_701_388_800.0, 1_704_067_200.0, "2023-12")


def test_split_days_cuts_at_utc_midnight():
    midnight = 1_704_067_200.0        # 2024-01-01 00:00 UTC
    assert list(split_days(midnight - 600, midnight + 1800)) == [("2023-12-31", 600.0),
                                                                  ("2024-01-01", 1800.0)]
    assert list(split_days(midnight, midnight)) == []
