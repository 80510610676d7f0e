"""Importing recipients from CSV files as people really export them, on both backends."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from sendwell.campaigns import recipients as recipients_module
from sendwell.campaigns import service, validation
from sendwell.campaigns.importer import (
    MAX_COLUMNS,
    MAX_LINE_CHARS,
    MAX_RECORD_CHARS,
    SNIFF_EXTRA_LINES,
    ImportReport,
    field_name,
    import_csv,
    read_csv,
)
from sendwell.campaigns.recipients import RecipientIn, Skipped
from sendwell.campaigns.service import StepIn
from sendwell.db import make_engine, make_session_factory, session_scope
from sendwell.kit.errors import InvalidInput
from sendwell.models import (
    Campaign,
    Enrollment,
    Mailbox,
    MailboxStatus,
    Role,
    Suppression,
    SuppressionReason,
    User,
    Workspace,
)
from tests.conftest import Database
from tests.test_cli import run


@dataclass(frozen=True)
class Setup:
    user_id: int
    campaign_id: int


def make_campaign(db: Session, *, owner_email: str = "ada@example.com") -> Setup:
    """A workspace, a user, a connected mailbox and a draft campaign using a custom field."""
    if db.get(Workspace, 1) is None:
        db.add(Workspace(id=1, name="Sendwell"))
        db.flush()
    user = User(workspace_id=1, email=owner_email, name="Ada", password_hash="x", role=Role.MEMBER)
    db.add(user)
    db.flush()
    mailbox = Mailbox(
        workspace_id=1,
        owner_id=user.id,
        provider="google",
        subject=f"subject-{user.id}",
        email=owner_email,
        status=MailboxStatus.CONNECTED,
    )
    db.add(mailbox)
    db.flush()
    campaign = service.create_campaign(
        db,
        user,
        name="Spring launch",
        mailbox_id=mailbox.id,
        steps=[
            StepIn(
                subject="Hello {{ first_name | default('there') }}",
                body="We heard you like {{ favourite_color | default('colours') }}.",
            )
        ],
    )
    db.commit()
    return Setup(user.id, campaign.id)


@pytest.fixture
def setup(db: Session) -> Setup:
    return make_campaign(db)


def import_in_unit_of_work(
    engine: Engine, setup: Setup, data: bytes | io.RawIOBase, **options: object
) -> ImportReport:
    """Run an import the way the CLI does: one unit of work, rolled back if it raises."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    with session_scope(make_session_factory(engine)) as session:
        user = session.get(User, setup.user_id)
        assert user is not None
        return import_csv(session, user, setup.campaign_id, stream, **options)  # type: ignore[arg-type]


def enrollments(db: Session, campaign_id: int) -> dict[str, Enrollment]:
    db.expire_all()
    rows = db.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign_id))
    return {row.email: row for row in rows}


def count(db: Session, campaign_id: int) -> int:
    db.expire_all()
    return (
        db.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.campaign_id == campaign_id)
        )
        or 0
    )


MESSY = (
    "\ufeff"
    "E-mail ; First Name;Surname;Organisation;Job Title;Favourite Color;Notes\r\n"
    'ada@example.com;Ada;Lovelace;"Analytical; Engines Ltd";Countess;red;"met at\r\nthe expo"\r\n'
    "\r\n"
    "  GRACE@Example.com ; Grace ;Hopper;Navy;Rear Admiral;blue;\r\n"
    "grace@example.com;Grace again;;;;;\r\n"
    "not-an-address;Nobody;;;;;\r\n"
    "blocked@example.com;Blocked;;;;;\r\n"
    ";No email;;;;;\r\n"
    "\r\n"
    "alan@example.com;Alan;Turing;Bletchley;Analyst;green;too;many\r\n"
    '"linus@example.com";"Linus";"Torvalds";"Kernel, Inc";"";"";""\r\n'
    ";;;;;;\r\n"
    "  \r\n"
    "margaret@example.com;Margaret\r\n"
).encode()


