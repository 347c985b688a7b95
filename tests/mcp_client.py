"""Drives one Conflagent endpoint's MCP route with the official MCP Python SDK over Streamable HTTP.

Usage: python3 tests/mcp_client.py <mcp-url> <secret> <flavor>

Connects as a real client does (the SDK's default connect mode, which falls back to the initialize
handshake), checks the negotiated revision and the tools listed for the flavor, then calls every
listed tool against the simulator's seeded sandbox (Handbook > Guides > Install, Configure; Notes)
and checks the results. The SDK validates each result's structuredContent against the tool's
outputSchema. Exits non-zero with a traceback on the first failed check.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

READS = [
    "listSubpages",
    "getPageTree",
    "searchPages",
    "readPageByTitle",
    "getPageOutline",
    "listChildPages",
    "getParentPage",
]
WRITES = ["createPage", "updatePageByTitle", "renamePage", "movePage", "deletePageByTitle"]
TOOLS = {"default": READS + WRITES, "read": READS, "upload": ["createPage"]}


def check(condition, what):
    if not condition:
        raise AssertionError(what)


async def call(client, name, arguments):
    result = await client.call_tool(name, arguments)
    check(not result.is_error, f"{name} {arguments} failed: {result.content}")
    check(isinstance(result.structured_content, dict), f"{name}: structuredContent is an object")
    check(len(result.content) == 1 and result.content[0].type == "text", f"{name}: one text block")
    return result.structured_content


async def check_reads(client):
    listed = await call(client, "listSubpages", {})
    check("Guides/Install" in listed["items"], f"listSubpages: {listed}")
    tree = await call(client, "getPageTree", {"depth": 2})
    check("Install" in json.dumps(tree), f"getPageTree: {tree}")
    found = await call(client, "searchPages", {"q": "installer"})
    check(any(hit["title"] == "Install" for hit in found["hits"]), f"searchPages: {found}")
    outline = await call(client, "getPageOutline", {"title": "Guides/Install"})
    check(outline["title"] == "Install" and isinstance(outline["headings"], list), f"getPageOutline: {outline}")
    page = await call(client, "readPageByTitle", {"title": "Guides/Install", "format": "markdown"})
    check("Run the installer." in page["body"], f"readPageByTitle: {page}")
    check(page["version"] >= 1 and page["truncated"] is False, f"readPageByTitle: {page}")
    children = await call(client, "listChildPages", {"title": "Guides"})
    check({"Install", "Configure"} <= {child["title"] for child in children["items"]}, f"listChildPages: {children}")
    parent = await call(client, "getParentPage", {"title": "Install"})
    check(parent["title"] == "Guides", f"getParentPage: {parent}")
    missing = await client.call_tool("readPageByTitle", {"title": "No Such Page"})
    check(missing.is_error, "a missing page is a tool error")
    check(missing.content[0].text.startswith("NOT_FOUND: "), f"missing page: {missing.content}")


async def check_writes(client):
    created = await call(client, "createPage", {"title": "Written over MCP", "body": "Hello **world**", "parentTitle": "Notes"})
    check(created["title"] == "Written over MCP" and created["version"] == 1, f"createPage: {created}")
    updated = await call(client, "updatePageByTitle", {"title": "Notes/Written over MCP", "body": "Changed", "expectedVersion": 1})
    check(updated["version"] == 2, f"updatePageByTitle: {updated}")
    stale = await client.call_tool("updatePageByTitle", {"title": "Written over MCP", "body": "Again", "expectedVersion": 1})
    check(stale.is_error and stale.content[0].text.startswith("VERSION_CONFLICT: "), f"stale update: {stale.content}")
    renamed = await call(client, "renamePage", {"old_title": "Written over MCP", "new_title": "Renamed over MCP"})
    check(renamed["newTitle"] == "Renamed over MCP", f"renamePage: {renamed}")
    moved = await call(client, "movePage", {"title": "Renamed over MCP", "newParentTitle": "Guides"})
    check(moved["newParentTitle"] == "Guides", f"movePage: {moved}")
    deleted = await call(client, "deletePageByTitle", {"title": "Guides/Renamed over MCP"})
    check(deleted["deletedTitle"] == "Renamed over MCP", f"deletePageByTitle: {deleted}")


async def check_refused(client, name, arguments):
    try:
        await client.call_tool(name, arguments)
    except MCPError as error:
        check("not available on this endpoint" in str(error), f"{name} refused: {error}")
        return
    raise AssertionError(f"{name} outside the flavor was not refused")


async def main(url, secret, flavor):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {secret}"})
    async with Client(streamable_http_client(url, http_client=http)) as client:
        check(client.protocol_version == "2025-11-25", f"negotiated {client.protocol_version}")
        check(client.server_info.name == "conflagent", f"server info {client.server_info}")
        check("sandbox" in (client.instructions or ""), "instructions teach the sandbox")
        tools = (await client.list_tools()).tools
        names = [tool.name for tool in tools]
        check(names == TOOLS[flavor], f"{flavor} lists {names}")
        for tool in tools:
            check(tool.title and tool.description, f"{tool.name}: title and description")
            check(tool.input_schema["type"] == "object", f"{tool.name}: input schema")
            check(tool.output_schema and tool.output_schema["type"] == "object", f"{tool.name}: output schema")
            hints = tool.annotations
            check(hints.read_only_hint == (tool.name in READS), f"{tool.name}: readOnlyHint")
            check(hints.open_world_hint is False, f"{tool.name}: openWorldHint")
        if flavor == "default":
            await check_reads(client)
            await check_writes(client)
        elif flavor == "read":
            await check_reads(client)
            await check_refused(client, "createPage", {"title": "Nope", "body": "x"})
        else:
            created = await call(client, "createPage", {"title": "Uploaded over MCP", "body": "Report"})
            check(created["title"] == "Uploaded over MCP", f"createPage: {created}")
            await check_refused(client, "readPageByTitle", {"title": "Guides"})
    print(f"mcp client: {flavor}: {len(names)} tools checked")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
