"""A CSV import never crashes, and every data row is either imported or reported with a reason.

Files are generated as a spreadsheet or a careless script would write them — quoted and
unquoted values with delimiters, quotes and line breaks inside, short and long rows, blank
lines, odd headers, invalid and duplicate addresses — and as arbitrary bytes. The import runs
against the real database in one unit of work that is rolled back after each example.
"""

from __future__ import annotations

import csv
import io
import itertools

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from sendwell.campaigns.importer import import_csv
from sendwell.db import make_session_factory
from sendwell.kit.errors import InvalidInput
from sendwell.models import User
from tests.campaigns.test_importer import make_campaign
from tests.conftest import Database

OWNERS = itertools.count()
DB_EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["a,b", 'say "hi"', "two\nlines", "semi;colon", "tab\there", " ", ""]),
    st.sampled_from(
        ["ada@example.com", "ADA@example.com ", "grace@example.com", "not-an-address", "x@y"]
    ),
    st.builds(lambda n: f"person{n}@example.com", st.integers(0, 30)),
)
headers = st.lists(
    st.one_of(
        st.sampled_from(["email", "E-mail", "First Name", "company", "Job Title", "notes", ""]),
        st.text(max_size=8),
    ),
    min_size=1,
    max_size=6,
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    header = draw(headers)
    if draw(st.integers(0, 4)):  # most files have an email column somewhere
        header.insert(draw(st.integers(0, len(header))), "email")
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rows = draw(st.lists(st.lists(values, max_size=len(header) + 2), max_size=25))
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator=draw(st.sampled_from(["\r\n", "\n"])),
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
    )
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    if draw(st.booleans()):  # a careless hand edit: cut anywhere, add anything
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=10)) + text[cut:]
    return (("\ufeff" if draw(st.booleans()) else "") + text).encode()


def _import(engine: Engine, user_id: int, campaign_id: int, data: bytes) -> None:
    session = make_session_factory(engine)()
    try:
        user = session.get(User, user_id)
        assert user is not None
        try:
            report = import_csv(
                session, user, campaign_id, io.BytesIO(data), allow_test_domains=True
            )
        except InvalidInput as error:
            event("the whole file refused")
            refusal = error.message  # a problem with the whole file, said in a sentence
            assert refusal.endswith("."), refusal
            return
        event("rows imported or reported")
        assert report.imported + len(report.skipped) == report.rows
        assert len({item.row for item in report.skipped}) == len(report.skipped)
        for item in report.skipped:
            assert item.row >= 2, item
            assert item.reason.strip(), item
    finally:
        session.rollback()
        session.close()


@DB_EXAMPLES
@given(data=csv_files())
def test_generated_csv_files_are_imported_or_reported(
    database: Database, engine: Engine, data: bytes
) -> None:
    with make_session_factory(engine)() as db:
        setup = make_campaign(db, owner_email=f"owner-{next(OWNERS)}@example.com")
    _import(engine, setup.user_id, setup.campaign_id, data)


@DB_EXAMPLES
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_arbitrary_bytes_never_crash_the_import(
    database: Database, engine: Engine, data: bytes
) -> None:
    with make_session_factory(engine)() as db:
        setup = make_campaign(db, owner_email=f"owner-{next(OWNERS)}@example.com")
    _import(engine, setup.user_id, setup.campaign_id, b"email,name\n" + data)
