"""The Campaigns tab's search, status filter and sort, kept in the page's address so that
pages, links and the browser's Back keep them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from sendwell.campaigns import repository as repo
from sendwell.campaigns.service import CAMPAIGNS_PAGE, CampaignsPage
from sendwell.models import CampaignStatus, User

MAX_SEARCH = 200
SHOWN = tuple(s for s in CampaignStatus if s is not CampaignStatus.ARCHIVED)
# value in the address: (words in the list, statuses it shows)
STATUS_FILTERS: dict[str, tuple[str, tuple[CampaignStatus, ...]]] = {
    "": ("All but archived", SHOWN),
    "draft": ("Draft", (CampaignStatus.DRAFT,)),
    "active": ("Active", (CampaignStatus.ACTIVE,)),
    "paused": ("Paused", (CampaignStatus.PAUSED,)),
    "completed": ("Completed", (CampaignStatus.COMPLETED,)),
    "archived": ("Archived", (CampaignStatus.ARCHIVED,)),
    "all": ("All, archived included", tuple(CampaignStatus)),
}
SORTS = {
    "created": "Newest first",
    "name": "Name (A to Z)",
    "activity": "Latest activity",
    "sent": "Most emails sent",
}


@dataclass(frozen=True)
class TabFilters:
    search: str = ""
    status: str = ""
    sort: str = "created"

    @classmethod
    def parse(cls, search: str = "", status: str = "", sort: str = "") -> TabFilters:
        """The filters from the address; a value that is not one (a hand-edited address)
        is the default."""
        return cls(
            search=" ".join(search.split())[:MAX_SEARCH],
            status=status if status in STATUS_FILTERS else "",
            sort=sort if sort in SORTS else "created",
        )

    @property
    def statuses(self) -> tuple[CampaignStatus, ...]:
        return STATUS_FILTERS[self.status][1]

    @property
    def narrowed(self) -> bool:
        """True when the list shows less than the default (a search or a status chosen)."""
        return bool(self.search or self.status)

    def query(self, page: int | None = None) -> str:
        """The address's query for these filters and page, without the defaults."""
        values = {"q": self.search, "status": self.status}
        if self.sort != "created":
            values["sort"] = self.sort
        pairs = [(k, v) for k, v in values.items() if v]
        if page is not None:
            pairs.append(("page", str(page)))
        return urlencode(pairs)


def campaigns_page(db: Session, user: User, filters: TabFilters, page: str) -> CampaignsPage:
    """One page of the user's campaigns that match; a page number that is not one gives the
    first page, one past the end the last."""
    total = repo.count_campaigns_tab(db, user, search=filters.search, statuses=filters.statuses)
    pages = max(1, -(-total // CAMPAIGNS_PAGE))
    number = min(max(int(page) if page.isascii() and page.isdigit() else 1, 1), pages)
    campaigns = repo.campaigns_tab_page(
        db,
        user,
        search=filters.search,
        statuses=filters.statuses,
        sort=filters.sort,
        offset=(number - 1) * CAMPAIGNS_PAGE,
        limit=CAMPAIGNS_PAGE,
    )
    return CampaignsPage(campaigns, number, pages, total)
