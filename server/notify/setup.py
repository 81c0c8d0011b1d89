"""The notifier of one node, built from the settings: which channels it can send on."""

from __future__ import annotations

from server.config import Settings
from server.db import Database
from server.keys import NOTIFIER_GROUP
from server.notify.channels import (
    Channel,
    EmailChannel,
    SmsChannel,
    SmtpServer,
    WebhookChannel,
    http_client,
)
from server.notify.notifier import Notifier
from server.store import Store

COMPANION_GROUPS = (NOTIFIER_GROUP,)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Webhooks always; email with `VQ_SMTP_URL`; SMS with `VQ_SMS_WEBHOOK_URL`. Web Push is
    added by the caller once the deployment's VAPID sender exists."""
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(http_client(), settings.webhook_allow_private)
    }
    if settings.smtp_url is not None:
        domain = settings.mail_from.rsplit("@", 1)[-1]
        server = SmtpServer.parse(settings.smtp_url.reveal())
        channels["email"] = EmailChannel(server, settings.mail_from, domain)
    if settings.sms_webhook_url is not None and settings.sms_webhook_secret is not None:
        channels["sms"] = SmsChannel(
            http_client(), settings.sms_webhook_url, settings.sms_webhook_secret.reveal()
        )
    return channels


def build_notifier(settings: Settings, store: Store, db: Database) -> Notifier:
    return Notifier(
        store,
        db,
        build_channels(settings),
        retry_s=settings.webhook_retry_s,
        public_url=settings.public_url,
        lease_s=settings.notify_lease_s,
    )
