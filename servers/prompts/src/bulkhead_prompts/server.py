"""`build_server`: the prompt library as MCP prompts, completion and (by setting) tools. Wiring only."""

from typing import Annotated, Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    BlobResourceContents,
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    ContentBlock,
    EmbeddedResource,
    GetPromptResult,
    ImageContent,
    ListPromptsResult,
    PaginatedRequestParams,
    Prompt,
    PromptArgument,
    PromptMessage,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)
from pydantic import Field

from bulkhead.app import BulkheadServer
from bulkhead.errors import InvalidArgumentError, NotFoundError
from bulkhead.notify import ChangeNotifier
from bulkhead.results import READ_ONLY, structured
from bulkhead.validation import Cursor, PageSize, ShortText
from bulkhead_prompts.library import Library, UnknownPromptError
from bulkhead_prompts.models import (
    ArgumentInfo,
    MessageOut,
    PromptInfo,
    PromptPage,
    PromptSpec,
    RenderedMessage,
    RenderedPrompt,
)
from bulkhead_prompts.render import ArgumentError, image_data
from bulkhead_prompts.settings import PromptsSettings

__all__ = ["PromptsServer", "build_server"]

INSTRUCTIONS = (
    "A library of ready prompts for engineering work (reviews, migrations, incident write-ups, "
    "release notes...). List them, then get one with its arguments to start that workflow."
)
TOOL_INSTRUCTIONS = (
    " Clients without prompt support can use the tools list_prompts and get_prompt for the same library."
)
LIST_SCOPE = ("prompts/list",)


def _content(message: RenderedMessage) -> ContentBlock:
    if message.kind == "image":
        return ImageContent(
            type="image", data=image_data(message), mime_type=message.mime_type or "image/png"
        )
    if message.kind == "embed":
        uri = message.uri or ""
        if message.text is not None:
            resource: TextResourceContents | BlobResourceContents = TextResourceContents(
                uri=uri, mime_type=message.mime_type, text=message.text
            )
        else:
            resource = BlobResourceContents(uri=uri, mime_type=message.mime_type, blob=image_data(message))
        return EmbeddedResource(type="resource", resource=resource)
    return TextContent(type="text", text=message.text or "")


def _prompt(spec: PromptSpec) -> Prompt:
    return Prompt(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        arguments=[
            PromptArgument(name=argument.name, description=argument.description, required=argument.required)
            for argument in spec.arguments
        ],
    )


def _info(spec: PromptSpec) -> PromptInfo:
    return PromptInfo(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        arguments=[
            ArgumentInfo(
                name=argument.name,
                description=argument.description,
                required=argument.required,
                default=argument.default,
                allowed=list(argument.allowed) if argument.allowed is not None else None,
            )
            for argument in spec.arguments
        ],
        tags=list(spec.tags),
    )


