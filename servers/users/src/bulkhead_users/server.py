"""`build_server`: bulkhead-users' tools and resource, wired to a `UserLookup`. No domain logic.

What the model is offered follows the field allow-list: a tool that could only fail is not
registered (no manager tools without manager_id, no group tools without groups), search_users
offers only the filters of visible fields, and `sort` lists only the visible sort fields.
"""

import inspect
import json
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, TypeVar

from mcp_types import CallToolResult
from pydantic import Field

from bulkhead.app import BulkheadServer
from bulkhead.errors import ResourceNotFoundError
from bulkhead.results import READ_ONLY, structured
from bulkhead.validation import Cursor, PageSize, SearchText, ShortText
from bulkhead_users.directory import Directory, UserLookup
from bulkhead_users.fields import FieldPolicy
from bulkhead_users.models import GroupInfo, GroupList, build_models
from bulkhead_users.settings import UsersSettings

__all__ = ["build_server"]

_F = TypeVar("_F", bound=Callable[..., Any])

FILTER_ARGUMENTS = {
    "department": "department",
    "title": "title",
    "location": "location",
    "group": "groups",
    "employment_type": "employment_type",
}
"""search_users' filter arguments and the field each one filters on."""

FilterText = Annotated[
    ShortText | None, Field(description="Exact value to match (case-insensitive); omit for any")
]
# Not an Identifier: a name typed here ("Ada Lovelace") should meet the not-found message that
# points to search_users, not a pattern error.
UserKey = Annotated[ShortText, Field(description="The person's id, email address or username")]


def _next(server: BulkheadServer, offset: int, size: int, total: int, scope: Any) -> str | None:
    return server.cursors.encode(offset + size, scope) if offset + size < total else None


def _published(fn: _F, *, hide: Collection[str] = (), annotations: Mapping[str, Any] | None = None) -> _F:
    """`fn` as the SDK should see it: without the `hide` parameters, some annotations replaced.

    The SDK builds a tool's input schema and argument model from `inspect.signature`, which
    honours `__signature__`: a hidden parameter is neither published nor accepted (so `fn` is
    called with its default), and `annotations` can carry types known only at start, such as a
    `Literal` of the allow-list's sort fields, which no static annotation can spell.
    """
    replaced = annotations or {}
    signature = inspect.signature(fn)
    parameters = [
        parameter.replace(annotation=replaced.get(parameter.name, parameter.annotation))
        for parameter in signature.parameters.values()
        if parameter.name not in hide
    ]
    fn.__signature__ = signature.replace(parameters=parameters)
    return fn


def _instructions(policy: FieldPolicy) -> str:
    keys = {"id": "id", "email": "email address", "username": "username"}
    known_by = " or ".join(keys[name] for name in policy.keys)
    filters = [name for name, field in FILTER_ARGUMENTS.items() if field in policy.filters]
    by_filter = f" or by {'/'.join(filters)}" if filters else ""
    lines = [
        f"Look people up in the company directory. Start with search_users to find someone by name"
        f"{by_filter}; use get_user when you already have their {known_by}."
    ]
    if policy.allows("manager_id"):
        lines.append("get_manager_chain and list_direct_reports walk the reporting lines.")
    if policy.allows("groups"):
        lines.append("list_groups and get_group_members cover groups.")
    lines.append("Lists are paginated: pass next_cursor back as cursor for more.")
    lines.append("Only the fields this server is configured to show ever appear.")
    return " ".join(lines)


def _register(server: BulkheadServer, policy: FieldPolicy, tools: list[Callable[..., Any]]) -> None:
    """Register the tools the allow-list makes possible, each offering only what it allows."""
    needs = {
        "get_manager_chain": "manager_id",
        "list_direct_reports": "manager_id",
        "list_groups": "groups",
        "get_group_members": "groups",
    }
    sort_choices: Any = Literal[policy.sorts]
    sort_type = {
        "sort": Annotated[
            sort_choices | None,
            Field(description=f"Field to order by (default {policy.default_sort})"),
        ]
    }
    offered = [name for name, field in FILTER_ARGUMENTS.items() if field in policy.filters]
    for tool in tools:
        needed = needs.get(tool.__name__)
        if needed is not None and not policy.allows(needed):
            continue
        hidden: set[str] = set()
        if tool.__name__ == "search_users":
            hidden = set(FILTER_ARGUMENTS) - set(offered)
            if offered:
                group_rule = "; `group` matches anyone in that group" if "group" in offered else ""
                tool.__doc__ = (
                    f"{inspect.cleandoc(tool.__doc__ or '')}\n\nThe filters ({', '.join(offered)}) "
                    f"must match a whole value exactly (case-insensitive){group_rule}."
                )
        server.tool(annotations=READ_ONLY)(_published(tool, hide=hidden, annotations=sort_type))


