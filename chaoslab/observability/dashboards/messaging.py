"""Messaging: orders' outbox, the broker's queues, notifications' consumers, dead letters, redeliveries."""

from __future__ import annotations

from chaoslab.observability import slos
from chaoslab.observability.dashboards.spec import Dashboard, Panel, Row, Target, Threshold

RI = "$__rate_interval"
NO_DEAD_LETTERS = "no message exhausts its delivery limit in a healthy lab"
NO_REDELIVERY = "no message is redelivered in a healthy lab"
QUEUES = f'queue=~"{slos.ORDER_EVENTS_QUEUE}|{slos.DEAD_LETTER_QUEUE}"'


def outbox_row() -> Row:
    return Row("Outbox (orders)", (
        Panel("Outbox backlog", (Target("sum by (replica) (outbox_backlog)", "{{replica}}"),), width=8,
              stack=True, description="Events written with their order but not yet confirmed by the broker."),
        Panel("Events published per second", (
            Target(f"sum(rate(outbox_published_total[{RI}]))", "published"),
        ), unit="ops", width=8),
        Panel("Publish latency (to broker confirm)", tuple(
            Target(f"histogram_quantile({q}, sum by (le) (rate(outbox_publish_duration_seconds_bucket[{RI}])))",
                   f"p{int(q * 100)}")
            for q in (0.5, 0.99)
        ), unit="s", width=8),
    ))


def broker_row() -> Row:
    return Row("Broker (RabbitMQ)", (
        Panel("Broker up", (Target(f'max(up{{job="{slos.BROKER_JOB}"}})', "up", instant=True),), kind="stat",
              width=4, thresholds=(Threshold(None, "red"), Threshold(1, "green"))),
        Panel("Queue depth", (
            Target(f"sum by (queue) (rabbitmq_queue_messages_ready{{{QUEUES}}})", "{{queue}} ready"),
            Target(f"sum by (queue) (rabbitmq_queue_messages_unacked{{{QUEUES}}})", "{{queue}} unacked"),
        ), width=10),
        Panel("Consumers", (
            Target(f"sum by (queue) (rabbitmq_queue_consumers{{{QUEUES}}})", "{{queue}}"),
        ), width=10, min=0),
    ))


def consumer_row() -> Row:
    return Row("Consumers (notifications), dead letters, redeliveries", (
        Panel("Messages handled by outcome", (
            Target(f"sum by (outcome) (rate(consumer_messages_total[{RI}]))", "{{outcome}}"),
        ), unit="ops", width=8, stack=True),
        Panel("Seconds since the last successful message", (
            Target("time() - max by (queue) (consumer_last_success_timestamp_seconds)", "{{queue}}"),
        ), unit="s", width=8, description="Grows while messages wait: ConsumerStalled fires on it."),
        Panel("Dead-letter queue", (
            Target(slos.queue_messages(slos.DEAD_LETTER_QUEUE), "{{queue}}"),
            Target(f'sum(rate(consumer_messages_total{{outcome="dead_lettered"}}[{RI}]))', "dead-lettered/s",
                   empty_reason=NO_DEAD_LETTERS),
        ), width=8, min=0),
        Panel("Redeliveries", (
            Target(f'sum(rate(consumer_messages_total{{outcome="redelivered"}}[{RI}]))', "seen by consumers",
                   empty_reason=NO_REDELIVERY),
            Target(f"sum(rate(rabbitmq_global_messages_redelivered_total[{RI}]))", "broker"),
        ), unit="ops", width=12),
        Panel("Duplicates skipped (idempotent consumer)", (
            Target(f'sum(rate(consumer_messages_total{{outcome="duplicate"}}[{RI}]))', "duplicates",
                   empty_reason="duplicates only arrive after a redelivery"),
        ), unit="ops", width=12),
    ))


def dashboard() -> Dashboard:
    return Dashboard(
        uid="chaoslab-messaging",
        title="chaoslab / Messaging",
        description="From orders' transactional outbox through RabbitMQ to notifications' consumers.",
        rows=(outbox_row(), broker_row(), consumer_row()),
    )
