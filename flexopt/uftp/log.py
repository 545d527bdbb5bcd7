"""The message log: every UFTP message in and out, as SQLite rows that are only ever inserted.

A row holds the signed XML as it came or went, the parsed fields (JSON), the status (``accepted``, ``rejected``,
``sent``, ``failed``, ...) and the reason. A later event about the same message (an offer ordered, a send that
failed) is a new row, so the log is the whole history; ``seen`` answers the replay check from it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexopt.config.redaction import redact, redact_obj

LOG_NAME = "messages.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_utc TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    message_type TEXT NOT NULL DEFAULT '',
    sender_domain TEXT NOT NULL DEFAULT '',
    sender_role TEXT NOT NULL DEFAULT '',
    recipient_domain TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    conversation_id TEXT NOT NULL DEFAULT '',
    reference_id TEXT NOT NULL DEFAULT '',
    signed_xml TEXT NOT NULL DEFAULT '',
    payload_xml TEXT NOT NULL DEFAULT '',
    fields_json TEXT NOT NULL DEFAULT '{}',
    notes_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (message_id);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (sender_domain, message_type, conversation_id);
CREATE TRIGGER IF NOT EXISTS messages_never_updated BEFORE UPDATE ON messages
    BEGIN SELECT RAISE(ABORT, 'the UFTP message log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS messages_never_deleted BEFORE DELETE ON messages
    BEGIN SELECT RAISE(ABORT, 'the UFTP message log is append-only'); END;
"""


@dataclass(frozen=True)
class Entry:
    id: int
    at_utc: str
    direction: str
    status: str
    reason: str
    message_type: str
    sender_domain: str
    message_id: str
    conversation_id: str
    reference_id: str
    signed_xml: str
    payload_xml: str
    fields: dict
    notes: dict


class MessageLog:
    """One SQLite file per portfolio and store; safe to use from the service's threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, *, direction: str, status: str, reason: str = "", message_type: str = "", sender_domain: str = "",
            sender_role: str = "", recipient_domain: str = "", message_id: str = "", conversation_id: str = "",
            reference_id: str = "", signed_xml: str = "", payload_xml: str = "", fields: Any = None,
            notes: Any = None) -> int:
        """Insert one row (redacted: a secret never reaches the log) and return its id."""
        row = {"at_utc": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "direction": direction,
               "status": status, "reason": redact(reason), "message_type": message_type,
               "sender_domain": sender_domain, "sender_role": sender_role, "recipient_domain": recipient_domain,
               "message_id": message_id or "", "conversation_id": conversation_id or "",
               "reference_id": reference_id or "", "signed_xml": redact(signed_xml),
               "payload_xml": redact(payload_xml),
               "fields_json": json.dumps(redact_obj(fields or {}), default=str, sort_keys=True),
               "notes_json": json.dumps(redact_obj(notes or {}), default=str, sort_keys=True)}
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._lock:
            return int(self._db.execute(f"INSERT INTO messages ({names}) VALUES ({marks})", row).lastrowid)

    def seen(self, message_id: str, sender_domain: str, message_type: str, conversation_id: str) -> str | None:
        """Why an incoming message is a replay (its id, or its type in its conversation, was accepted before)."""
        with self._lock:
            same_id = self._db.execute("SELECT id FROM messages WHERE direction = 'in' AND message_id = ? AND "
                                       "status = 'accepted' LIMIT 1", (message_id,)).fetchone()
            same_conv = self._db.execute(
                "SELECT message_id FROM messages WHERE direction = 'in' AND status = 'accepted' AND sender_domain = ? "
                "AND message_type = ? AND conversation_id = ? LIMIT 1",
                (sender_domain, message_type, conversation_id)).fetchone()
        if same_id:
            return f"message id {message_id} was received before"
        if same_conv:
            return (f"a {message_type} of conversation {conversation_id} was received before (message "
                    f"{same_conv[0]})")
        return None

    def entries(self, *, message_type: str | None = None, message_id: str | None = None,
                direction: str | None = None, status: str | None = None) -> list[Entry]:
        where, args = [], []
        for column, value in (("message_type", message_type), ("message_id", message_id),
                              ("direction", direction), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = ("SELECT id, at_utc, direction, status, reason, message_type, sender_domain, message_id, "
               "conversation_id, reference_id, signed_xml, payload_xml, fields_json, notes_json FROM messages"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id")
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Entry(*r[:12], json.loads(r[12]), json.loads(r[13])) for r in rows]
