"""The delivery record in the incident table (moto over HTTP): a conditional put per X-GitHub-Delivery,
TTL'd past the webhook's maximum age; a replay is told apart from a delivery still being handled, a
released claim is free again, and so is one left by a function that was killed mid-way."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from incident_responder.demo.provision import create_incident_table
from incident_responder.github.deliveries import CLAIM_STALE_AFTER, DeliveryLedger, delivery_key

MAX_AGE = timedelta(hours=6)
NOW = datetime(2026, 11, 20, 17, 48, tzinfo=timezone.utc)


@pytest.fixture
def table(aws_clients) -> str:
    name = f"incidents-{uuid.uuid4().hex[:8]}"
    create_incident_table(aws_clients, name)
    return name


def ledger(aws_clients, table: str, now: datetime = NOW) -> DeliveryLedger:
    return DeliveryLedger(aws_clients.dynamodb, table, max_age=MAX_AGE, now=lambda: now)


def test_a_delivery_is_claimed_once_and_its_record_outlives_the_maximum_age(aws_clients, table) -> None:
    delivery = str(uuid.uuid4())
    assert ledger(aws_clients, table).claim(delivery).outcome == "claimed"
    item = aws_clients.dynamodb.get_item(TableName=table, Key={"id": {"S": delivery_key(delivery)}})["Item"]
    assert int(item["expiration"]["N"]) > (NOW + MAX_AGE).timestamp()
    assert delivery not in item["id"]["S"]  # the key is the GUID's hash


def test_a_second_claim_while_handling_and_after_done_is_a_replay_with_its_reason(aws_clients, table) -> None:
    delivery = str(uuid.uuid4())
    first = ledger(aws_clients, table)
    first.claim(delivery)
    while_handling = ledger(aws_clients, table).claim(delivery)
    assert while_handling.outcome == "replay" and "being handled by another invocation" in while_handling.reason
    first.done(delivery, "reported: github-run:o/r:1:1 aws_credentials/credentials_not_found")
    after = ledger(aws_clients, table).claim(delivery)
    assert after.outcome == "replay" and "already handled at 2026-11-20T17:48:00Z" in after.reason
    assert "aws_credentials/credentials_not_found" in after.reason


def test_a_released_claim_is_free_for_the_redelivery(aws_clients, table) -> None:
    delivery = str(uuid.uuid4())
    first = ledger(aws_clients, table)
    first.claim(delivery)
    first.release(delivery)
    assert ledger(aws_clients, table).claim(delivery).outcome == "claimed"


def test_a_claim_left_by_a_killed_function_is_free_once_stale_but_a_handled_one_never(aws_clients, table) -> None:
    killed, handled = str(uuid.uuid4()), str(uuid.uuid4())
    ledger(aws_clients, table).claim(killed)
    done = ledger(aws_clients, table)
    done.claim(handled)
    done.done(handled, "reported")
    sooner = ledger(aws_clients, table, NOW + CLAIM_STALE_AFTER - timedelta(seconds=1))
    assert sooner.claim(killed).outcome == "replay"
    later = ledger(aws_clients, table, NOW + CLAIM_STALE_AFTER + timedelta(seconds=1))
    assert later.claim(killed).outcome == "claimed"
    assert later.claim(handled).outcome == "replay"
