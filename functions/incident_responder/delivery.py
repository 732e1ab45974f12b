"""Delivery: the adapter step after triage. Record the incident, alert each sink that has not had
it, record each delivery; send a short follow-up when a later event adds to an open incident.

Exactly one alert per incident per sink, across retries, crashes and partial faults:
- the record says which sinks delivered, so a retry delivers the rest and only the rest, and a
  fully delivered incident is a duplicate;
- the store unavailable: the alert still goes out (marked not recorded) and the invocation fails,
  so that the event is retried for the record (what was sent is remembered in this process, so a
  retry landing here does not alert again);
- a sink that did not deliver: the invocation fails, so that the event is retried and, in the end,
  lands in the DLQ and raises the alarm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .links import console_links
from .models import Incident, IntakeError, Notification
from .sinks import Sink, run_guarded
from .store import IncidentStore, OpenedIncident, StoreUnavailable, follow_up_key


class DeliveryIncomplete(RuntimeError):
    """Raised after sending, so that the event is retried: the message says what is left to do."""

    def __init__(self, message: str, notifications: list[Notification]) -> None:
        super().__init__(message)
        self.notifications = notifications


class JoinPending(RuntimeError):
    """The subject could not be resolved yet (e.g. the execution history failed): retry before
    reporting, so that a pipeline's failure joins its training job's incident."""


@dataclass
class Delivery:
    """What delivery needs from the outside world."""

    store: IncidentStore | None
    sinks: list[Sink]
    # Monotonic time by which every sink must be done (the function's timeout, less a margin).
    deadline: Callable[[], float | None] = lambda: None
    # Attempts an unresolved subject waits for (Lambda: 1 + MaximumRetryAttempts); 1 = report at once.
    join_attempts: int = 1
    # Deliveries made while the store was unavailable, by incident key (this process's memory).
    unrecorded: dict[str, dict[str, Notification]] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivered:
    outcome: str  # reported | duplicate | enriched
    incident: Incident
    notifications: list[Notification]
    added: list[str] = field(default_factory=list)


def deliver(incident: Incident, delivery: Delivery) -> Delivered:
    if incident.evidence.unresolved and delivery.store is not None and delivery.join_attempts > 1:
        _wait_for_join(incident, delivery)
    store, owner = delivery.store, incident.event.event_id
    try:
        opened = store.open(incident) if store is not None else None
        recording = opened is not None
    except StoreUnavailable:
        opened, recording = None, False
    remembered = delivery.unrecorded.get(incident.key, {})

    added: list[str] = []
    if opened is None or opened.created:
        target, done, follow_ups_done = incident, dict(remembered), frozenset()
    else:
        opened, target, added, recording = _enrich(store, opened, incident)
        done, follow_ups_done = {**opened.delivered, **remembered}, opened.follow_ups

    alert_sinks = [sink for sink in delivery.sinks if sink.name not in done]
    follow_up_sinks = [sink for sink in delivery.sinks if sink.name in done and added
                       and follow_up_key(owner, sink.name) not in follow_ups_done]
    if recording:
        # Another invocation handling the same incident right now (the job's and the pipeline's
        # events arrive together) must not send too: each delivery is claimed before it is sent.
        try:
            alert_sinks = [s for s in alert_sinks if store.claim(incident.key, s.name, owner=owner)]
            follow_up_sinks = [s for s in follow_up_sinks
                               if store.claim(incident.key, follow_up_key(owner, s.name), owner=owner)]
        except StoreUnavailable:
            recording = False

    deadline = delivery.deadline()
    jobs = [(s, "alert", lambda s=s: s.send(target, deadline=deadline)) for s in alert_sinks]
    jobs += [(s, "follow_up", lambda s=s: s.send_follow_up(target, added, deadline=deadline))
             for s in follow_up_sinks]
    sent = run_guarded(jobs)

    # Deliveries made during a store outage, recorded now that the store answers.
    if recording and opened is not None and opened.created:
        for notification in remembered.values():
            recording = recording and _try(lambda n=notification: store.record_delivery(
                incident.key, n, event_id=owner))
    notifications: list[Notification] = []
    for notification in sent:
        if recording:
            if notification.ok:
                recording = _try(lambda n=notification: store.record_delivery(incident.key, n, event_id=owner))
            else:
                entry = notification.sink if notification.kind == "alert" else follow_up_key(owner, notification.sink)
                _try(lambda e=entry: store.release(incident.key, e, owner=owner))
        notifications.append(notification)
    if not recording:
        notifications = [n.model_copy(update={"recorded": False}) for n in notifications]
        memory = delivery.unrecorded.setdefault(incident.key, {})
        memory.update({n.sink: n for n in notifications if n.ok and n.kind == "alert"})
    else:
        delivery.unrecorded.pop(incident.key, None)

    outcome = "reported" if alert_sinks else ("enriched" if added else "duplicate")
    result = Delivered(outcome, target.model_copy(update={"notifications": notifications}), notifications, added)
    failures = [n for n in notifications if not n.ok]
    if failures:
        raise DeliveryIncomplete(
            f"{len(failures)} of {len(notifications)} deliveries failed ("
            + "; ".join(f"{n.sink}: {n.detail}" for n in failures)
            + "); the event is retried and delivers only what is missing", notifications)
    if store is not None and not recording:
        raise DeliveryIncomplete("the alert went out but the incident store could not record it; the event is "
                                 "retried for the record", notifications)
    return result


def _enrich(store: IncidentStore, opened: OpenedIncident, incident: Incident
            ) -> tuple[OpenedIncident, Incident, list[str], bool]:
    """Merge what this event adds into the stored incident. Two events enriching at once: the
    second write fails its version check, reads the record again and merges again."""
    for _ in range(5):
        target, added = _enriched(opened, incident)
        if not added:
            return opened, target, added, True
        try:
            if store.update_incident(target, version=opened.version):
                return opened, target, added, True
            opened = store.open(incident)
        except StoreUnavailable:
            return opened, target, added, False
    return opened, target, added, True


def deliver_intake_error(error: IntakeError, delivery: Delivery) -> list[Notification]:
    """An unusable event: recorded and alerted, never retried (retrying cannot fix it)."""
    if delivery.store is not None:
        _try(lambda: delivery.store.record_intake_error(error))
    deadline = delivery.deadline()
    return run_guarded([(s, "intake_error", lambda s=s: s.send_intake_error(error, deadline=deadline))
                        for s in delivery.sinks])


def _enriched(opened: OpenedIncident, incident: Incident) -> tuple[Incident, list[str]]:
    """The stored incident with what this event adds (its subject, links and event id)."""
    stored = opened.incident
    added = stored.subject.additions(incident.subject)
    if not added:
        return stored, []
    subject = stored.subject.merged_with(incident.subject)
    linked = [*stored.linked_event_ids, *(e for e in incident.linked_event_ids if e not in stored.linked_event_ids)]
    merged = stored.model_copy(update={
        "subject": subject,
        "links": console_links(subject),
        "names": subject.template_names(),
        "linked_event_ids": linked,
        "added": added,
    })
    return merged, added


def _wait_for_join(incident: Incident, delivery: Delivery) -> None:
    try:
        attempt = delivery.store.count_attempt(incident.event.event_id)
    except StoreUnavailable:
        return  # cannot count: report now rather than risk never reporting
    if attempt < delivery.join_attempts:
        raise JoinPending(f"{incident.evidence.unresolved} (attempt {attempt} of {delivery.join_attempts}; "
                          "the event is retried, and reported as it is on the last attempt)")


def _try(write: Callable[[], Any]) -> bool:
    try:
        write()
        return True
    except StoreUnavailable:
        return False


def monotonic_deadline(seconds_left: Callable[[], float | None], margin_s: float = 5.0) -> Callable[[], float | None]:
    """A deadline function from 'how many seconds are left' (Lambda's context), less a margin."""
    def deadline() -> float | None:
        left = seconds_left()
        return None if left is None else time.monotonic() + max(0.0, left - margin_s)
    return deadline
