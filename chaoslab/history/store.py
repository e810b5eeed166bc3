"""The run history: one SQLite file per lab, STATE/history.sqlite, with every gameday, experiment and load run.

Why SQLite through the standard library's sqlite3 (and not DuckDB, nor SQLAlchemy here): the history is a few
rows per run, written once at the end of a run and read by `chaoslab history` and `compare`: a transactional,
single-file store that any tool (the sqlite3 shell, pandas, Grafana's SQLite plugin) can open is what it needs.
sqlite3 ships with Python, so the history costs no dependency and no daemon; its WAL mode lets a `chaoslab load`
record its run while a gameday records its own. DuckDB would bring a 40 MB wheel for column scans that a few
thousand rows do not need. The queries are few and fixed, so an ORM would only stand between them and the reader.

Tables: runs (one row per run: kind, name, times, status, score, commit, seed, set), verdicts (every verdict with
its measured value and bound) and figures (chaoslab.history.figures, per suite and for the whole run).
The schema's version is SQLite's user_version; a file from a newer chaoslab is refused, not rewritten.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslab.errors import LabError
from chaoslab.history.figures import Value
from chaoslab.lab.paths import LabPaths

FILE_NAME = "history.sqlite"
SCHEMA_VERSION = 1
KINDS = ("gameday", "experiment", "load")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,             -- gameday | experiment | load
    name TEXT NOT NULL,             -- the plan's, the experiment's or the scenario's name
    started REAL NOT NULL,          -- unix time
    finished REAL,
    status TEXT NOT NULL,           -- passed | failed | inconclusive | interrupted
    score REAL,                     -- 0-100 (chaoslab.gameday.score)
    commit_sha TEXT,                -- git rev-parse HEAD of the checkout chaoslab ran from
    commit_dirty INTEGER,           -- 1: that checkout had uncommitted changes
    seed INTEGER,
    set_id TEXT,                    -- the repetitions of one `gameday --repeat N` share it
    repetition INTEGER,             -- 1..N within its set
    run_dir TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '', -- the plan or experiment file
    details TEXT NOT NULL DEFAULT '{}' -- JSON: vars, the lab, notes, the fault schedule
);
CREATE TABLE IF NOT EXISTS verdicts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    suite TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,           -- passed | failed | inconclusive
    measured REAL,
    bound REAL,
    unit TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS figures (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    suite TEXT NOT NULL,            -- an experiment's name, a fault window's, or 'run'
    figure TEXT NOT NULL,           -- chaoslab.history.figures.FIGURES
    value REAL NOT NULL,
    censored INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (kind, name, started);
CREATE INDEX IF NOT EXISTS runs_by_set ON runs (set_id);
CREATE INDEX IF NOT EXISTS runs_by_commit ON runs (commit_sha);
CREATE INDEX IF NOT EXISTS verdicts_of_run ON verdicts (run_id);
CREATE INDEX IF NOT EXISTS figures_of_run ON figures (run_id);
"""


@dataclass
class RunRecord:
    kind: str
    name: str
    started: float
    status: str
    finished: float | None = None
    score: float | None = None
    commit: str | None = None
    dirty: bool | None = None
    seed: int | None = None
    set_id: str | None = None
    repetition: int | None = None
    run_dir: str = ""
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Value] = field(default_factory=list)
    id: int | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished is None else round(self.finished - self.started, 1)

    def figure(self, name: str, suite: str = "run") -> float | None:
        return next((v.value for v in self.figures if v.figure == name and v.suite == suite), None)

    def to_json(self, with_verdicts: bool = False) -> dict[str, Any]:
        data = {"id": self.id, "kind": self.kind, "name": self.name, "started": self.started,
                "finished": self.finished, "duration_s": self.duration_s, "status": self.status, "score": self.score,
                "commit": self.commit, "dirty": self.dirty, "seed": self.seed, "set_id": self.set_id,
                "repetition": self.repetition, "run_dir": self.run_dir, "source": self.source,
                "details": self.details, "figures": [v.to_json() for v in self.figures]}
        if with_verdicts:
            data["verdicts"] = self.verdicts
        return data


