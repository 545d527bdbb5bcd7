"""The uftp: section is validated like the rest of the portfolio, and `flexopt uftp keygen`/`serve` say what is
wrong before anything listens."""

from __future__ import annotations

import base64
import copy

import yaml
from typer.testing import CliRunner
from uftp_peer import KEY_ENV, Dso, portfolio_dict

from flexopt.cli import app
from flexopt.config.loader import PortfolioError, load_portfolio
from flexopt.uftp.keys import new_key_pair, public_key_of


def _write(tmp_path, data) -> str:
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _data() -> dict:
    private, public = new_key_pair()
    return portfolio_dict(9101, Dso(private, public, public, 9102), 2404)


def _problems(tmp_path, data) -> str:
    try:
        load_portfolio(_write(tmp_path, data))
    except PortfolioError as exc:
        return str(exc)
    raise AssertionError("the portfolio loaded")


def test_a_valid_section_loads(tmp_path):
    pf = load_portfolio(_write(tmp_path, _data())).portfolio
    assert pf.uftp.port == 9101 and pf.uftp.congestion_points["ean.871685900012345678"] == "CP-NORTH"
    assert pf.uftp.offers.option_fractions == [0.5, 1.0]


def test_mistakes_are_named(tmp_path):
    data = _data()
    data["uftp"]["congestion_points"] = {"ean.871685900012345678": "NOWHERE"}
    assert "'NOWHERE' is not a congestion point of the portfolio" in _problems(tmp_path, data)
    data = _data()
    data["uftp"]["participants"][0]["public_key"] = base64.b64encode(b"short").decode()
    assert "decodes to 5 bytes" in _problems(tmp_path, data)
    data = _data()
    data["uftp"]["listen"] = "localhost"
    assert "is not HOST:PORT" in _problems(tmp_path, data)
    data = _data()
    data["uftp"]["signing_key"] = "abc"  # a key in the file is refused: only its variable's name belongs there
    assert "signing_key" in _problems(tmp_path, data)
    data = _data()
    data["uftp"]["participants"].append(copy.deepcopy(data["uftp"]["participants"][0]))
    assert "listed more than once" in _problems(tmp_path, data)


def test_keygen_prints_a_pair_that_belongs_together():
    res = CliRunner().invoke(app, ["uftp", "keygen"])
    assert res.exit_code == 0, res.output
    private = res.output.split("private (signing) key:")[1].split()[0]
    public = res.output.split("public key:")[1].split()[0]
    assert len(base64.b64decode(private)) == 64 and public_key_of(private) == public


def test_serve_without_the_key_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    res = CliRunner().invoke(app, ["uftp", "serve", _write(tmp_path, _data()), "--store", str(tmp_path / "s")])
    assert res.exit_code == 2 and f"{KEY_ENV} (uftp.signing_key_env) is not set" in res.output
    monkeypatch.setenv(KEY_ENV, "not-base64!")
    res = CliRunner().invoke(app, ["uftp", "serve", _write(tmp_path, _data()), "--store", str(tmp_path / "s")])
    assert res.exit_code == 2 and "is not base64" in res.output and "not-base64!" not in res.output


def test_the_pilots_example_validates():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "uftp_pilots.yaml"
    res = CliRunner().invoke(app, ["validate", str(example)])
    assert res.exit_code == 0, res.output
    uftp = load_portfolio(example).portfolio.uftp
    assert uftp.congestion_points["ean.871685900012345678"] == "IDE-GUADALIX-CAMPUS-MV"


def test_the_signing_key_is_redacted_and_the_public_key_is_not(monkeypatch):
    from flexopt.config.redaction import redact
    from flexopt.config.uftp import Uftp
    from flexopt.uftp.keys import signing_key

    private, public = new_key_pair()
    monkeypatch.setenv(KEY_ENV, private)
    uftp = Uftp.model_validate({**_data()["uftp"]})
    assert signing_key(uftp) == private
    assert redact(f"key={private}") == "key=***" and redact(f"pub={public}") == f"pub={public}"
    assert redact(f"seed {base64.b64decode(private)[:32].hex()}") == "seed ***"
