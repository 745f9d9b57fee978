"""The renewal, backoff and scan rules (agent.certs.policy), with an explicit clock."""

from __future__ import annotations

import pytest

from agent.certs import policy
from agent.certs.policy import Attempts, CertTimes
from agent.certs.settings import AcmeSettings

DAY = 86400.0
T0 = 1_800_000_000.0
S = AcmeSettings(backoff_min=300, backoff_max=6 * 3600, emergency_backoff_max=3600)


def test_ninety_day_cert_renews_with_a_third_left() -> None:
    cert = CertTimes(T0, T0 + 90 * DAY)
    assert policy.renewal_time(cert) == pytest.approx(T0 + 60 * DAY)


def test_short_lived_cert_renews_at_half() -> None:
    cert = CertTimes(T0, T0 + 6 * DAY)
    assert policy.renewal_time(cert) == pytest.approx(T0 + 3 * DAY)
    tiny = CertTimes(T0, T0 + 30)
    assert policy.renewal_time(tiny) == pytest.approx(T0 + 15)


def test_ari_time_wins_but_never_past_the_emergency_point() -> None:
    cert = CertTimes(T0, T0 + 90 * DAY)
    assert policy.renewal_time(cert, ari_time=T0 + 70 * DAY) == T0 + 70 * DAY
    assert policy.renewal_time(cert, ari_time=T0 + 5 * DAY) == T0 + 5 * DAY
    assert policy.renewal_time(cert, ari_time=T0 + 89 * DAY) == pytest.approx(T0 + 81 * DAY)


def test_backoff_grows_from_minutes_to_hours_and_caps() -> None:
    delays = [policy.backoff_delay(n, S) for n in range(1, 12)]
    assert delays[:4] == [300, 600, 1200, 2400]
    assert delays == sorted(delays)
    assert max(delays) == 6 * 3600
    assert policy.backoff_delay(10_000, S) == 6 * 3600  # no overflow on a long outage


def test_after_failure_counts_and_schedules() -> None:
    first = policy.after_failure(Attempts(), T0, S)
    assert (first.failures, first.last_failure_at, first.next_attempt) == (1, T0, T0 + 300)
    second = policy.after_failure(first, T0 + 300, S)
    assert second.failures == 2 and second.next_attempt == T0 + 300 + 600


def test_retry_after_is_a_floor_over_backoff() -> None:
    limited = policy.after_failure(Attempts(), T0, S, retry_after=7200)
    assert limited.next_attempt == T0 + 7200
    assert limited.rate_limited_until == T0 + 7200
    short = policy.after_failure(Attempts(), T0, S, retry_after=10)
    assert short.next_attempt == T0 + 300  # backoff still applies


def test_emergency_caps_the_backoff() -> None:
    cert = CertTimes(T0, T0 + 90 * DAY)
    late = T0 + 89 * DAY  # a ninetieth of the lifetime left
    record = Attempts(failures=9, last_failure_at=late - 10, next_attempt=late + 6 * 3600)
    after = policy.after_failure(record, late, S, cert=cert)
    assert after.next_attempt == late + 3600
    # An older, longer backoff is pulled in by the plan too.
    step = policy.plan(cert, record, late, S)
    assert step.action == "wait" and step.at == late - 10 + 3600


def test_plan_issues_when_there_is_no_certificate() -> None:
    step = policy.plan(None, Attempts(), T0, S)
    assert step.action == "issue" and step.at == T0


def test_plan_waits_for_renewal_time() -> None:
    cert = CertTimes(T0, T0 + 90 * DAY)
    step = policy.plan(cert, Attempts(), T0 + DAY, S)
    assert step.action == "wait" and step.at == pytest.approx(T0 + 60 * DAY)
    due = policy.plan(cert, Attempts(), T0 + 61 * DAY, S)
    assert due.action == "renew"


def test_plan_respects_backoff_unless_someone_asks() -> None:
    record = policy.after_failure(Attempts(), T0, S)
    assert policy.plan(None, record, T0 + 10, S).action == "wait"
    assert policy.plan(None, record, T0 + 10, S, manual=True).action == "issue"
    assert policy.plan(None, record, T0 + 301, S).action == "issue"


def test_force_renews_a_valid_cert_but_never_skips_a_rate_limit() -> None:
    cert = CertTimes(T0, T0 + 90 * DAY)
    assert policy.plan(cert, Attempts(), T0 + DAY, S, force=True).action == "renew"
    limited = policy.after_failure(Attempts(), T0, S, retry_after=3600)
    step = policy.plan(cert, limited, T0 + 60, S, force=True)
    assert step.action == "wait" and step.at == T0 + 3600


def test_scan_delay_stays_within_jitter() -> None:
    settings = AcmeSettings(scan_interval=600, scan_jitter=0.1)
    assert policy.scan_delay(settings, 0.0) == pytest.approx(540)
    assert policy.scan_delay(settings, 0.5) == pytest.approx(600)
    assert policy.scan_delay(settings, 0.999999) == pytest.approx(660, abs=0.01)


def test_loop_never_sleeps_less_than_the_floor() -> None:
    assert policy.sleep_until(T0 + 600, [T0 - 50, T0 + 3], T0) == policy.MIN_SLEEP
    assert policy.sleep_until(T0 + 600, [T0 + 30], T0) == 30
    assert policy.sleep_until(T0 + 600, [], T0) == 600
