"""DbContact: a process judges others' heartbeats only after a full timeout of working DB contact of its own."""

from __future__ import annotations

from dagsmith.orchestration.contact import DbContact


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_process_may_judge_at_once():
    clock = Ticks()
    contact = DbContact(30, clock=clock)
    contact.ok()
    assert contact.may_judge()


def test_after_a_failed_call_it_waits_a_full_timeout_of_working_contact():
    clock = Ticks()
    contact = DbContact(30, clock=clock)
    contact.failed()
    assert not contact.may_judge()
    clock.now += 40  # the outage
    contact.ok()
    assert not contact.may_judge()  # the others' heartbeats are old too: give them time to catch up
    for _ in range(5):
        clock.now += 6
        contact.ok()
    assert contact.may_judge()


def test_a_call_that_hung_longer_than_half_the_timeout_counts_as_lost_contact():
    clock = Ticks()
    contact = DbContact(30, clock=clock)
    contact.ok()
    clock.now += 40  # e.g. a claim stuck behind a table lock
    assert not contact.may_judge()
    contact.ok()
    assert not contact.may_judge()
    clock.now += 30
    contact.ok()
    assert not contact.may_judge()  # 30 s without a call in between is another gap
    contact = DbContact(30, clock=clock)
    for _ in range(31):
        clock.now += 1
        contact.ok()
    assert contact.may_judge()
