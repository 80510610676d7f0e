"""Merge fields checked at Save against the recipients' columns, and grouped at Start."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from sendwell.campaigns import merge_check, service, validation
from sendwell.campaigns.merge_check import UnknownMergeField
from sendwell.campaigns.recipients import RecipientIn
from sendwell.models import Campaign, Mailbox, User
from tests.campaigns.test_service import add, make_campaign, make_mailbox, make_user


@pytest.fixture
def user(db: Session) -> User:
    return make_user(db)


@pytest.fixture
def mailbox(db: Session, user: User) -> Mailbox:
    return make_mailbox(db, user)


def save(db: Session, user: User, campaign: Campaign, *steps: service.StepIn) -> Campaign:
    return service.update_campaign(
        db,
        user,
        campaign.id,
        name=campaign.name,
        mailbox_id=campaign.mailbox_id,
        steps=list(steps),
        schedule=service.Schedule(),
        start_delay_minutes=20,
    )


def twenty(campaign: Campaign, db: Session, user: User) -> None:
    """20 recipients with a company and a custom `role`; 3 of them without a title."""
    add(
        db,
        user,
        campaign,
        *(
            RecipientIn(
                f"r{i}@example.com",
                first_name=f"R{i}",
                company="Acme",
                title="" if i < 3 else "Engineer",
                fields={"role": "Backend"},
            )
            for i in range(20)
        ),
    )


def test_a_typo_of_a_built_in_field_is_refused_with_a_suggestion_even_without_recipients(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    with pytest.raises(UnknownMergeField) as refused:
        make_campaign(db, user, mailbox, steps=[service.StepIn("Hi", "At {{ compnay }}?")])
    assert refused.value.status_code == 422
    assert str(refused.value) == (
        "{{ compnay }} (step 1 body) is not a merge field: did you mean {{ company }}?"
    )


def test_save_checks_fields_against_the_imported_columns(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    campaign = make_campaign(db, user, mailbox, steps=[service.StepIn("Hi", "Your {{ role }}")])
    twenty(campaign, db, user)
    # A typo of a custom column is suggested from the recipients' own columns.
    with pytest.raises(UnknownMergeField, match=r"did you mean \{\{ role \}\}\?"):
        save(db, user, campaign, service.StepIn("Hi", "Your {{ rol }}"))
    # A name no recipient has, and nothing like it: refused, naming the columns there are.
    with pytest.raises(UnknownMergeField) as refused:
        save(db, user, campaign, service.StepIn("Hi {{ nickname }}", "Body"))
    assert "{{ nickname }} (step 1 subject) is not a column of this campaign's recipients" in str(
        refused.value
    )
    assert "(their extra columns: role)" in str(refused.value)
    # Known fields, and an unknown one with a default, save.
    saved = save(
        db,
        user,
        campaign,
        service.StepIn("Hi {{ first_name }}", "{{ role }} at {{ company }}"),
        service.StepIn("", "{{ nickname | default('friend') }}", 60),
    )
    assert merge_check.review(db, saved.id, saved.steps).errors == []


def test_a_field_empty_for_some_recipients_is_one_warning_with_the_count(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    campaign = make_campaign(db, user, mailbox, steps=[service.StepIn("Hi", "Body")])
    twenty(campaign, db, user)
    saved = save(
        db,
        user,
        campaign,
        service.StepIn("Hi {{ first_name }}, {{ title }}", "As a {{ title }}…"),
        service.StepIn("", "Still a {{ title }}? {{ last_name | default('') }}", 60),
    )
    report = merge_check.review(db, saved.id, saved.steps)
    assert report.errors == []
    assert report.warnings == [
        "{{ title }} is empty for 3 of 20 recipients (step 1 subject, step 1 body, step 2 body): "
        'Start is refused until they have a value, or give a default: {{ title | default("…") }}.'
    ]


def test_start_lists_each_problem_once_with_the_recipients_it_concerns(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    campaign = make_campaign(db, user, mailbox, steps=[service.StepIn("Hi", "Body")])
    twenty(campaign, db, user)
    for i in range(20, 40):  # 20 more without a first name either
        add(db, user, campaign, RecipientIn(f"r{i}@example.com", title="CTO"))
    save(
        db,
        user,
        campaign,
        service.StepIn("Hi {{ first_name }}", "As a {{ title }}, {{ first_name }}…"),
    )
    db.expire_all()
    problems, total = validation.validate(db, service.get_campaign(db, user, campaign.id))
    assert total == 2
    assert [(p.message, p.recipient, p.recipients) for p in problems] == [
        (
            "{{ title }} is empty for 3 of 40 recipients (step 1 body). "
            'Give them a value, or a default: {{ title | default("…") }}.',
            "r0@example.com",
            3,
        ),
        (
            "{{ first_name }} is empty for 20 of 40 recipients (step 1 subject, step 1 body). "
            'Give them a value, or a default: {{ first_name | default("…") }}.',
            "r20@example.com",
            20,
        ),
    ]


def test_a_custom_field_without_recipients_is_only_a_warning(
    db: Session, user: User, mailbox: Mailbox
) -> None:
    campaign = make_campaign(db, user, mailbox, steps=[service.StepIn("Hi", "{{ project }}")])
    report = merge_check.review(db, campaign.id, campaign.steps)
    assert report.errors == []
    assert report.warnings == [
        "{{ project }} (step 1 body): no recipient has it yet; import a column named project "
        "before starting."
    ]
