"""The campaign editor's form: what the user typed, kept as typed, turned into service input."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Form

from sendwell.campaigns.guards import DEFAULT_HOLD_DAYS, Guards, check_guards, percent_text
from sendwell.campaigns.schedule import DAYS, Schedule, parse_schedule
from sendwell.campaigns.service import CatchUpDefault, StepIn
from sendwell.kit.errors import InvalidInput
from sendwell.models import Campaign, CatchUp

UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}
# A new campaign sends on weekdays: outreach read on a Saturday is outreach ignored.
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


@dataclass
class StepForm:
    subject: str = ""
    body: str = ""
    delay: str = "3"
    unit: str = "days"
    new_thread: bool = False


@dataclass
class CampaignForm:
    name: str = ""
    mailbox_id: str = ""
    start_delay_minutes: str = "20"
    days: list[str] = field(default_factory=list)
    start: str = ""
    end: str = ""
    timezone: str = "UTC"
    catch_up: str = CatchUp.CATCH_UP.value
    catch_up_skip_days: str = "7"
    steps: list[StepForm] = field(default_factory=lambda: [StepForm(delay="0")])
    # Empty: the workspace default for a new campaign, unchanged for an existing one.
    bounce_pause_percent: str = ""
    bounce_pause_min_sends: str = ""
    auto_reply_hold_days: str = ""

    @classmethod
    def new(cls, *, bounce_pause_percent: float, bounce_pause_min_sends: int) -> CampaignForm:
        """An empty campaign with the workspace's default guards, sending on weekdays. Its time
        zone is UTC here; the editor's script puts the browser's in the field."""
        return cls(
            days=list(WEEKDAYS),
            bounce_pause_percent=percent_text(bounce_pause_percent),
            bounce_pause_min_sends=str(bounce_pause_min_sends),
            auto_reply_hold_days=str(DEFAULT_HOLD_DAYS),
        )

    @classmethod
    def from_campaign(cls, campaign: Campaign) -> CampaignForm:
        return cls(
            name=campaign.name,
            mailbox_id=str(campaign.mailbox_id),
            start_delay_minutes=str(campaign.start_delay_minutes),
            # No days stored means every day (a campaign made by the API): all seven ticked.
            days=[d for d in campaign.schedule_days.split(",") if d] or list(DAYS),
            start=campaign.schedule_start or "",
            end=campaign.schedule_end or "",
            timezone=campaign.timezone,
            catch_up=campaign.catch_up.value,
            catch_up_skip_days=str(campaign.catch_up_skip_days),
            steps=[
                StepForm(s.subject, s.body, *_as_delay(s.delay_minutes), s.new_thread)
                for s in campaign.steps
            ]
            or [StepForm(delay="0")],
            bounce_pause_percent=percent_text(campaign.bounce_pause_percent),
            bounce_pause_min_sends=str(campaign.bounce_pause_min_sends),
            auto_reply_hold_days=str(campaign.auto_reply_hold_days),
        )

    @classmethod
    def from_post(
        cls,
        *,
        name: str,
        mailbox_id: str,
        start_delay_minutes: str,
        days: list[str],
        start: str,
        end: str,
        timezone: str,
        subjects: list[str],
        catch_up: str = CatchUp.CATCH_UP.value,
        catch_up_skip_days: str = "7",
        bodies: list[str],
        delays: list[str],
        units: list[str],
        new_threads: list[str],
        bounce_pause_percent: str = "",
        bounce_pause_min_sends: str = "",
        auto_reply_hold_days: str = "",
    ) -> CampaignForm:
        count = max(len(subjects), len(bodies))
        steps = [
            StepForm(
                subject=_at(subjects, i),
                body=_at(bodies, i),
                delay=_at(delays, i, "0"),
                unit=_at(units, i, "days"),
                new_thread=str(i + 1) in new_threads,
            )
            for i in range(count)
        ]
        return cls(
            name=name,
            mailbox_id=mailbox_id,
            start_delay_minutes=start_delay_minutes,
            days=days,
            start=start,
            end=end,
            timezone=timezone or "UTC",
            catch_up=catch_up,
            catch_up_skip_days=catch_up_skip_days,
            steps=steps or [StepForm(delay="0")],
            bounce_pause_percent=bounce_pause_percent,
            bounce_pause_min_sends=bounce_pause_min_sends,
            auto_reply_hold_days=auto_reply_hold_days,
        )

    @classmethod
    def from_post_form(
        cls,
        name: str = Form(""),
        mailbox_id: str = Form(""),
        start_delay_minutes: str = Form("20"),
        days: list[str] = Form(default_factory=list),
        start: str = Form(""),
        end: str = Form(""),
        timezone: str = Form("UTC"),
        step_subject: list[str] = Form(default_factory=list),
        step_body: list[str] = Form(default_factory=list),
        step_delay: list[str] = Form(default_factory=list),
        step_unit: list[str] = Form(default_factory=list),
        step_new_thread: list[str] = Form(default_factory=list),
        catch_up: str = Form(CatchUp.CATCH_UP.value),
        catch_up_skip_days: str = Form("7"),
        bounce_pause_percent: str = Form(""),
        bounce_pause_min_sends: str = Form(""),
        auto_reply_hold_days: str = Form(""),
    ) -> CampaignForm:
        """The editor's posted fields (a FastAPI dependency)."""
        return cls.from_post(
            name=name,
            mailbox_id=mailbox_id,
            start_delay_minutes=start_delay_minutes,
            days=days,
            start=start,
            end=end,
            timezone=timezone,
            subjects=step_subject,
            bodies=step_body,
            delays=step_delay,
            units=step_unit,
            new_threads=step_new_thread,
            catch_up=catch_up,
            catch_up_skip_days=catch_up_skip_days,
            bounce_pause_percent=bounce_pause_percent,
            bounce_pause_min_sends=bounce_pause_min_sends,
            auto_reply_hold_days=auto_reply_hold_days,
        )

    def add_step(self) -> None:
        self.steps.append(StepForm())

    def remove_step(self, position: int) -> None:
        if 1 < position <= len(self.steps):
            del self.steps[position - 1]

    def mailbox(self) -> int:
        try:
            return int(self.mailbox_id)
        except ValueError:
            raise InvalidInput(
                "Choose the email account to send from.", code="unknown_mailbox"
            ) from None

    def start_delay(self) -> int:
        return _whole(self.start_delay_minutes, "The start delay")

    def after_pause(self) -> CatchUpDefault:
        try:
            mode = CatchUp(self.catch_up)
        except ValueError:
            raise InvalidInput(
                "Choose what Resume does with steps that fell due during a pause.",
                code="invalid_catch_up",
            ) from None
        return CatchUpDefault(mode, _whole(self.catch_up_skip_days, "Skip days"))

    def schedule(self) -> Schedule:
        """The schedule ticked; no day ticked is a mistake, not "every day"."""
        if not [day for day in self.days if day.strip()]:
            raise InvalidInput(
                "Tick at least one day to send on (every day: tick all seven).",
                code="no_days",
            )
        return parse_schedule(self.days, self.start, self.end, self.timezone)

    def guards(self, fallback: Guards) -> Guards:
        """The guards typed, `fallback`'s where a field was left empty."""
        raw = self.bounce_pause_percent.strip().removesuffix("%").strip().replace(",", ".")
        try:
            percent = float(raw) if raw else fallback.bounce_pause_percent
        except ValueError:
            raise InvalidInput(
                "The bounce rate that pauses the campaign must be a number, such as 2 or 2.5.",
                code="not_a_number",
            ) from None
        sends, days = self.bounce_pause_min_sends.strip(), self.auto_reply_hold_days.strip()
        return check_guards(
            bounce_pause_percent=percent,
            bounce_pause_min_sends=_whole(
                sends, "The number of emails the bounce rate is measured over"
            )
            if sends
            else fallback.bounce_pause_min_sends,
            auto_reply_hold_days=_whole(days, "The days a recipient is held after an auto-reply")
            if days
            else fallback.auto_reply_hold_days,
        )

    def step_inputs(self) -> list[StepIn]:
        steps = []
        for position, step in enumerate(self.steps, 1):
            if step.unit not in UNITS:
                raise InvalidInput(
                    f"Step {position}: choose minutes, hours or days.", code="invalid_step"
                )
            delay = _whole(step.delay or "0", f"Step {position}'s delay") * UNITS[step.unit]
            steps.append(
                StepIn(
                    step.subject,
                    step.body,
                    delay if position > 1 else 0,
                    new_thread=step.new_thread,
                )
            )
        return steps


def _as_delay(minutes: int) -> tuple[str, str]:
    for unit in ("days", "hours"):
        if minutes and minutes % UNITS[unit] == 0:
            return str(minutes // UNITS[unit]), unit
    return str(minutes), "minutes"


def _at(values: list[str], index: int, default: str = "") -> str:
    return values[index] if index < len(values) else default


def _whole(raw: str, what: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number.", code="not_a_number") from None
