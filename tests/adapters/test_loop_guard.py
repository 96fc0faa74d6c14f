"""The loop guard settles: against a writer that reverts every fix, a day of fake time costs a
handful of writes and at most two escalations, then the resource waits for a person.

The policy is a pure function (tested here over generated attempt schedules); the day itself
runs through the Function app's event handler against the ARM emulator with state in Azurite,
with the app's clock replaced by a fake one (nothing sleeps).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.adapters.loopguard import BACKING_OFF, HELD, NORMAL, Policy, Record, decide
from exfilguard.core import ids
from exfilguard.core.actor import Actor
from tests.function_support import (
    MALLORY,
    NSG_WEU,
    OWN,
    SUB,
    drift,
    keep_reverting,
    resource_event,
    running_app,
    sample,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RULE_OP = "Microsoft.Network/networkSecurityGroups/securityRules/write"
MAX_WRITES_PER_DAY = 6
MAX_ESCALATIONS_PER_DAY = 2


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


# --- the policy, pure ---------------------------------------------------------------------------

def run_policy(times: list[datetime], policy: Policy) -> list:
    rec: Record | None = None
    out = []
    for t in times:
        rec, d = decide(rec, NSG_WEU, t, policy, Actor(name="Mallory"))
        out.append(d)
    return out


def test_backs_off_doubling_then_holds_and_stays_held():
    policy = Policy(max_writes=3, window=timedelta(minutes=10), max_backoffs=3)
    times = [T0 + timedelta(minutes=m) for m in range(0, 24 * 60, 1)]  # a fix needed every minute, all day
    ds = run_policy(times, policy)
    allowed = [d for d in ds if d.allowed]
    assert len(allowed) == 5  # 3 in the window, then one probe after the 10- and the 20-minute pauses
    assert [int((d.slot - T0).total_seconds() // 60) for d in allowed] == [0, 1, 2, 13, 33]
    assert [d.escalate for d in ds if d.escalate] == [BACKING_OFF, HELD]
    held_at = next(i for i, d in enumerate(ds) if d.escalate == HELD)
    assert times[held_at] == T0 + timedelta(minutes=73)  # after the 40-minute pause

    assert all(d.state == HELD and not d.allowed for d in ds[held_at:])
    assert ds[held_at].writer.person == "Mallory"


def test_a_slow_writer_is_caught_too():
    """A pipeline that reverts every five hours: its fixes still count as one fight (24 h memory)."""
    policy = Policy(max_writes=3, window=timedelta(minutes=10), max_backoffs=3)
    ds = run_policy([T0 + timedelta(hours=5 * i) for i in range(20)], policy)
    assert sum(d.allowed for d in ds) == 5 and [d.escalate for d in ds if d.escalate] == [BACKING_OFF, HELD]


def test_a_fight_that_stopped_is_forgotten_but_a_hold_is_not():
    policy = Policy(max_writes=1, window=timedelta(minutes=10), max_backoffs=2)
    rec, d = decide(None, NSG_WEU, T0, policy)
    rec, d = decide(rec, NSG_WEU, T0 + timedelta(minutes=1), policy)
    assert not d.allowed and d.escalate == BACKING_OFF
    rec, d = decide(rec, NSG_WEU, T0 + timedelta(days=1, minutes=1), policy)  # quiet for a day: fresh drift
    assert d.allowed and d.state == NORMAL
    held = Record(NSG_WEU, held_at=T0)
    _, d = decide(held, NSG_WEU, T0 + timedelta(days=30), policy)
    assert not d.allowed and d.state == HELD and not d.escalate  # only a person releases it; no second alert


@settings(max_examples=400, deadline=None)
@given(gaps=st.lists(st.integers(min_value=0, max_value=240), min_size=1, max_size=400),
       max_writes=st.integers(1, 5), window=st.integers(1, 60), max_backoffs=st.integers(1, 5))
def test_any_schedule_of_needed_fixes_is_bounded(gaps, max_writes, window, max_backoffs):
    """However often fixes are needed, one fight allows at most max_writes + max_backoffs - 1
    writes and two escalations per (forgetting) cycle; a hold is final."""
    policy = Policy(max_writes=max_writes, window=timedelta(minutes=window), max_backoffs=max_backoffs)
    times, t = [], T0
    for g in gaps:
        t += timedelta(minutes=g)
        times.append(t)
    ds = run_policy(times, policy)
    # Split into fights at each fresh start (state back to normal after a back-off).
    fights: list[list] = [[]]
    for prev, d in zip([None, *ds], ds, strict=False):
        if prev is not None and prev.state == BACKING_OFF and d.state == NORMAL:
            fights.append([])
        fights[-1].append(d)
    for fight in fights:
        escalations = [d.escalate for d in fight if d.escalate]
        assert escalations in ([], [BACKING_OFF], [BACKING_OFF, HELD])
        in_first_window = sum(1 for d in fight if d.allowed and d.state == NORMAL)
        probes = sum(1 for d in fight if d.allowed and d.state != NORMAL)
        assert probes <= max_backoffs - 1
        if escalations:
            assert in_first_window >= max_writes
    if any(d.state == HELD for d in ds):
        first = next(i for i, d in enumerate(ds) if d.state == HELD)
        assert not any(d.allowed for d in ds[first:])


# --- a day of fighting, through the Function app ------------------------------------------------

def _release(app, resource_id: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = func.HttpRequest("POST", "http://localhost:7071/api/loopguard/release",
                           headers={"Content-Type": "application/json", **(headers or {})},
                           body=json.dumps({"resourceId": resource_id}).encode())
    resp = app.fns["loopguard_release"](req)
    return resp.status_code, json.loads(resp.get_body())


def test_a_persistent_second_writer_for_24_hours_costs_at_most_6_writes_and_2_escalations(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json"),
                     EXFILGUARD_APP_SERVICE_AUTH="true") as app:
        clock = FakeClock(T0)
        app.services.clock = clock
        app.timer()  # fills the compute index; nothing to fix yet
        assert app.emulator.writes() == []
        drift(app)
        keep_reverting(app)  # a pipeline puts its version back after every ExfilGuard write
        # Every 10 minutes for 24 hours the pipeline's change arrives as an event (and, after any
        # ExfilGuard write, ExfilGuard's own write event too, which the handler ignores).
        events = 0
        for _ in range(24 * 6):
            before = len(app.emulator.writes())
            app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/allow-storage-any-region"))
            if len(app.emulator.writes()) > before:
                app.deliver(resource_event("Microsoft.Network/networkSecurityGroups/write", NSG_WEU, who=OWN))
            events += 1
            clock.advance(minutes=10)

        puts = [w for w in app.emulator.writes() if ids.key(w.path) == ids.key(NSG_WEU)]
        escalations = app.escalations()
        print(f"24 h of fake time, {events} events from the other writer: {len(puts)} writes, "
              f"{len(escalations)} escalations")
        assert len(puts) <= MAX_WRITES_PER_DAY, len(puts)
        assert len(escalations) <= MAX_ESCALATIONS_PER_DAY, len(escalations)
        assert len(app.escalations("held")) == 1 and len(app.escalations("backing-off")) == 1
        held = json.dumps(app.escalations("held")[0])
        assert MALLORY["upn"] in held and "/api/loopguard/release" in held and "needs a person" in held
        record = app.services.loop_guard().status(NSG_WEU)
        assert record.state == HELD and record.writer.person.endswith(f"({MALLORY['upn']})")
        assert [r.resource_id for r in app.services.loop_guard().held()] == [record.resource_id]

        # A person fixes the pipeline and releases the resource: the next event is fixed again.
        app.emulator.on_write(lambda rid, body: None)
        status, body = _release(app, NSG_WEU, {"X-MS-CLIENT-PRINCIPAL-NAME": "dana_w@contoso.com",
                                               "X-MS-CLIENT-PRINCIPAL-ID": "11111111-2222-4333-8444-555555555555"})
        assert status == 200 and body == {"resourceId": NSG_WEU, "was": HELD, "state": NORMAL}
        [row] = [r for r in app.audit() if r.decision == "loop-guard-released"]
        assert row.actor.startswith("dana_w@contoso.com (id 11111111-2222-4333-8444-555555555555) via App Service")
        assert MALLORY["upn"] in row.detail
        before = len(app.emulator.writes())
        app.deliver(resource_event(RULE_OP, f"{NSG_WEU}/securityRules/allow-storage-any-region"))
        assert len(app.emulator.writes()) == before + 1


def test_release_rejects_bad_bodies_and_foreign_ids(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        req = func.HttpRequest("POST", "http://localhost:7071/api/loopguard/release", headers={}, body=b"{")
        resp = app.fns["loopguard_release"](req)
        assert resp.status_code == 400 and "not valid JSON" in json.loads(resp.get_body())["error"]
        status, body = _release(app, NSG_WEU.replace(SUB, "11111111-2222-4333-8444-555555555555"))
        assert status == 400 and "resourceId" in body["error"]
        status, body = _release(app, NSG_WEU)  # nothing held: harmless, says so
        assert status == 200 and body["was"] == "unknown"
        [row] = [r for r in app.audit() if r.decision == "loop-guard-released"]
        assert "unverified" not in row.actor and "App Service authentication is off" in row.actor
