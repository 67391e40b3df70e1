"""Webhook and Slack notifications of rollout transitions."""

from .notifier import DeliveryResult, SecretLookup, WebhookNotifier
from .payloads import DEFAULT_KINDS, slack_payload, webhook_payload

__all__ = ["DEFAULT_KINDS", "DeliveryResult", "SecretLookup", "WebhookNotifier", "slack_payload", "webhook_payload"]
