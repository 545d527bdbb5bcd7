"""What the AGR's handlers share: the portfolio, the store, the telemetry database, the clock, one solve at a
time, the message log and the sender."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flexopt.config.loader import LoadedPortfolio, load_portfolio
from flexopt.data.limit_ledger import LEDGER_NAME
from flexopt.runs.store import uftp_dir
from flexopt.uftp.keys import signing_key
from flexopt.uftp.log import LOG_NAME, MessageLog
from flexopt.uftp.outbound import Outbound

DEFAULT_MIP_GAP = 0.001  # offers are priced on cost differences: tighter than a schedule run's 0.5 %


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class AgrContext:
    portfolio_path: Path
    store: Path
    db: str | None = None  # telemetry database URL (None: $FLEXOPT_DB, else the store's SQLite file if any)
    now: Callable[[], dt.datetime] = utc_now
    mip_gap: float = DEFAULT_MIP_GAP
    loaded: LoadedPortfolio = field(init=False)
    log: MessageLog = field(init=False)
    outbound: Outbound = field(init=False)
    solve_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.loaded = load_portfolio(self.portfolio_path)
        uftp = self.loaded.portfolio.uftp
        if uftp is None:
            raise ValueError(f"{self.portfolio_path}: the portfolio has no uftp: section (docs/uftp.md)")
        self.key = signing_key(uftp)
        self.log = MessageLog(self.folder / LOG_NAME)
        self.outbound = Outbound(uftp, self.key, self.log)

    @property
    def uftp(self):
        return self.loaded.portfolio.uftp

    @property
    def tz(self) -> str:
        return self.loaded.portfolio.portfolio.timezone

    @property
    def folder(self) -> Path:
        return uftp_dir(self.store, self.loaded.portfolio.portfolio.name)

    @property
    def ledger(self) -> Path:
        return self.folder / LEDGER_NAME

    def close(self) -> None:
        self.log.close()