def test_a_messy_real_world_file(engine: Engine, db: Session, setup: Setup) -> None:
    db.add(
        Suppression(
            workspace_id=1, email="blocked@example.com", reason=SuppressionReason.UNSUBSCRIBED
        )
    )
    db.commit()

    report = import_in_unit_of_work(engine, setup, MESSY)

    assert report.imported == 4
    assert report.skipped == [
        Skipped(5, "grace@example.com", "duplicate in this list"),
        Skipped(
            6,
            "not-an-address",
            "invalid address: An email address must have an @-sign.",
        ),
        Skipped(7, "blocked@example.com", "on the suppression list (unsubscribed)"),
        Skipped(8, "", "no email address"),
        Skipped(
            10,
            "alan@example.com",
            "the row has 8 values but the header has 7 columns "
            "(is there an unquoted “;” in a value?)",
        ),
    ]
    assert report.rows == 9
    assert report.columns == {
        "E-mail": "email",
        "First Name": "first_name",
        "Surname": "last_name",
        "Organisation": "company",
        "Job Title": "title",
        "Favourite Color": "favourite_color",
        "Notes": "notes",
    }
    people = enrollments(db, setup.campaign_id)
    assert set(people) == {
        "ada@example.com",
        "grace@example.com",
        "linus@example.com",
        "margaret@example.com",
    }
    ada = people["ada@example.com"]
    assert (ada.first_name, ada.last_name, ada.company, ada.title) == (
        "Ada",
        "Lovelace",
        "Analytical; Engines Ltd",
        "Countess",
    )
    assert ada.fields == {"favourite_color": "red", "notes": "met at\nthe expo"}
    grace = people["grace@example.com"]
    assert (grace.first_name, grace.company, grace.fields) == (
        "Grace",
        "Navy",
        {"favourite_color": "blue"},
    )
    assert people["linus@example.com"].company == "Kernel, Inc"
    assert people["margaret@example.com"].fields == {}

    # The extra column is a merge field: the campaign validates and renders it.
    campaign = service.get_campaign(db, db.get_one(User, setup.user_id), setup.campaign_id)
    assert validation.validate(db, campaign) == ([], 0)
    rendered, _ = validation.preview(db, campaign, 1, ada.id)
    assert rendered.subject == "Hello Ada"
    assert rendered.body == "We heard you like red."


def test_a_file_without_an_email_column_imports_nothing(
    engine: Engine, db: Session, setup: Setup
) -> None:
    data = b"Name,Company,Phone\nAda,Engines,123\n"
    with pytest.raises(InvalidInput) as caught:
        import_in_unit_of_work(engine, setup, data)
    assert caught.value.message == (
        "No column holds the email address. Columns found: “Name”, “Company”, “Phone”. "
        "Name the column “email”, or map one of them to email."
    )
    assert count(db, setup.campaign_id) == 0


def test_a_file_that_is_not_utf8_imports_nothing(engine: Engine, db: Session, setup: Setup) -> None:
    # Enough good rows that whole batches are written before the bad byte is reached.
    good = b"".join(b"person%05d@example.com,Person\r\n" % i for i in range(5000))
    data = b"email,first_name\r\n" + good + "josé@example.com,José\r\n".encode("latin-1")
    with pytest.raises(InvalidInput) as caught:
        import_in_unit_of_work(engine, setup, data)
    offset = len(b"email,first_name\r\n" + good + b"jos")
    assert caught.value.message == (
        f"The file is not UTF-8 text: byte 0xE9 at byte offset {offset:,} (line 5002) cannot "
        "be read. Save it as “CSV UTF-8” and import it again."
    )
    assert count(db, setup.campaign_id) == 0


