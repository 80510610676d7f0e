"""6. Import: a 100k-row CSV through `sendwell recipients import`, timed as a whole process.

Each run imports the same file into a new draft campaign, so every row is really inserted.
The anchor is `sendwell db current` in the same environment: starting the command, reading
the settings and checking the schema, which the import pays too.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import Engine, select

from bench import dataset
from bench.common import BenchError, Figure, Profile, Section, ratio
from bench.stack import Database, Lab, database, seed_owner
from sendwell.campaigns import service
from sendwell.db import make_session_factory, session_scope
from sendwell.models import User

GROUP = "6. Import"
TOKEN_KEY = Fernet.generate_key().decode()


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First name", "Last name", "Company"])
        for i in range(rows):
            writer.writerow(
                [f"person{i}@example.com", f"First{i}", f"Last{i}", f"Company {i % 97}"]
            )


def draft(engine: Engine, mailbox_id: int, index: int) -> int:
    with session_scope(make_session_factory(engine)) as db:
        user = db.scalars(select(User)).one()
        campaign = service.create_campaign(
            db,
            user,
            name=f"Import {index}",
            mailbox_id=mailbox_id,
            steps=[service.StepIn("Hello {{ first_name }}", "Hi {{ first_name }}.")],
        )
        return campaign.id


def timed(args: list[str], db: Database, folder: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    env |= {
        "SENDWELL_DATABASE_URL": db.url,
        "SENDWELL_SECRET_KEY": "bench-" + "s" * 40,
        "SENDWELL_TOKEN_KEYS": TOKEN_KEY,
        "SENDWELL_DATA_DIR": str(folder),
        "SENDWELL_LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "sendwell", *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"sendwell {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def run(profile: Profile, lab: Lab) -> Section:
    folder = lab.folder / "import"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "recipients.csv"
    write_csv(source, profile.import_rows)
    figures = []
    for backend, db_name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        with database(backend, folder) as db:
            seed_owner(db.engine)
            _owner, mailbox_id = dataset.mailbox_row(db.engine, "import@gmail.test")
            imports, starts = [], []
            for index in range(profile.import_repeats):
                campaign_id = draft(db.engine, mailbox_id, index)
                seconds, output = timed(
                    ["recipients", "import", str(campaign_id), str(source)], db, folder
                )
                if f"Imported {profile.import_rows} " not in output:
                    raise BenchError(f"unexpected import output: {output[-500:]}")
                imports.append(seconds)
                starts.append(timed(["db", "current"], db, folder)[0])
        startup = Figure(GROUP, "", "", starts).value
        value = Figure(GROUP, "", "", imports).value
        figures += [
            Figure(
                GROUP,
                f"{db_name}: `sendwell recipients import`, {profile.import_rows:,} rows",
                "s",
                imports,
                target="< 15 s",
                met=value < 15,
                versus=f"{ratio(value, startup):.1f}x `sendwell db current`",
                digits=2,
            ),
            Figure(
                GROUP,
                f"{db_name}: anchor `sendwell db current` (start-up and schema check)",
                "s",
                starts,
                digits=2,
            ),
        ]
    return Section(
        GROUP,
        f"A {profile.import_rows:,}-row CSV (email, first and last name, company) imported by "
        "`python -m sendwell recipients import` as a subprocess, wall-clock time including "
        "start-up; a new draft campaign per run.",
        figures,
    )