def build_server(settings: UsersSettings, directory: Directory) -> BulkheadServer:
    """The bulkhead-users MCP server over `directory`, showing only `settings.fields`."""
    policy = FieldPolicy(settings.fields)
    lookup = UserLookup(directory, policy)
    models = build_models(policy.visible)
    User, UserPage, ManagerChain, DirectReports = models.user, models.page, models.chain, models.reports  # noqa: N806 -- model classes
    server = BulkheadServer(settings, instructions=_instructions(policy), version="0.1.0")

    async def get_user(user: UserKey) -> Annotated[CallToolResult, User]:
        """Get one person by directory id, email address or username (exact match, not a search).

        Returns the person's visible fields. If you only know a name, use search_users instead.
        """
        return structured(User.model_validate(lookup.project(await lookup.get(user))))

    async def search_users(
        query: Annotated[
            SearchText | None, Field(description="Text in a name, username, email, title or department")
        ] = None,
        department: FilterText = None,
        title: FilterText = None,
        location: FilterText = None,
        group: FilterText = None,
        employment_type: FilterText = None,
        sort: str | None = None,  # published as a Literal of the visible sort fields
        page_size: PageSize = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, UserPage]:
        """Search the directory by free text and/or exact filters, one page at a time.

        `query` matches case-insensitively anywhere in the visible name, username, email, title and
        department fields (characters such as * and % are matched literally). With no arguments it
        lists everyone. Returns up to page_size people, the total number of matches, and
        next_cursor while more remain.
        """
        given = {
            "department": department,
            "title": title,
            "location": location,
            "group": group,
            "employment_type": employment_type,
        }
        built = lookup.query(query, {FILTER_ARGUMENTS[name]: value for name, value in given.items()}, sort)
        scope = ("search_users", built.text, built.filters, built.sort)
        offset = server.cursors.decode(cursor, scope)
        page = await lookup.search(built, offset, page_size)
        return structured(
            UserPage(
                users=page.items,
                total=page.total,
                next_cursor=_next(server, offset, page_size, page.total, scope),
            )
        )

    async def get_manager_chain(user: UserKey) -> Annotated[CallToolResult, ManagerChain]:
        """Get a person's chain of managers: their direct manager first, up to the top of the company.

        Use it for "who does X report to" and "who is X's skip-level". At most 50 managers are
        returned; `truncated` is true if the chain was cut (too deep or inconsistent data).
        """
        person, chain, truncated = await lookup.manager_chain(user)
        return structured(ManagerChain(user=person, managers=chain, truncated=truncated))

    async def list_direct_reports(
        user: Annotated[ShortText, Field(description="The manager's id, email address or username")],
        sort: str | None = None,  # published as a Literal of the visible sort fields
        page_size: PageSize = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, DirectReports]:
        """List the people who report directly to a manager, one page at a time.

        Returns the manager's own record, up to page_size of their direct reports in `sort` order,
        the total number of direct reports, and next_cursor while more remain. Someone nobody
        reports to gets an empty list and total 0. Only one level down: call it again on a report
        to go deeper, or use get_manager_chain to go up. It is an error if no one has that id,
        email address or username: find the person with search_users first.
        """
        manager, query = await lookup.reports_query(user, sort)
        # Bound to the person (their exact id) and the order, however either was spelt.
        scope = ("list_direct_reports", query.exact, query.sort)
        offset = server.cursors.decode(cursor, scope)
        page = await lookup.search(query, offset, page_size)
        return structured(
            DirectReports(
                manager=manager,
                reports=page.items,
                total=page.total,
                next_cursor=_next(server, offset, page_size, page.total, scope),
            )
        )

    async def list_groups(
        page_size: Annotated[int, Field(ge=1, le=200, description="How many groups to return (1-200)")] = 50,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, GroupList]:
        """List the groups in the directory with their member counts, by name, one page at a time.

        Use get_group_members for the people in a group, or search_users with `group` to combine a
        group with other filters.
        """
        offset = server.cursors.decode(cursor, ("list_groups",))
        groups, total = await lookup.groups(offset, page_size)
        return structured(
            GroupList(
                groups=[GroupInfo(name=name, members=count) for name, count in groups],
                total=total,
                next_cursor=_next(server, offset, page_size, total, ("list_groups",)),
            )
        )

    async def get_group_members(
        group: Annotated[ShortText, Field(description="A group name from list_groups (case-insensitive)")],
        sort: str | None = None,  # published as a Literal of the visible sort fields
        page_size: PageSize = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, UserPage]:
        """List the members of one group, one page at a time.

        `group` is a whole group name as list_groups shows it, in any case (not a search). Returns
        up to page_size members in `sort` order, the total number of members, and next_cursor
        while more remain. An unknown or blank group name is an error; list_groups has the names.
        To combine a group with other filters, use search_users with `group` instead.
        """
        query = lookup.group_query(group, sort)
        # Bound to the group (case-insensitively, as groups are) and the order, however spelt.
        scope = ("get_group_members", query.filters, query.sort)
        offset = server.cursors.decode(cursor, scope)
        page = await lookup.group_members(query, offset, page_size)
        return structured(
            UserPage(
                users=page.items,
                total=page.total,
                next_cursor=_next(server, offset, page_size, page.total, scope),
            )
        )

    _register(
        server,
        policy,
        [get_user, search_users, get_manager_chain, list_direct_reports, list_groups, get_group_members],
    )

    @server.resource(
        "users://{user_id}",
        name="user",
        title="A person in the directory",
        description="One person's visible fields as JSON, by directory id.",
        mime_type="application/json",
    )
    async def user_resource(user_id: str) -> str:
        record = await lookup.person(user_id)
        if record is None:
            raise ResourceNotFoundError(f"No user has the id {user_id!r}.")
        return json.dumps(record, ensure_ascii=False)

    del user_resource
    return server