def test_an_explicit_mapping_overrides_the_guesses(
    engine: Engine, db: Session, setup: Setup
) -> None:
    data = (
        b"Email,Work Email,Vorname,Firma,Internal id,Hobby\n"
        b"ada@home.example,ada@work.example,Ada,Engines,17,chess\n"
    )
    report = import_in_unit_of_work(
        engine,
        setup,
        data,
        mapping={
            "work email": "email",  # matched like the automatic spellings
            "Vorname": "first_name",
            "Firma": "Company",
            "Internal id": "ignore",
            "Hobby": "Favourite Color",
        },
    )
    assert report.imported == 1
    assert report.columns == {
        "Email": "field_email",  # its place was taken explicitly; the value is kept
        "Work Email": "email",
        "Vorname": "first_name",
        "Firma": "company",
        "Internal id": "ignore",
        "Hobby": "favourite_color",
    }
    ada = enrollments(db, setup.campaign_id)["ada@work.example"]
    assert (ada.first_name, ada.company) == ("Ada", "Engines")
    assert ada.fields == {"field_email": "ada@home.example", "favourite_color": "chess"}


@pytest.mark.parametrize(
    ("data", "mapping", "message"),
    [
        (b"", None, "The file is empty"),
        (b"\r\n\r\n  \r\n", None, "The file is empty"),
        (b"ada@example.com,Ada\n", None, "The first row looks like data, not a header row"),
        (
            b"email,Phone,phone\n",
            None,
            "The header names “phone” twice (columns 2 and 3); give each column its own name.",
        ),
        (
            b"Email,E-mail\n",
            None,
            "The columns “Email” and “E-mail” would both be imported as email; map one of "
            "them to another field or to ignore.",
        ),
        (
            b"email,Favourite Color,favourite-color\n",
            None,
            "would both be imported as the custom field favourite_color",
        ),
        (
            b"email,name\n",
            {"Nmae": "first_name"},
            "The mapping names a column the file does not have: “Nmae”. "
            "Columns found: “email”, “name”.",
        ),
        (b"email,name\n", {"name": "full_name"}, "“full_name” is a name templates already use"),
        (b"email,name\n", {"name": "2nd"}, "“2nd” cannot be a field name"),
    ],
)
def test_problems_with_the_whole_file_are_clear(
    data: bytes, mapping: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_csv(io.BytesIO(data), mapping)
    assert message in caught.value.message


def test_delimiters_line_endings_and_text_streams() -> None:
    tabbed = read_csv(io.BytesIO(b"Email\tGiven Name\tCompany Name\rada@x.example\tAda\tA, B\r"))
    assert tabbed.delimiter == "\t"
    assert list(tabbed) == [
        (2, RecipientIn(email="ada@x.example", first_name="Ada", company="A, B"))
    ]
    # A comma inside a header name does not fool the delimiter detection.
    semi = read_csv(io.StringIO("\ufeffmail;Family Name;Remarks, if any\nb@x.example;B;c, d\n"))
    assert semi.delimiter == ";"
    assert list(semi) == [
        (2, RecipientIn(email="b@x.example", last_name="B", fields={"remarks_if_any": "c, d"}))
    ]
    single = read_csv(io.BytesIO(b"\n\nEMAIL\n\nc@x.example\n"))
    assert single.header_row == 3
    assert list(single) == [(5, RecipientIn(email="c@x.example"))]


def test_a_bom_split_from_the_rest_of_the_file_is_still_a_bom() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            piece, self.data = self.data[:1], self.data[1:]
            return piece

    parsed = read_csv(Trickle("\ufeffemail,name\nd@x.example,Zoë\n".encode()))
    assert parsed.mapping == {"email": "email", "name": "name"}
    assert list(parsed) == [(2, RecipientIn(email="d@x.example", fields={"name": "Zoë"}))]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Favourite Color", "favourite_color"),
        ("  Phone #", "phone"),
        ("Prénom d'usage", "prenom_d_usage"),
        ("2nd Address", "field_2nd_address"),
        ("Full Name", "field_full_name"),
        ("Signature", "field_signature"),
    ],
)
def test_custom_field_names(header: str, name: str) -> None:
    assert field_name(header) == name


