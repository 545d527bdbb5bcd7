"""Secrets never leave flexopt in anything it writes: one process-wide :class:`Redactor` knows every secret in use
(the values of the portfolio's ``*_env`` variables, a database password) and replaces each with ``***``, in the
forms a device or a library might echo it in: as is, URL-encoded, JSON- or repr-escaped, hex, and base64 (alone,
as ``user:secret`` of HTTP Basic, and inside any longer base64 text).

It is applied where things are written, not where text is made: round records (JSON, ``rounds.csv``, the telemetry
database), the command's stdout and stderr (:func:`redacted_output`), log records (:class:`RedactingFilter`), and
wherever device text is cut short (:func:`excerpt`, before the cut, or a partial secret would survive it).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

MASK = "***"
MIN_CORE = 8  # base64 runs shorter than this inside other text are not told apart from ordinary text


def _base64_forms(raw: bytes, users: Iterable[str]) -> set[str]:
    """The secret's bytes in base64 wherever they sit in an encoded text: whole, after ``user:``, and, at each of
    the three alignments, every character that only the secret's bits decide (what is left around it are the two
    characters that mix in a neighbour's bits, at most 4 bits of the secret each)."""
    forms: set[str] = set()
    bits = 8 * len(raw)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode())
        forms.update(encode(user.encode() + b":" + raw).decode() for user in users)
        for shift in range(3):
            first, end = -(-8 * shift // 6), (8 * shift + bits) // 6  # characters wholly inside the secret
            inside = encode(b"\0" * shift + raw + b"\0\0\0").decode()[first:end]
            at_end = encode(b"\0" * shift + raw).decode()[first:]  # the secret ends the text: padded
            forms |= {core for core in (inside, at_end) if len(core.rstrip("=")) >= MIN_CORE}
    return {f for f in forms if f}


def secret_forms(secret: str, raw: bytes | None = None, users: Iterable[str] = ()) -> set[str]:
    """Every form of a secret to look for. ``raw``: its bytes on the wire when they are not its UTF-8 text (a hex
    AuthorizationKey's 20 bytes); ``users``: names it is sent with in HTTP Basic (``base64(user:secret)``)."""
    users = tuple(users)
    forms = {secret, urllib.parse.quote(secret), urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             repr(secret)[1:-1]}
    forms |= _base64_forms(secret.encode(), users)
    if raw is not None and raw != secret.encode():
        forms |= {raw.hex(), raw.hex().upper(), repr(raw)[2:-1]} | _base64_forms(raw, users)
    return {f for f in forms if f}


class Redactor:
    """The secrets of this process and what replaces them."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str | None, raw: bytes | None = None, users: Iterable[str] = ()) -> None:
        """Redact ``secret`` (and its forms) from now on; an empty or missing secret is ignored."""
        if not secret:
            return
        forms = secret_forms(secret, raw, users) - self._forms
        if forms:
            with self._lock:
                self._forms |= forms
                ordered = sorted(self._forms, key=len, reverse=True)  # the longest form wins where forms overlap
                self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None or not text else pattern.sub(MASK, text)

    def redact_obj(self, obj: Any) -> Any:
        """A JSON-like value with every string in it redacted (keys too)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.redact_obj(v) for v in obj)
        return obj


REDACTOR = Redactor()


def register_secret(secret: str | None, raw: bytes | None = None, users: Iterable[str] = ()) -> None:
    """Make a secret known to the process's redactor (adapters register what they send; dispatch the portfolio's)."""
    REDACTOR.add(secret, raw, users)


def redact(text: str) -> str:
    return REDACTOR.redact(text)


def redact_obj(obj: Any) -> Any:
    return REDACTOR.redact_obj(obj)


def excerpt(text: str, limit: int) -> str:
    """At most ``limit`` characters of device text on one line, redacted before it is cut."""
    return REDACTOR.redact(text.strip().replace("\r", " ").replace("\n", " "))[:limit]


class RedactingFilter(logging.Filter):
    """Redacts a log record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """Put the filter on every handler of the root logger and on logging's last-resort handler (where records go
    when nothing is configured, as in dispatch). Idempotent."""
    handlers = [*logging.getLogger().handlers, logging.lastResort]
    for handler in handlers:
        if handler is not None and _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


class RedactingStream(io.TextIOBase):
    """A text stream that writes whole lines, redacted, to ``inner`` (the rest on ``flush``), so a secret split
    across two writes is still caught."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            complete, _, self._buffer = self._buffer.rpartition("\n")
            self.inner.write(redact(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self.inner.write(redact(self._buffer))
            self._buffer = ""
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def redacted_output(passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """stdout and stderr redacted for the duration, and an unexpected exception shown redacted (traceback and
    exit code 1, as Python would) instead of escaping to be printed after the streams are restored. Exceptions of
    ``passthrough`` (a command's own exit) pass unchanged."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(out), RedactingStream(err)
    try:
        yield
    except (SystemExit, KeyboardInterrupt, *passthrough):
        raise
    except Exception:
        sys.stderr.write(traceback.format_exc())
        raise SystemExit(1) from None
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = out, err
