"""What the tools return.

The `User` model is built from the allow-list at start, so the published output schema names only
fields that can appear: a hidden field is not even a property name.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from bulkhead_users.fields import LIST_FIELDS

__all__ = ["GroupInfo", "GroupList", "Models", "build_models"]

_DESCRIPTIONS = {
    "id": "Stable directory id; pass it to the other tools",
    "username": "Login name",
    "email": "Work email address",
    "display_name": "Full name as people see it",
    "given_name": "Given (first) name",
    "family_name": "Family (last) name",
    "title": "Job title",
    "department": "Department",
    "location": "Office location",
    "manager_id": "Directory id of the person's manager (null at the top)",
    "groups": "Groups the person belongs to",
    "employment_type": "employee or contractor",
    "start_date": "First day at the company (YYYY-MM-DD)",
    "phone": "Phone number",
    "personal_address": "Home address",
}


class GroupInfo(BaseModel):
    """A group and how many people belong to it."""

    name: str
    members: int


class GroupList(BaseModel):
    """A page of groups."""

    groups: list[GroupInfo]
    total: int = Field(description="How many groups exist")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


@dataclass(frozen=True)
class Models:
    """The result models for one allow-list."""

    user: type[BaseModel]
    page: type[BaseModel]
    chain: type[BaseModel]
    reports: type[BaseModel]


def build_models(visible: tuple[str, ...]) -> Models:
    """Result models whose `User` has exactly the `visible` fields."""
    fields: dict[str, Any] = {}
    for name in visible:
        if name == "id":
            fields[name] = (str, Field(description=_DESCRIPTIONS[name]))
        elif name in LIST_FIELDS:
            fields[name] = (list[str], Field(default_factory=list[str], description=_DESCRIPTIONS[name]))
        else:
            fields[name] = (str | None, Field(default=None, description=_DESCRIPTIONS[name]))
    user = create_model(
        "User", __config__=ConfigDict(extra="forbid"), __doc__="A person in the directory.", **fields
    )
    page = create_model(
        "UserPage",
        __doc__="A page of people.",
        users=(list[user], ...),  # pyright: ignore[reportInvalidTypeForm] -- model built at run time
        total=(int, Field(description="How many people match in all")),
        next_cursor=(
            str | None,
            Field(description="Pass as cursor for the next page; null on the last page"),
        ),
    )
    chain = create_model(
        "ManagerChain",
        __doc__="A person and their management chain.",
        user=(user, ...),
        managers=(
            list[user],  # pyright: ignore[reportInvalidTypeForm] -- model built at run time
            Field(description="Direct manager first, then theirs, up to the top"),
        ),
        truncated=(bool, Field(description="True if the chain was cut (too deep or looping data)")),
    )
    reports = create_model(
        "DirectReports",
        __doc__="A person and a page of the people who report to them.",
        manager=(user, ...),
        reports=(list[user], ...),  # pyright: ignore[reportInvalidTypeForm] -- model built at run time
        total=(int, Field(description="How many direct reports in all")),
        next_cursor=(
            str | None,
            Field(description="Pass as cursor for the next page; null on the last page"),
        ),
    )
    return Models(user=user, page=page, chain=chain, reports=reports)