class GeneratedCsv(io.RawIOBase):
    """A file object whose contents a generator writes as it is read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._rest:
            self._rest = next(self._chunks, b"")
            if not self._rest:
                return 0
            self.size += len(self._rest)
        taken = self._rest[: len(buffer)]
        buffer[: len(taken)] = taken
        self._rest = self._rest[len(taken) :]
        return len(taken)


GOOD_ROWS = 100_000


def big_file(expected: list[Skipped]) -> Iterator[bytes]:
    """100,000 good rows and 100 bad ones scattered among them (five kinds, 20 of each)."""
    yield b"Email,First Name,Last Name,Company,Title,Plan,Signup Date\r\n"
    row, good, lines = 1, 0, []
    while good < GOOD_ROWS:
        row += 1
        kind = (row % 1000 == 517) * (1 + (row // 1000) % 5)
        if kind == 1:
            lines.append(f"broken{row}.example.com,Bad,Row,Co,T,free,2024-01-01")
            expected.append(
                Skipped(
                    row,
                    f"broken{row}.example.com",
                    "invalid address: An email address must have an @-sign.",
                )
            )
        elif kind == 2:
            lines.append(f"USER{good - 7:06d}@Example.COM,Dup,Row,Co,T,free,2024-01-01")
            expected.append(
                Skipped(row, f"user{good - 7:06d}@example.com", "duplicate in this list")
            )
        elif kind == 3:
            lines.append(f"blocked{row}@example.com,Blocked,Row,Co,T,free,2024-01-01")
            expected.append(
                Skipped(row, f"blocked{row}@example.com", "on the suppression list (bounced)")
            )
        elif kind == 4:
            lines.append(",No,Email,Co,T,free,2024-01-01")
            expected.append(Skipped(row, "", "no email address"))
        elif kind == 5:
            lines.append(f"extra{row}@example.com,Too,Many,Co,T,free,2024-01-01,surplus")
            expected.append(
                Skipped(
                    row,
                    f"extra{row}@example.com",
                    "the row has 8 values but the header has 7 columns "
                    "(is there an unquoted “,” in a value?)",
                )
            )
        else:
            lines.append(
                f'user{good:06d}@example.com,First{good},Last{good},"Company {good % 97}, Inc",'
                f"Role {good % 13},{('free', 'pro', 'team')[good % 3]},2024-02-{good % 28 + 1:02d}"
            )
            good += 1
        if len(lines) == 500:
            yield ("\r\n".join(lines) + "\r\n").encode()
            lines = []
    if lines:
        yield ("\r\n".join(lines) + "\r\n").encode()


def test_a_hundred_thousand_rows(
    engine: Engine, db: Session, setup: Setup, database: Database
) -> None:
    expected: list[Skipped] = []
    source = GeneratedCsv(big_file(expected))
    # The suppressed addresses are known in advance: rows 2517, 7517, 12517, ...
    blocked = [f"blocked{row}@example.com" for row in range(2517, 110_000, 5000)]
    db.add_all(
        Suppression(workspace_id=1, email=address, reason=SuppressionReason.BOUNCED)
        for address in blocked
    )
    db.commit()

    report = import_in_unit_of_work(engine, setup, io.BufferedReader(source))  # type: ignore[arg-type]

    assert len(expected) == 100
    assert {item.reason for item in expected} >= {"no email address", "duplicate in this list"}
    assert report.imported == GOOD_ROWS
    assert report.skipped == expected
    assert report.rows == GOOD_ROWS + 100
    assert count(db, setup.campaign_id) == GOOD_ROWS
    n = 54_321
    sample = db.scalars(
        select(Enrollment).where(Enrollment.email == f"user{n:06d}@example.com")
    ).one()
    assert (sample.first_name, sample.last_name, sample.company, sample.title) == (
        f"First{n}",
        f"Last{n}",
        f"Company {n % 97}, Inc",
        f"Role {n % 13}",
    )
    assert sample.fields == {"plan": "free", "signup_date": f"2024-02-{n % 28 + 1:02d}"}


# The command, run as an operator would, in a fresh folder.


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    result = run(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return tmp_path


@pytest.fixture
def folder_campaign(folder: Path) -> Setup:
    engine = make_engine(f"sqlite:///{folder / 'var' / 'sendwell.db'}")
    try:
        with session_scope(make_session_factory(engine)) as session:
            admin = User(
                workspace_id=1, email="admin@example.com", password_hash="x", role=Role.ADMIN
            )
            session.add(Workspace(id=1, name="Sendwell"))
            session.flush()
            session.add(admin)
            created = make_campaign(session, owner_email="member@example.com")
    finally:
        engine.dispose()
    return created


def folder_enrollments(folder: Path, campaign_id: int) -> list[str]:
    engine = make_engine(f"sqlite:///{folder / 'var' / 'sendwell.db'}")
    try:
        with session_scope(make_session_factory(engine)) as session:
            return sorted(
                session.scalars(
                    select(Enrollment.email).where(Enrollment.campaign_id == campaign_id)
                )
            )
    finally:
        engine.dispose()


def test_cli_imports_with_progress_and_lists_skipped_rows(
    folder: Path, folder_campaign: Setup
) -> None:
    rows = ["Email;Name;Colour"] + [f"person{i}@example.com;P{i};red" for i in range(30)]
    rows += [f"bad-{i};X;blue" for i in range(23)] + ["person1@example.com;again;"]
    (folder / "people.csv").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8-sig")

    result = run(
        folder,
        "recipients",
        "import",
        str(folder_campaign.campaign_id),
        "people.csv",
        "--map",
        "Name=first_name",
    )

    assert result.returncode == 0, result.stderr
    assert "Importing people.csv" in result.stderr
    assert "kB" in result.stderr
    assert "Columns: Email → email, Name → first_name, Colour → {{ colour }}." in result.stdout
    assert "Imported 30 recipients; skipped 24." in result.stdout
    assert "Skipped: 23 invalid address, 1 duplicate in this list." in result.stdout
    assert "bad-0" in result.stdout
    assert "bad-19" in result.stdout  # row 51: the 20th skipped row
    assert "bad-20" not in result.stdout
    assert "Showing the first 20. All 24 skipped rows are listed in people.skipped.csv." in (
        result.stdout.replace("\n", " ")
    )
    with (folder / "people.skipped.csv").open(encoding="utf-8-sig", newline="") as listing:
        skipped = list(csv.reader(listing))
    assert skipped[0] == ["row", "email", "reason"]
    assert len(skipped) == 25
    assert skipped[1] == ["32", "bad-0", "invalid address: An email address must have an @-sign."]
    assert skipped[-1] == ["55", "person1@example.com", "duplicate in this list"]
    assert len(folder_enrollments(folder, folder_campaign.campaign_id)) == 30


def test_cli_unknown_campaign_is_one_clear_line(folder: Path, folder_campaign: Setup) -> None:
    (folder / "people.csv").write_text("email\nada@example.com\n")
    result = run(folder, "recipients", "import", "999", "people.csv")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Error: There is no campaign with id 999."]
    assert not (folder / "people.skipped.csv").exists()


def test_cli_bad_file_imports_nothing(folder: Path, folder_campaign: Setup) -> None:
    good = "".join(f"p{i}@example.com,P\n" for i in range(3000))
    (folder / "people.csv").write_bytes(
        b"email,name\n" + good.encode() + b"x" * 70_000 + b"\nbad@example.com,\xff\n"
    )
    result = run(folder, "recipients", "import", str(folder_campaign.campaign_id), "people.csv")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: The file is not UTF-8 text: byte 0xFF at byte offset")
    assert folder_enrollments(folder, folder_campaign.campaign_id) == []

    missing = run(folder, "recipients", "import", str(folder_campaign.campaign_id), "nope.csv")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "Error: cannot read nope.csv: No such file or directory."


def test_campaign_owner_is_who_the_command_acts_as(db: Session, setup: Setup) -> None:
    from sendwell.campaigns.importer import campaign_owner

    assert campaign_owner(db, setup.campaign_id).id == setup.user_id
    assert db.get_one(Campaign, setup.campaign_id).owner_id == setup.user_id


# Bounded work ---------------------------------------------------------------------------------


def test_a_header_of_thousands_of_quoted_columns_is_refused_at_once() -> None:
    # csv.Sniffer needed seconds for this 48 KB line (time grows with its square) and held the
    # whole server meanwhile; the header is now parsed once and its width is bounded.
    probe = b"email" + b',"a' * 16_000 + b"\nada@x.example\n"
    with pytest.raises(InvalidInput) as caught:
        read_csv(io.BytesIO(probe))
    assert caught.value.code == "too_many_columns"
    assert f"at most {MAX_COLUMNS} columns" in caught.value.message


def test_a_line_longer_than_the_limit_is_refused_without_reading_on() -> None:
    class Endless(io.RawIOBase):
        """A stream of commas with no line break, counting what was asked of it."""

        def __init__(self) -> None:
            self.served = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.served += size
            return b"," * size

    stream = Endless()
    with pytest.raises(InvalidInput) as caught:
        read_csv(stream)
    assert caught.value.code == "line_too_long"
    assert f"longer than {MAX_LINE_CHARS:,} characters" in caught.value.message
    assert stream.served < 2 * MAX_LINE_CHARS


def test_a_record_of_many_multi_line_values_is_refused_at_the_record_limit() -> None:
    # Each value stays under csv's own field limit; together they pass the record limit.
    value = b',"' + (b"x" * 999 + b"\n") * 100 + b'"'
    data = b"email,note\nada@x.example" + value * (MAX_RECORD_CHARS // len(value) + 2) + b"\n"
    parsed = read_csv(io.BytesIO(data))
    with pytest.raises(InvalidInput) as caught:
        list(parsed)
    assert caught.value.code == "record_too_long"


def test_the_delimiter_comes_from_the_first_lines_only() -> None:
    # Only the header and SNIFF_EXTRA_LINES lines decide; a semicolon later changes nothing.
    rows = b"".join(b"r%d@x.example,R%d\n" % (n, n) for n in range(SNIFF_EXTRA_LINES + 5))
    parsed = read_csv(io.BytesIO(b"email,name;alias\n" + rows + b"z@x.example;Z\n" * 100))
    assert parsed.delimiter == ","
    read = list(parsed)
    assert read[0] == (2, RecipientIn(email="r0@x.example", fields={"name_alias": "R0"}))
    assert len(read) == SNIFF_EXTRA_LINES + 5 + 100


def test_a_campaign_holds_at_most_its_recipient_limit(
    db: Session, setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipients_module, "MAX_RECIPIENTS_PER_CAMPAIGN", 3)
    user = db.get(User, setup.user_id)
    assert user is not None
    first = import_csv(
        db, user, setup.campaign_id, io.BytesIO(b"email\na@x.example\nb@x.example\n")
    )
    assert first.imported == 2
    with pytest.raises(InvalidInput) as refused:
        import_csv(db, user, setup.campaign_id, io.BytesIO(b"email\nc@x.example\nd@x.example\n"))
    assert refused.value.code == "too_many_recipients"
    assert "at most 3 recipients; this one has room for 1 more" in refused.value.message


def test_cli_refuses_unknown_history_to_skip(folder: Path, folder_campaign: Setup) -> None:
    (folder / "people.csv").write_text("email\nann@example.com\n", encoding="utf-8")
    result = run(
        folder,
        "recipients",
        "import",
        str(folder_campaign.campaign_id),
        "people.csv",
        "--skip-previous",
        "replied,called",
    )
    assert result.returncode != 0
    assert "Unknown history to skip: called" in result.stderr
    assert folder_enrollments(folder, folder_campaign.campaign_id) == []
