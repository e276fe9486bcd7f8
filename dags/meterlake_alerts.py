"""Failure alerts of the meterlake DAGs: a DingTalk or WeCom group robot, or mail.

Every meterlake task has :func:`notify_failure` as its ``on_failure_callback``. Where it
sends is the operator's choice, without touching the DAGs (see docs/airflow.md,
"Alerts"):

- the Airflow connection ``meterlake_alerts`` (any type): ``host`` is the robot's
  webhook URL, ``password`` the DingTalk signing secret if the robot uses one;
- else the environment of the workers: ``METERLAKE_ALERT_WEBHOOK`` and
  ``METERLAKE_ALERT_SECRET``;
- and, besides, ``METERLAKE_ALERT_EMAIL`` (comma-separated addresses) sends mail through
  the Airflow SMTP connection ``smtp_default`` (apache-airflow-providers-smtp).

DingTalk and WeCom group robots take the same text message
(``{"msgtype": "text", "text": {"content": ...}}``); a DingTalk robot secured by a
signature gets ``timestamp`` and ``sign`` (HMAC-SHA256 of ``timestamp\\nsecret``,
base64) added to the URL, as DingTalk documents. An alert that cannot be sent is
logged and never hides the task's own failure.

Standard library only at import time, like every file in dags/.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("meterlake.alerts")

CONN_ID = "meterlake_alerts"
#: seconds to wait for the robot: an alert must not hold a worker slot
TIMEOUT_S = 10


def message(context: Mapping[str, Any]) -> str:
    """Two lines a person on call can act on: what failed, why, where the log is."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or context.get("dag_id", "?")
    task_id = getattr(ti, "task_id", None) or "?"
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    tries = getattr(ti, "try_number", "?")
    error = context.get("exception")
    why = " ".join(str(error).split())[:500] if error is not None else "no exception recorded"
    log_url = getattr(ti, "log_url", None)
    lines = [f"meterlake: {dag_id}.{task_id} failed (run {run_id}, try {tries}): {why}"]
    if log_url:
        lines.append(f"log: {log_url}")
    return "\n".join(lines)


def webhook_target() -> tuple[str, str | None] | None:
    """(webhook URL, signing secret) from the connection, else the environment; None = unset."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(CONN_ID)
        if conn.host:
            return conn.host, conn.password or None
    except Exception:  # no such connection (or no Airflow context): fall back to the environment
        pass
    url = os.environ.get("METERLAKE_ALERT_WEBHOOK")
    return (url, os.environ.get("METERLAKE_ALERT_SECRET") or None) if url else None


def signed_url(url: str, secret: str | None, now_ms: int | None = None) -> str:
    """The DingTalk signature: ``timestamp`` and ``sign`` query parameters."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def post_text(url: str, text: str, secret: str | None = None) -> None:
    body = json.dumps({"msgtype": "text", "text": {"content": text}}, ensure_ascii=False).encode()
    request = urllib.request.Request(
        signed_url(url, secret), data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        reply = response.read(2000).decode("utf-8", "replace")
    # both robots answer 200 with {"errcode": 0, ...}; anything else is worth a log line
    if '"errcode":0' not in reply.replace(" ", ""):
        log.warning("alert webhook answered %s", reply)


def send_mail(to: list[str], subject: str, text: str, context: Mapping[str, Any]) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    SmtpNotifier(to=to, subject=subject, html_content=f"<pre>{text}</pre>")(context)


def notify_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every meterlake task."""
    text = message(context)
    log.error("%s", text)
    target = webhook_target()
    if target is not None:
        try:
            post_text(target[0], text, target[1])
        except Exception as exc:  # the alert is best effort; the task has failed either way
            log.warning("could not send the failure alert to the webhook: %s", exc)
    mail = [a.strip() for a in os.environ.get("METERLAKE_ALERT_EMAIL", "").split(",") if a.strip()]
    if mail:
        try:
            send_mail(mail, text.splitlines()[0], text, context)
        except Exception as exc:
            log.warning("could not send the failure alert by mail: %s", exc)
