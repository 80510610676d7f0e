"""Recipients from a CSV file: streamed, mapped by header, and every rejected row reported.

The file is read in chunks and decoded strictly as UTF-8 (a byte-order mark is allowed), so a
file of any size costs the same memory, and every step is bounded: a physical line, a record and
the header's width have limits, and the delimiter is chosen from at most the header and a few
lines by parsing them (linear time), never with `csv.Sniffer`, whose guess grows with the square
of a line. Row numbers are the ones a spreadsheet shows: the header
is row 1 and the first data row is row 2 (a blank line still takes a row number, a value with a
line break inside quotes does not).
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain, islice
from typing import Protocol

from sqlalchemy.orm import Session

from sendwell.campaigns.recipients import (
    RecipientIn,
    Skipped,
    add_recipients,
    added_summary,
    record_added,
    skips_by_kind,
)
from sendwell.campaigns.templates import SENDER_FIELDS, STANDARD_FIELDS
from sendwell.kit.errors import InvalidInput, NotFound
from sendwell.models import Campaign, User

CHUNK_SIZE = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
DELIMITERS = ",;\t"
SNIFF_EXTRA_LINES = 20
# Bounds on what one file can make the server hold or scan at once (docs/security.md).
MAX_LINE_CHARS = 1_000_000
MAX_RECORD_CHARS = 1_000_000
MAX_COLUMNS = 200
IGNORE = "ignore"
TARGETS = ("email", "first_name", "last_name", "company", "title", "timezone")
# Header spellings, compared without case, spaces, underscores and hyphens.
ALIASES = {
    "email": ("email", "e-mail", "email address", "work email", "mail"),
    "first_name": ("first name", "firstname", "given name"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "company": ("company", "company name", "organization", "organisation"),
    # Only spellings of the same field: a "role" or "position" column keeps its own name
    # unless the user maps it (on the import's mapping page, or with --map).
    "title": ("title", "job title"),
    "timezone": ("timezone", "time zone", "tz"),
}
# Names a custom column may not take: templates compute or reserve them.
RESERVED_FIELD_NAMES = frozenset((*STANDARD_FIELDS, *SENDER_FIELDS, IGNORE))
_NEWLINE = re.compile(r"\r\n|\n|\r")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_SPELLING_NOISE = re.compile(r"[\s_\-]+")


def _spelling(header: str) -> str:
    return _SPELLING_NOISE.sub("", header.casefold())


_AUTO = {_spelling(alias): target for target, aliases in ALIASES.items() for alias in aliases}


class Readable(Protocol):
    """A binary (or text) file object: only `read(size)` is used."""

    def read(self, size: int, /) -> bytes | str: ...


@dataclass(frozen=True)
class Column:
    position: int  # 1-based, as a spreadsheet counts columns
    header: str
    target: str  # a standard field, IGNORE, or the custom field's name
    custom: bool = False


@dataclass
class ImportReport:
    imported: int
    skipped: list[Skipped]
    columns: dict[str, str]
    rows: int = 0

    @property
    def summary(self) -> str:
        """The same sentence as the campaign's activity log."""
        return added_summary(self.imported, self.skipped)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return skips_by_kind(self.skipped)


def field_name(header: str) -> str:
    """A header as a template name: "Favourite Color" -> "favourite_color"."""
    folded = unicodedata.normalize("NFKD", header.casefold())
    ascii_only = "".join(char for char in folded if not unicodedata.combining(char))
    name = _NOT_ALNUM.sub("_", ascii_only).strip("_")
    if name and (name[0].isdigit() or name in RESERVED_FIELD_NAMES):
        name = f"field_{name}"
    return name


