"""The instance's ARM budget (issue: reliability, item 2): a client-side token bucket for every
ARM call, honouring ARM's Retry-After and x-ms-ratelimit-remaining-* headers.

Time is a fake clock advanced only by the budget's own sleeps, so the assertions are about
how long the budget made requests wait, computed exactly, never about wall time.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.adapters.arm import ArmClient
from exfilguard.adapters.budget import ArmBudget, BudgetExceeded, Deadline, TokenBucket, instance_budget
from exfilguard.core import settings as app_settings
from exfilguard.core.config import ConfigError
from tests import factory
from tests.alerts_support.receivers import LoopbackReceiver, Reply
from tests.armemu import ArmEmulator


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.5, 50), gaps=st.lists(st.floats(0, 2), min_size=1, max_size=80))
def test_a_bucket_never_grants_more_than_burst_plus_rate_times_elapsed(rate, gaps):
    t = FakeTime()
    bucket = TokenBucket(rate, clock=t.clock)
    start = t.now
    for gap in gaps:
        t.now += gap
        wait = bucket.reserve()
        t.now += wait  # the caller sleeps, then sends
    # Every grant happened by now: no more than the burst plus the refill since the start.
    assert len(gaps) <= bucket.burst + rate * (t.now - start) + 1e-6


def _client(url: str, budget: ArmBudget, **kw) -> ArmClient:
    return ArmClient(factory.SUB, url, budget=budget, retry_total=2, backoff_factor=0, **kw)


def test_every_arm_request_of_an_instance_is_paced_by_its_budget():
    t = FakeTime()
    budget = ArmBudget(reads_per_second=4, writes_per_second=1, clock=t.clock, sleep=t.sleep)
    nsgs = [factory.nsg("rg", f"nsg-{i}", "westeurope", []) for i in range(12)]
    with ArmEmulator(nsgs) as emu, _client(emu.url, budget) as one, _client(emu.url, budget) as two:
        for i, body in enumerate(nsgs):
            (one if i % 2 else two).get(body["id"])
        assert emu.count(kind="read") == 12
    # 12 reads at 4/s with a burst of 3 (one event's reads): the last 9 waited a quarter second
    # each, across clients.
    assert sum(t.slept) == pytest.approx(9 / 4)
    assert budget.stats.reads == 12


def test_a_429_retry_after_pauses_every_request_of_the_instance():
    t = FakeTime()
    budget = ArmBudget(reads_per_second=20, clock=t.clock, sleep=t.sleep)
    nsg = factory.nsg("rg", "nsg-a", "westeurope", [])
    with ArmEmulator([nsg]) as emu, _client(emu.url, budget) as client:
        emu.add_fault(429, method="GET", path="nsg-a", count=1, retry_after=0.01)
        budget.observe("GET", 429, {"Retry-After": "3"})  # what another thread's request met
        client.get(nsg["id"])
    assert budget.stats.throttled >= 1
    assert sum(t.slept) >= 3.0, t.slept


def test_a_low_remaining_count_from_arm_slows_the_instance_down():
    t = FakeTime()
    budget = ArmBudget(reads_per_second=20, clock=t.clock, sleep=t.sleep)
    nsg = factory.nsg_id("rg", "nsg-a")
    reply = Reply(200, {"Content-Type": "application/json", "x-ms-ratelimit-remaining-subscription-reads": "10"},
                  b'{"id": "%s", "name": "nsg-a", "properties": {}}' % nsg.encode())
    with LoopbackReceiver(default=reply) as arm, _client(arm.base_url, budget) as client:
        client.get(nsg)
        assert t.slept == []
        client.get(nsg)
    assert sum(t.slept) == pytest.approx((50 - 10) / 25.0 + 1 / 20)  # the pause, then its own token


def test_a_wait_past_the_deadline_is_refused_not_slept():
    t = FakeTime()
    budget = ArmBudget(reads_per_second=1, clock=t.clock, sleep=t.sleep)
    deadline = Deadline(1.5, clock=t.clock)
    for _ in range(3):  # the burst
        budget.acquire("GET", deadline)
    budget.acquire("GET", deadline)  # waits 1 s
    with pytest.raises(BudgetExceeded, match="deadline"):
        budget.acquire("GET", deadline)
    assert t.slept == [1.0]


def test_rates_come_from_the_settings_and_bad_values_name_the_setting():
    base = {"EXFILGUARD_SUBSCRIPTION_ID": "00000000-0000-4000-8000-000000000001",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true"}

    def rates(env: dict[str, str]) -> tuple[float, float]:
        s = app_settings.parse({**base, **env})
        return s.arm_reads_per_s, s.arm_writes_per_s

    assert rates({}) == (20.0, 5.0)
    assert rates({"EXFILGUARD_ARM_READS_PER_SECOND": "8", "EXFILGUARD_ARM_WRITES_PER_SECOND": "2"}) == (8.0, 2.0)
    with pytest.raises(ConfigError, match="EXFILGUARD_ARM_READS_PER_SECOND"):
        rates({"EXFILGUARD_ARM_READS_PER_SECOND": "lots"})
    a = instance_budget("http://127.0.0.1:1", *rates({"EXFILGUARD_ARM_READS_PER_SECOND": "8"}))
    assert a is instance_budget("http://127.0.0.1:1", 8.0, 5.0)
    assert a.reads.rate == 8.0 and a.writes.rate == 5.0