class PromptsServer(BulkheadServer):
    """A `BulkheadServer` whose prompts come from a `Library` that may change while it runs."""

    def __init__(self, settings: PromptsSettings, library: Library, notifier: ChangeNotifier) -> None:
        instructions = INSTRUCTIONS + (TOOL_INSTRUCTIONS if settings.tools else "")
        super().__init__(settings, instructions=instructions, subscriptions=notifier.bus)
        self.settings_ = settings
        self.library = library
        self.notifier = notifier
        notifier.install(self, prompts=True)
        lowlevel = self._lowlevel_server
        # MCPServer's own prompts/list ignores the cursor; a library can hold thousands of prompts.
        lowlevel.add_request_handler("prompts/list", PaginatedRequestParams, self._list_prompts_page)

    async def _list_prompts_page(
        self, _ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListPromptsResult:
        cursor = params.cursor if params is not None else None
        try:
            offset = self.cursors.decode(cursor, LIST_SCOPE)
        except InvalidArgumentError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
        prompts = self.library.prompts()
        size = self.settings_.page_size
        page = prompts[offset : offset + size]
        after = offset + size
        next_cursor = self.cursors.encode(after, LIST_SCOPE) if after < len(prompts) else None
        return ListPromptsResult(prompts=[_prompt(spec) for spec in page], next_cursor=next_cursor)

    async def list_prompts(self) -> list[Prompt]:
        """Every prompt of the library (unpaginated; prompts/list itself pages)."""
        return [_prompt(spec) for spec in self.library.prompts()]

    async def render_prompt(
        self, name: str, arguments: dict[str, Any] | None, context: Context[Any, Any] | None
    ) -> GetPromptResult:
        """Validate the arguments and render prompt `name` from the library."""
        try:
            spec, messages = await self.library.render(
                name, arguments, max_argument_chars=self.settings_.max_argument_chars
            )
        except UnknownPromptError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc), data={"prompt": name[:100]}) from None
        except ArgumentError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc), data={"argument": exc.argument}) from None
        return GetPromptResult(
            description=spec.description,
            messages=[PromptMessage(role=message.role, content=_content(message)) for message in messages],
        )

    async def complete_argument(
        self,
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        _context: CompletionContext | None,
    ) -> Completion:
        """Allowed values or suggestions of a prompt argument that start with what was typed."""
        if not isinstance(ref, PromptReference):
            return Completion(values=[], total=0, has_more=False)
        try:
            found = self.library.complete(ref.name, argument.name, argument.value)
        except UnknownPromptError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
        return Completion(values=found.values, total=found.total, has_more=found.has_more)


def _add_tools(server: PromptsServer) -> None:
    library = server.library

    async def list_prompts(
        tag: Annotated[ShortText | None, Field(description="Only prompts with this tag")] = None,
        page_size: PageSize = 50,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, PromptPage]:
        """List the prompts of the library: name, description and arguments, sorted by name.

        Use get_prompt with a name from here to get the prompt's messages. Returns up to page_size
        prompts, the total, and next_cursor while more remain.
        """
        scope = ("list_prompts", tag)
        offset = server.cursors.decode(cursor, scope)
        prompts = [spec for spec in library.prompts() if tag is None or tag in spec.tags]
        after = offset + page_size
        return structured(
            PromptPage(
                prompts=[_info(spec) for spec in prompts[offset:after]],
                total=len(prompts),
                next_cursor=server.cursors.encode(after, scope) if after < len(prompts) else None,
            )
        )

    async def get_prompt(
        name: Annotated[ShortText, Field(description="The prompt's name, from list_prompts")],
        arguments: Annotated[
            dict[str, str] | None, Field(description="Argument values by name; all values are text")
        ] = None,
    ) -> Annotated[CallToolResult, RenderedPrompt]:
        """Render one prompt of the library with its arguments and return its messages.

        Follow the returned messages as the conversation to run (user messages are the
        instructions). A missing required argument, an unknown one or a value outside an
        argument's allowed values is an error naming the argument.
        """
        try:
            spec, messages = await library.render(
                name, arguments, max_argument_chars=server.settings_.max_argument_chars
            )
        except UnknownPromptError as exc:
            raise NotFoundError(str(exc)) from None
        except ArgumentError as exc:
            raise InvalidArgumentError(str(exc)) from None
        return structured(
            RenderedPrompt(
                name=spec.name,
                description=spec.description,
                messages=[
                    MessageOut(
                        role=message.role,
                        text=message.text,
                        resource_uri=message.uri,
                        mime_type=message.mime_type,
                    )
                    for message in messages
                ],
            )
        )

    server.tool(annotations=READ_ONLY)(list_prompts)
    server.tool(annotations=READ_ONLY)(get_prompt)


def build_server(
    settings: PromptsSettings, library: Library, notifier: ChangeNotifier | None = None
) -> PromptsServer:
    """A server for `library` (already loaded), telling clients through `notifier` when it changes."""
    server = PromptsServer(settings, library, notifier or ChangeNotifier())
    server.completion()(server.complete_argument)
    if settings.tools:
        _add_tools(server)
    return server
