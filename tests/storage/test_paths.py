"""Portfolio names become safe folder names: never '.'/'..', never a separator, bounded, distinct, inside
the store; runs and dispatch records of any name land there."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.operations import dispatch_folder

LONG = "x" * 300
NAMES = ["..", ".", "a/b", "a\\b", "../../etc", LONG, LONG[:-1] + "y", "Café Montaña", "Cafe Montana",
         "東京 pilot", "東京 plant", "", " ", "-rf", ".hidden", "BeFlexible Madrid pilot (Guadalix campus and "
         "residential customers)", "cli-test", "My Portfolio", "My-Portfolio", "a" * 64, "a" * 65]


def test_every_name_becomes_a_safe_distinct_folder_name(tmp_path):
    from flexopt.runs.store import SLUG_MAX, day_dir, portfolio_slug  # here: the module is importable before the fix

    assert SLUG_MAX == 64
    slugs = [portfolio_slug(n) for n in NAMES]
    assert len(set(slugs)) == len(NAMES)  # different names never share a folder
    for name, slug in zip(NAMES, slugs, strict=True):
        assert slug not in (".", "..") and not slug.startswith((".", "-")), name
        assert "/" not in slug and "\\" not in slug and os.sep not in slug, name
        assert 0 < len(slug) <= SLUG_MAX and slug.isascii(), name
        day = day_dir(tmp_path / "store", name, dt.date(2024, 6, 12))
        assert day.parent.parent == tmp_path / "store" and day.parent.name == slug
        assert dispatch_folder(tmp_path / "store", name, dt.date(2024, 6, 12)) == day / "dispatch"
    assert portfolio_slug("cli-test") == "cli-test"  # plain names are kept as they are
    assert portfolio_slug("Café Montaña").startswith("Cafe-Montana-")  # readable, with a hash
    assert portfolio_slug(LONG) != portfolio_slug(LONG[:-1] + "y")


@pytest.mark.parametrize("name", ["..", "z" * 300])
def test_runs_of_hostile_names_land_inside_the_store(kit, tmp_path, name):
    portfolio = kit.write_portfolio(tmp_path / "pf", name=name)
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["schedule", "day-ahead", str(portfolio), "--date", kit.day,
                                      "--store", str(store)])
    assert result.exit_code == 0, result.output
    (run,) = store.glob("*/*/day-ahead/v001")
    assert run.parent.parent.parent.parent == store and (run / "run.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pf", "store"]  # nothing written beside the store