class _Text:
    """Decoded text from a binary or text stream, chunk by chunk, strictly UTF-8."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.bytes_read = 0
        self._newlines = 0

    def chunks(self) -> Iterator[str]:
        first = self.stream.read(CHUNK_SIZE)
        if isinstance(first, str):
            yield from self._text_chunks(first)
        else:
            yield from self._decoded_chunks(first)

    def _text_chunks(self, data: str) -> Iterator[str]:
        data = data.removeprefix("\ufeff")
        while data:
            self.bytes_read += len(data)
            yield data
            more = self.stream.read(CHUNK_SIZE)
            data = more if isinstance(more, str) else more.decode("utf-8")

    def _decoded_chunks(self, data: bytes) -> Iterator[str]:
        while 0 < len(data) < len(UTF8_BOM):
            more = self._read_bytes()
            if not more:
                break
            data += more
        bom = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
        self.bytes_read = len(data)
        data = data[bom:]
        if bom and not data:  # the first read held only the BOM: that is not the end
            data = self._read_bytes()
            self.bytes_read += len(data)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        fed = bom  # bytes of the stream handed to the decoder so far
        while True:
            final = not data
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as error:
                raise self._not_utf8(error, pending + data, fed - len(pending)) from None
            fed += len(data)
            self._newlines += text.count("\n")
            if text:
                yield text
            if final:
                return
            data = self._read_bytes()
            self.bytes_read += len(data)

    def _read_bytes(self) -> bytes:
        data = self.stream.read(CHUNK_SIZE)
        return data.encode("utf-8") if isinstance(data, str) else data

    def _not_utf8(self, error: UnicodeDecodeError, data: bytes, start: int) -> InvalidInput:
        offset = start + error.start
        line = self._newlines + data[: error.start].decode("utf-8").count("\n") + 1
        bad = data[error.start : error.start + 1].hex().upper()
        return InvalidInput(
            f"The file is not UTF-8 text: byte 0x{bad} at byte offset {offset:,} (line {line}) "
            "cannot be read. Save it as “CSV UTF-8” and import it again.",
            code="not_utf8",
        )


class _Lines:
    """Lines with their endings (CRLF, LF or CR), as `open(newline="")` gives them to csv.

    A physical line longer than `MAX_LINE_CHARS`, or one record (a quoted value may span lines)
    longer than `MAX_RECORD_CHARS`, refuses the file: nothing makes the buffers grow further.
    """

    def __init__(self, chunks: Iterator[str]) -> None:
        self._chunks = chunks
        self.line = 0
        self.record_chars = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._split():
            self.line += 1
            yield line

    def counted(self, lines: Iterator[str]) -> Iterator[str]:
        """`lines` as csv reads them, refusing a record that grows past the limit."""
        for line in lines:
            self.record_chars += len(line)
            if self.record_chars > MAX_RECORD_CHARS:
                raise InvalidInput(
                    f"By line {self.line:,}, one row is longer than {MAX_RECORD_CHARS:,} "
                    'characters. Check for a quote (") that is opened but never closed.',
                    code="record_too_long",
                )
            yield line

    def _split(self) -> Iterator[str]:
        rest = ""
        for chunk in self._chunks:
            buffer = rest + chunk
            start = 0
            for match in _NEWLINE.finditer(buffer):
                if match.end() == len(buffer) and match.group() == "\r":
                    break  # maybe the first half of a CRLF split across chunks
                yield buffer[start : match.end()]
                start = match.end()
            rest = buffer[start:]
            if len(rest) > MAX_LINE_CHARS:
                raise InvalidInput(
                    f"Line {self.line + 1:,} is longer than {MAX_LINE_CHARS:,} characters; "
                    "a CSV file of recipients has one recipient per line.",
                    code="line_too_long",
                )
        if rest:
            yield rest


def _delimiter(sample: list[str]) -> str:
    """The header line's delimiter, from the header and at most a few lines after it.

    No candidate in the header means one column (a comma file); one candidate is the
    delimiter. When the header holds more than one (a comma inside a column name of a
    semicolon file, say), each is tried on the sample: the one that splits it most
    consistently wins, then the one giving more columns, then the order of `DELIMITERS`.
    """
    candidates = [d for d in DELIMITERS if d in sample[0]]
    if not candidates:
        return ","
    if len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda d: _fit(sample, d))


def _fit(sample: list[str], delimiter: str) -> tuple[float, int]:
    """(share of the sample's rows as wide as its header, header width)."""
    try:
        widths = [
            len(record)
            for record in csv.reader(sample, delimiter=delimiter, skipinitialspace=True)
            if any(value.strip() for value in record)
        ]
    except csv.Error:
        return (0.0, 0)
    if not widths:
        return (0.0, 0)
    return (sum(width == widths[0] for width in widths) / len(widths), widths[0])


class CsvImport:
    """A parsed header and a stream of rows: iterate for `(row number, RecipientIn)` pairs.

    Rows rejected while parsing land in `rejected` as iteration passes them.
    """

    def __init__(
        self,
        text: _Text,
        records: Iterator[list[str]],
        header_row: int,
        columns: list[Column],
        delimiter: str,
        lines: _Lines,
    ) -> None:
        self._text = text
        self._lines = lines
        self._records = records
        self.header_row = header_row
        self.columns = columns
        self.delimiter = delimiter
        self.rejected: list[Skipped] = []
        self.rows = 0
        self._started = False

    @property
    def mapping(self) -> dict[str, str]:
        """Each column's header (or "(column N)" when blank) and where its values go."""
        return {
            column.header or f"(column {column.position})": column.target for column in self.columns
        }

    @property
    def custom_fields(self) -> list[str]:
        return [column.target for column in self.columns if column.custom]

    @property
    def bytes_read(self) -> int:
        return self._text.bytes_read

    def samples(self, rows: int) -> list[str]:
        """Each column's first value within the next `rows` data rows ("" when none)."""
        found = [""] * len(self.columns)
        try:
            for record in islice(self._records, rows):
                self._lines.record_chars = 0
                for index, value in enumerate(record[: len(found)]):
                    if not found[index] and value.strip():
                        found[index] = value.strip()[:200]
        except csv.Error:
            pass  # the import itself names the row
        return found

    def __iter__(self) -> Iterator[tuple[int, RecipientIn]]:
        if self._started:
            raise RuntimeError("A CSV import can be read only once.")
        self._started = True
        return self._rows()

    def _rows(self) -> Iterator[tuple[int, RecipientIn]]:
        width = len(self.columns)
        email_at = next(c.position - 1 for c in self.columns if c.target == "email")
        at = {c.target: c.position - 1 for c in self.columns if c.target in TARGETS}
        first, last = at.get("first_name", width), at.get("last_name", width)
        company, title = at.get("company", width), at.get("title", width)
        zone = at.get("timezone", width)
        custom = [(c.position - 1, c.target) for c in self.columns if c.custom]
        row = self.header_row
        try:
            for record in self._records:
                self._lines.record_chars = 0
                row += 1
                if len(record) > max(width, MAX_COLUMNS):
                    # Far wider than any header may be: refused without looking at each value.
                    self.rows += 1
                    self.rejected.append(
                        Skipped(
                            row,
                            "",
                            f"the row has {len(record):,} values, more than {MAX_COLUMNS} columns",
                        )
                    )
                    continue
                values = [value.strip() for value in record]
                if not any(values):
                    continue
                self.rows += 1
                email = values[email_at] if email_at < len(values) else ""
                if len(values) > width and any(values[width:]):
                    self.rejected.append(
                        Skipped(
                            row,
                            email if "@" in email else "",
                            f"the row has {len(values)} values but the header has {width} "
                            f"columns (is there an unquoted “{self._shown_delimiter}” in a "
                            "value?)",
                        )
                    )
                    continue
                if not email:
                    self.rejected.append(Skipped(row, "", "no email address"))
                    continue
                values.extend([""] * (width + 1 - len(values)))  # short rows; [width] is ""
                yield (
                    row,
                    RecipientIn(
                        email=email,
                        first_name=values[first],
                        last_name=values[last],
                        company=values[company],
                        title=values[title],
                        timezone=values[zone],
                        fields={
                            name: values[i].replace("\r\n", "\n") for i, name in custom if values[i]
                        },
                    ),
                )
        except csv.Error as error:
            raise InvalidInput(
                f"The file cannot be read as CSV at row {row + 1}: {error}. "
                'Check for a quote (") that is opened but never closed.',
                code="invalid_csv",
            ) from None

    @property
    def _shown_delimiter(self) -> str:
        return {"\t": "tab", ",": ",", ";": ";"}[self.delimiter]


def read_csv(
    stream: Readable, mapping: dict[str, str] | None = None, *, require_email: bool = True
) -> CsvImport:
    """Read the header row now and the data rows as they are iterated.

    `require_email=False` reads a header without an email column (the mapping page, where the
    user picks one); its rows cannot be iterated.
    """
    text = _Text(stream)
    split = _Lines(text.chunks())
    lines = iter(split)
    blank = 0
    header_line = ""
    for line in lines:
        if line.strip():
            header_line = line
            break
        blank += 1
    if not header_line:
        raise InvalidInput(
            "The file is empty: it needs a header row naming the columns, such as "
            "“email,first_name,last_name”.",
            code="no_header",
        )
    sample = [header_line]
    if sum(d in header_line for d in DELIMITERS) > 1:
        # More than one candidate: let the first data lines show which one is consistent.
        for line in lines:
            sample.append(line)
            if len(sample) > SNIFF_EXTRA_LINES:
                break
    delimiter = _delimiter(sample)
    records = csv.reader(
        split.counted(chain(sample, lines)),
        delimiter=delimiter,
        quotechar='"',
        doublequote=True,
        skipinitialspace=True,
        strict=False,
    )
    row = blank
    header: list[str] = []
    try:
        for record in records:
            split.record_chars = 0
            row += 1
            header = [value.strip() for value in record]
            if any(header):
                break
    except csv.Error as error:
        raise InvalidInput(
            f"The header row cannot be read as CSV: {error}.", code="invalid_csv"
        ) from None
    if not any(header):
        raise InvalidInput(
            "The file has no header row: it needs one naming the columns, such as "
            "“email,first_name,last_name”.",
            code="no_header",
        )
    if len(header) > MAX_COLUMNS:
        raise InvalidInput(
            f"The header row has {len(header):,} columns; Sendwell imports at most "
            f"{MAX_COLUMNS} columns. Remove the columns you do not need.",
            code="too_many_columns",
        )
    columns = _map_columns(header, mapping or {}, require_email)
    return CsvImport(text, records, row, columns, delimiter, split)


def _map_columns(
    header: list[str], mapping: dict[str, str], require_email: bool = True
) -> list[Column]:
    _refuse_duplicate_headers(header)
    explicit = _explicit_targets(header, mapping)
    claimed = {target for target in explicit.values() if target in TARGETS}
    columns: list[Column] = []
    for index, name in enumerate(header):
        position = index + 1
        if index in explicit:
            target = explicit[index]
            custom = target not in (*TARGETS, IGNORE)
        elif not name:
            target, custom = IGNORE, False
        elif (auto := _AUTO.get(_spelling(name))) and auto not in claimed:
            target, custom = auto, False
        else:
            target, custom = field_name(name) or f"column_{position}", True
        columns.append(Column(position, name, target, custom))
    _refuse_shared_targets(columns)
    if require_email and not any(column.target == "email" for column in columns):
        found = ", ".join(f"“{name}”" for name in header if name) or "none with a name"
        if any("@" in name for name in header):
            raise InvalidInput(
                "The first row looks like data, not a header row: add a first row naming the "
                "columns, such as “email,first_name,last_name”.",
                code="no_header",
            )
        raise InvalidInput(
            f"No column holds the email address. Columns found: {found}. Name the column "
            "“email”, or map one of them to email.",
            code="no_email_column",
        )
    return columns


def _refuse_duplicate_headers(header: list[str]) -> None:
    first_at: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        key = name.casefold()
        if key in first_at:
            raise InvalidInput(
                f"The header names “{name}” twice (columns {first_at[key] + 1} and "
                f"{index + 1}); give each column its own name.",
                code="duplicate_header",
            )
        first_at[key] = index


def _explicit_targets(header: list[str], mapping: dict[str, str]) -> dict[int, str]:
    """Column index -> target for each `{csv header: target}` entry."""
    exact = {name: index for index, name in enumerate(header) if name}
    loose = {_spelling(name): index for index, name in enumerate(header) if name}
    chosen: dict[int, str] = {}
    for wanted, raw_target in mapping.items():
        index = exact.get(wanted.strip())
        if index is None:
            index = loose.get(_spelling(wanted))
        if index is None:
            found = ", ".join(f"“{name}”" for name in header if name)
            raise InvalidInput(
                f"The mapping names a column the file does not have: “{wanted.strip()}”. "
                f"Columns found: {found}.",
                code="unknown_column",
            )
        chosen[index] = _target(raw_target)
    return chosen


def _target(raw: str) -> str:
    cleaned = raw.strip().casefold()
    if cleaned in (*TARGETS, IGNORE):
        return cleaned
    if (auto := _AUTO.get(_spelling(cleaned))) is not None:
        return auto
    name = _NOT_ALNUM.sub("_", cleaned).strip("_")
    if not name or name[0].isdigit():
        raise InvalidInput(
            f"“{raw.strip()}” cannot be a field name: use letters, digits and underscores, "
            "starting with a letter.",
            code="invalid_mapping",
        )
    if name in RESERVED_FIELD_NAMES:
        raise InvalidInput(
            f"“{name}” is a name templates already use; map the column to another name.",
            code="invalid_mapping",
        )
    return name


def _refuse_shared_targets(columns: list[Column]) -> None:
    owner: dict[str, Column] = {}
    for column in columns:
        if column.target == IGNORE:
            continue
        if column.target in owner:
            other = owner[column.target]
            what = f"the custom field {column.target}" if column.custom else column.target
            raise InvalidInput(
                f"The columns “{other.header}” and “{column.header}” would both be imported "
                f"as {what}; map one of them to another field or to {IGNORE}.",
                code="duplicate_column",
            )
        owner[column.target] = column


class _RowNumbers:
    """Which file row the n-th recipient came from, stored only where the numbering jumps."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._offsets: list[int] = []

    def note(self, index: int, row: int) -> None:
        if not self._offsets or self._offsets[-1] != row - index:
            self._starts.append(index)
            self._offsets.append(row - index)

    def row_of(self, index: int) -> int:
        return index + self._offsets[bisect_right(self._starts, index) - 1]


def import_csv(
    db: Session,
    user: User,
    campaign_id: int,
    stream: Readable,
    *,
    mapping: dict[str, str] | None = None,
    allow_test_domains: bool = False,
    skip_previous: frozenset[str] = frozenset(),
) -> ImportReport:
    """Add a CSV file's recipients to a campaign; run it in one unit of work.

    A problem with the file as a whole (no email column, not UTF-8, broken quoting) raises
    `InvalidInput`, possibly after some rows were added to the session: the caller's unit of
    work then rolls everything back. Problems with single rows are reported, not raised.
    """
    parsed = read_csv(stream, mapping)
    numbers = _RowNumbers()

    def recipients() -> Iterator[RecipientIn]:
        for index, (row, recipient) in enumerate(parsed):
            numbers.note(index, row)
            yield recipient

    added = add_recipients(
        db,
        user,
        campaign_id,
        recipients(),
        allow_test_domains=allow_test_domains,
        first_row=0,
        record=False,
        skip_previous=skip_previous,
    )
    skipped = [replace(item, row=numbers.row_of(item.row)) for item in added.skipped]
    skipped.extend(parsed.rejected)
    skipped.sort(key=lambda item: item.row)
    # Written once every skip is known (rows refused while parsing too): the same numbers
    # as the summary the user is shown.
    record_added(db, user, campaign_id, added.added, skipped)
    return ImportReport(
        imported=added.added, skipped=skipped, columns=parsed.mapping, rows=parsed.rows
    )


def campaign_owner(db: Session, campaign_id: int) -> User:
    """Whom an operator's command acts as: the campaign's owner."""
    campaign = db.get(Campaign, campaign_id)
    owner = db.get(User, campaign.owner_id) if campaign is not None else None
    if owner is None:
        raise NotFound(f"There is no campaign with id {campaign_id}.", code="unknown_campaign")
    return owner


__all__ = [
    "Column",
    "CsvImport",
    "ImportReport",
    "Skipped",
    "campaign_owner",
    "field_name",
    "import_csv",
    "read_csv",
]
