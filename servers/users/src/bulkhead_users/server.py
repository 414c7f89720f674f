"""`build_server`: bulkhead-users' tools and resource, wired to a `UserLookup`. No domain logic."""

import json
from typing import Annotated, Any

from mcp_types import CallToolResult
from pydantic import Field

from bulkhead.app import BulkheadServer
from bulkhead.errors import ResourceNotFoundError
from bulkhead.results import READ_ONLY, structured
from bulkhead.validation import Cursor, Identifier, PageSize, SearchText, ShortText
from bulkhead_users.directory import Directory, UserLookup
from bulkhead_users.fields import FieldPolicy
from bulkhead_users.models import GroupInfo, GroupList, build_models
from bulkhead_users.settings import UsersSettings

__all__ = ["build_server"]

INSTRUCTIONS = """\
Look people up in the company directory. Start with search_users to find someone by name or
by department/title/location/group; use get_user when you already have an id, email or username.
get_manager_chain and list_direct_reports walk the reporting lines; list_groups and
get_group_members cover groups. Lists are paginated: pass next_cursor back as cursor for more.
Only the fields this server is configured to show ever appear."""

FilterText = Annotated[
    ShortText | None, Field(description="Exact value to match (case-insensitive); omit for any")
]
SortField = Annotated[
    str | None, Field(default=None, max_length=40, description="Field to order by; default display_name")
]


def _next(server: BulkheadServer, offset: int, size: int, total: int, scope: Any) -> str | None:
    return server.cursors.encode(offset + size, scope) if offset + size < total else None


def build_server(settings: UsersSettings, directory: Directory) -> BulkheadServer:
    """The bulkhead-users MCP server over `directory`, showing only `settings.fields`."""
    policy = FieldPolicy(settings.fields)
    lookup = UserLookup(directory, policy)
    models = build_models(policy.visible)
    User, UserPage, ManagerChain, DirectReports = models.user, models.page, models.chain, models.reports  # noqa: N806 -- model classes
    server = BulkheadServer(settings, instructions=INSTRUCTIONS, version="0.1.0")

    @server.tool(annotations=READ_ONLY)
    async def get_user(
        user: Annotated[Identifier, Field(description="The person's id, email address or username")],
    ) -> Annotated[CallToolResult, User]:
        """Get one person by directory id, email address or username (exact match, not a search).

        Returns the person's visible fields. If you only know a name, use search_users instead.
        """
        return structured(User.model_validate(lookup.project(await lookup.get(user))))

    @server.tool(annotations=READ_ONLY)
    async def search_users(
        query: Annotated[
            SearchText | None, Field(description="Text in a name, username, email, title or department")
        ] = None,
        department: FilterText = None,
        title: FilterText = None,
        location: FilterText = None,
        group: FilterText = None,
        employment_type: FilterText = None,
        sort: SortField = None,
        page_size: PageSize = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, UserPage]:
        """Search the directory by free text and/or exact filters, one page at a time.

        `query` matches case-insensitively anywhere in the visible name, username, email, title and
        department fields (characters such as * and % are matched literally). Filters must match
        exactly (case-insensitive); `group` matches anyone in that group. With no arguments it
        lists everyone. Returns up to page_size people, the total number of matches, and
        next_cursor while more remain.
        """
        filters = {
            "department": department,
            "title": title,
            "location": location,
            "groups": group,
            "employment_type": employment_type,
        }
        built = lookup.query(query, filters, sort)
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

    @server.tool(annotations=READ_ONLY)
    async def get_manager_chain(
        user: Annotated[Identifier, Field(description="The person's id, email address or username")],
    ) -> Annotated[CallToolResult, ManagerChain]:
        """Get a person's chain of managers: their direct manager first, up to the top of the company.

        Use it for "who does X report to" and "who is X's skip-level". At most 50 managers are
        returned; `truncated` is true if the chain was cut (too deep or inconsistent data).
        """
        person, chain, truncated = await lookup.manager_chain(user)
        return structured(ManagerChain(user=person, managers=chain, truncated=truncated))

    @server.tool(annotations=READ_ONLY)
    async def list_direct_reports(
        user: Annotated[Identifier, Field(description="The manager's id, email address or username")],
        sort: SortField = None,
        page_size: PageSize = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, DirectReports]:
        """List the people who report directly to a manager, one page at a time.

        Only direct reports (one level down); call it again on a report to go deeper.
        """
        key_scope = ("list_direct_reports", user.strip().lower(), sort)
        offset = server.cursors.decode(cursor, key_scope)
        manager, page = await lookup.direct_reports(user, sort, offset, page_size)
        return structured(
            DirectReports(
                manager=manager,
                reports=page.items,
                total=page.total,
                next_cursor=_next(server, offset, page_size, page.total, key_scope),
            )
        )

    @server.tool(annotations=READ_ONLY)
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

    @server.tool(annotations=READ_ONLY)
    async def get_group_members(
        group: Annotated[
            str, Field(min_length=1, max_length=200, description="Group name (case-insensitive)")
        ],
        sort: SortField = None,
        page_size: PageSize = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, UserPage]:
        """List the members of one group, one page at a time. Group names come from list_groups."""
        scope = ("get_group_members", group.strip().lower(), sort)
        offset = server.cursors.decode(cursor, scope)
        page = await lookup.group_members(group, sort, offset, page_size)
        return structured(
            UserPage(
                users=page.items,
                total=page.total,
                next_cursor=_next(server, offset, page_size, page.total, scope),
            )
        )

    @server.resource(
        "users://{user_id}",
        name="user",
        title="A person in the directory",
        description="One person's visible fields as JSON, by directory id.",
        mime_type="application/json",
    )
    async def user_resource(user_id: str) -> str:
        record = await lookup.directory.get(user_id, ("id",))
        if record is None:
            raise ResourceNotFoundError(f"No user has the id {user_id!r}.")
        return json.dumps(lookup.project(record), ensure_ascii=False)

    del get_user, search_users, get_manager_chain, list_direct_reports, list_groups, get_group_members
    del user_resource
    return server