class History:
    """The history of one lab (one state dir)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, state_dir: str | os.PathLike[str]) -> History:
        return cls(LabPaths.of(state_dir).state / FILE_NAME)

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @contextmanager
    def _connect(self, create: bool) -> Iterator[sqlite3.Connection]:
        if not create and not self.exists:
            raise LabError(f"no run history in {self.path.parent} yet",
                           hint="a gameday, `chaoslab chaos run` or `chaoslab load` against this lab records one")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)  # private like the rest of the state dir
                os.close(fd)
            db = sqlite3.connect(self.path, timeout=15.0)  # a writer waits for another (WAL: readers never do)
        except (OSError, sqlite3.Error) as exc:
            raise LabError(f"cannot open the run history {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA foreign_keys = ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LabError(f"the run history {self.path} was written by a newer chaoslab (schema {version}, "
                               f"this one reads {SCHEMA_VERSION})")
            if create and version < SCHEMA_VERSION:
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            yield db
            db.commit()
        except sqlite3.DatabaseError as exc:
            db.rollback()
            raise LabError(f"the run history {self.path} cannot be used: {exc}",
                           hint="move the file away to start a new history") from None
        finally:
            db.close()

    def add(self, run: RunRecord) -> int:
        """Record a run with its verdicts and figures (one transaction); its id."""
        with self._connect(create=True) as db:
            cursor = db.execute(
                "INSERT INTO runs (kind, name, started, finished, status, score, commit_sha, commit_dirty, seed, "
                "set_id, repetition, run_dir, source, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.kind, run.name, run.started, run.finished, run.status, run.score, run.commit,
                 None if run.dirty is None else int(run.dirty), run.seed, run.set_id, run.repetition, run.run_dir,
                 run.source, json.dumps(run.details, default=str)))
            run_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO verdicts (run_id, suite, name, status, measured, bound, unit, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, str(v.get("suite", "")), str(v.get("name", "")), _status(v), _number(v.get("measured")),
                  _number(v.get("bound")), str(v.get("unit") or ""), str(v.get("detail") or "")[:2000])
                 for v in run.verdicts])
            db.executemany("INSERT INTO figures (run_id, suite, figure, value, censored) VALUES (?, ?, ?, ?, ?)",
                           [(run_id, f.suite, f.figure, f.value, int(f.censored)) for f in run.figures])
        run.id = run_id
        return run_id

    def runs(self, *, kind: str | None = None, name: str | None = None, set_id: str | None = None,
             commit: str | None = None, last: int | None = None, with_verdicts: bool = False) -> list[RunRecord]:
        """Runs matching every given filter (`commit`: a prefix), oldest first; `last`: only the latest N."""
        where, args = [], []
        for column, value in (("kind", kind), ("name", name), ("set_id", set_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if commit:
            where.append("commit_sha LIKE ?")
            args.append(commit.lower() + "%")
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started DESC"
        if last is not None:
            sql += f" LIMIT {int(last)}"
        with self._connect(create=False) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(sql, args).fetchall()
            records = [_record(row) for row in reversed(rows)]
            for record in records:
                record.figures = [Value(r["suite"], r["figure"], r["value"], bool(r["censored"])) for r in
                                  db.execute("SELECT * FROM figures WHERE run_id = ? ORDER BY rowid", (record.id,))]
                if with_verdicts:
                    record.verdicts = [dict(r) for r in db.execute(
                        "SELECT suite, name, status, measured, bound, unit, detail FROM verdicts WHERE run_id = ? "
                        "ORDER BY rowid", (record.id,))]
        return records

    def set_ids(self) -> list[str]:
        with self._connect(create=False) as db:
            return [r[0] for r in db.execute("SELECT DISTINCT set_id FROM runs WHERE set_id IS NOT NULL "
                                             "ORDER BY started")]


def _status(verdict: dict[str, Any]) -> str:
    if verdict.get("status"):
        return str(verdict["status"])
    return "inconclusive" if verdict.get("inconclusive") else "passed" if verdict.get("passed") else "failed"


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _record(row: sqlite3.Row) -> RunRecord:
    try:
        details = json.loads(row["details"] or "{}")
    except ValueError:
        details = {}
    return RunRecord(kind=row["kind"], name=row["name"], started=row["started"], status=row["status"],
                     finished=row["finished"], score=row["score"], commit=row["commit_sha"],
                     dirty=None if row["commit_dirty"] is None else bool(row["commit_dirty"]), seed=row["seed"],
                     set_id=row["set_id"], repetition=row["repetition"], run_dir=row["run_dir"],
                     source=row["source"], details=details, id=row["id"])
