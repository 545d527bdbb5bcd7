"""The redactor finds a secret in every form it may be echoed in, and the three places it is applied besides the
record writers (log records, the command's output streams, an unexpected exception) let none through."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import sys
import urllib.parse

import pytest

from flexopt.config.redaction import (
    MASK,
    RedactingFilter,
    RedactingStream,
    Redactor,
    excerpt,
    redacted_output,
    register_secret,
)


def fresh(secret: str, raw: bytes | None = None, users=()) -> Redactor:
    r = Redactor()
    r.add(secret, raw, users)
    return r


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc", "Bearer ", "x" * 50])
def test_base64_at_any_alignment_and_inside_longer_text(prefix):
    secret = "pässwörd/+=" + secrets.token_hex(8)
    r = fresh(secret)
    blob = base64.b64encode(f"{prefix}{secret} and more".encode()).decode()
    out = r.redact(f"header {blob} end")
    inner = base64.b64encode(secret.encode()).decode()[4:-4]
    assert MASK in out and inner[:8] not in out


def test_every_form():
    secret = 'sp ce/"q"\\ü+&=' + secrets.token_hex(6)
    r = fresh(secret, users=["CP:7"])
    forms = [secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1],
             repr(secret)[1:-1], base64.b64encode(f"CP:7:{secret}".encode()).decode(),
             base64.urlsafe_b64encode(secret.encode()).decode()]
    for form in forms:
        assert r.redact(f"<{form}>") == f"<{MASK}>", form
    assert r.redact("nothing secret here") == "nothing secret here"


def test_hex_key_and_its_raw_bytes():
    raw = bytes(range(200, 220))  # a 1.6 AuthorizationKey: 20 raw bytes, hex in the environment
    r = fresh(raw.hex(), raw=raw, users=["CP-1"])
    assert r.redact(raw.hex().upper()) == MASK
    assert r.redact(base64.b64encode(b"CP-1:" + raw).decode()) == MASK
    assert r.redact(repr(raw)) == f"b'{MASK}'"


def test_nested_records_and_excerpt_cut_after_redaction():
    secret = "tok-" + secrets.token_hex(12)
    register_secret(secret)
    body = "x" * 190 + secret + "y" * 50
    assert secret[:6] not in excerpt(body, 200)  # cut after redaction: no partial token survives
    r = fresh(secret)
    assert r.redact_obj({"a": [f"Bearer {secret}", 1, None], secret: ("ok",)}) == {
        "a": [f"Bearer {MASK}", 1, None], MASK: ("ok",)}


def test_log_filter_redacts_message_args_and_traceback():
    secret = "pw-" + secrets.token_hex(10)
    register_secret(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("flexopt.test.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("sent %s", secret)
        try:
            raise RuntimeError(f"server said {secret}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "sent ***" in text and "RuntimeError: server said ***" in text and secret not in text


def test_streams_and_an_unexpected_exception(capsys):
    secret = "tk-" + secrets.token_hex(10)
    register_secret(secret)
    inner = io.StringIO()
    stream = RedactingStream(inner)
    stream.write(f"half {secret[:7]}")
    stream.write(f"{secret[7:]} done\n")  # split across writes
    assert inner.getvalue() == f"half {MASK} done\n"
    with pytest.raises(SystemExit) as stop, redacted_output():
        print(f"printed {secret}")
        raise ValueError(f"cannot use {secret}")
    assert stop.value.code == 1
    out, err = capsys.readouterr()
    assert out == f"printed {MASK}\n" and f"ValueError: cannot use {MASK}" in err and secret not in out + err
    assert isinstance(sys.stdout, io.TextIOBase) and not isinstance(sys.stdout, RedactingStream)  # restored
