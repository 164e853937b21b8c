"""A feed server for the poll-cycle benchmark: many sites, each slow to answer, in its own process.

Every site is its own loopback address (127.77.x.y) on one shared port, so to the poller they are
different hosts (as real sites are) and its per-host politeness gate never serializes them. Each
request waits ``latency`` seconds before its answer; the waits are asyncio sleeps, so a thousand
of them at once cost the server next to nothing and the server is never the bottleneck. Bodies are
files ``<site>.xml`` in a folder, served with an ETag and a Last-Modified, and a conditional GET
that matches either is answered 304; the text ``__PORT__`` in a body becomes the server's port (so an
item can link to a page on its own site). With ``--pages DIR`` (files ``<k>.html``), a path
``/articles/<n>`` is answered with page ``n mod k`` as text/html, and ``/robots.txt`` with a 404, each
after the same latency. HTTP/1.1 with keep-alive, GET only: just what the poller uses.

Run: ``python bench/latency_server.py --bodies DIR [--pages DIR] --latency 0.2``; it prints one JSON line
(``{"port": ..., "sites": ...}``) once every address listens, and serves until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import hashlib
import ipaddress
import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

FIRST_ADDRESS = ipaddress.IPv4Address("127.77.0.1")
# One fixed Last-Modified: the bodies never change while served.
LAST_MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)
BIND_TRIES = 10


def site_address(site: int) -> str:
    """The loopback address site number ``site`` listens on."""
    return str(FIRST_ADDRESS + site)


@dataclass(frozen=True)
class Page:
    """One site's feed document and its validators."""

    body: bytes
    etag: str


def load_pages(folder: Path) -> list[Page]:
    """Every ``<n>.xml`` of ``folder``, in site order, with an ETag from its content."""
    pages = []
    for site in range(len(list(folder.glob("*.xml")))):
        body = (folder / f"{site}.xml").read_bytes()
        pages.append(Page(body, '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'))
    return pages


def article_response(path: str, articles: list[bytes]) -> bytes:
    """The answer to a GET of an article page (``/articles/<n>``) or of ``/robots.txt`` (none: 404)."""
    number = path.removeprefix("/articles/").split("?")[0]
    if not articles or not path.startswith("/articles/") or not number.isdigit():
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    body = articles[int(number) % len(articles)]
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def response(page: Page | None, headers: dict[str, str]) -> bytes:
    """The whole HTTP response to a GET of ``page`` (None: no such site) with these request headers."""
    if page is None:
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    validators = f"ETag: {page.etag}\r\nLast-Modified: {LAST_MODIFIED}\r\n"
    if headers.get("if-none-match") == page.etag or headers.get("if-modified-since") == LAST_MODIFIED:
        return f"HTTP/1.1 304 Not Modified\r\n{validators}\r\n".encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
        f"Content-Length: {len(page.body)}\r\n{validators}\r\n"
    )
    return head.encode() + page.body


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pages: dict[str, Page],
    latency: float,
    articles: list[bytes] | None = None,
) -> None:
    """Answer the requests of one keep-alive connection, each after ``latency`` seconds."""
    page = pages.get(writer.get_extra_info("sockname")[0])
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            await asyncio.sleep(latency)
            path = lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else "/"
            if path.startswith("/articles/") or path == "/robots.txt":
                writer.write(article_response(path, articles or []))
            else:
                writer.write(response(page, headers))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except ConnectionError:
        return  # the client went away mid-answer
    finally:
        writer.close()


def bind_all(addresses: list[str]) -> list[socket.socket]:
    """One listening socket per address, all on one port (a free one, found by trying)."""
    for _ in range(BIND_TRIES):
        sockets: list[socket.socket] = []
        try:
            port = 0
            for address in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((address, port))
                sock.listen(128)
                sock.setblocking(False)
                port = sock.getsockname()[1]
            return sockets
        except OSError:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"could not bind {len(addresses)} loopback addresses to one free port")


async def serve(folder: Path, latency: float, pages_folder: Path | None = None) -> None:
    """Listen on every site's address, announce the port on stdout, and serve until killed."""
    pages = load_pages(folder)
    sockets = bind_all([site_address(n) for n in range(len(pages))])
    port = sockets[0].getsockname()[1] if sockets else 0
    # Items link to pages on their own site: the port is known only now.
    marker = b"__PORT__"
    pages = [Page(p.body.replace(marker, str(port).encode()), p.etag) for p in pages]
    by_address = {site_address(n): page for n, page in enumerate(pages)}
    articles = []
    if pages_folder is not None:
        count = len(list(pages_folder.glob("*.html")))
        articles = [(pages_folder / f"{k}.html").read_bytes() for k in range(count)]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, by_address, latency, articles)

    servers = [await asyncio.start_server(handle, sock=sock, backlog=128) for sock in sockets]
    print(json.dumps({"port": port, "sites": len(pages)}), flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> int:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=Path, required=True, help="folder of <site>.xml bodies")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--pages", type=Path, help="folder of <k>.html article pages for /articles/<n>")
    args = parser.parse_args()
    asyncio.run(serve(args.bodies, args.latency, args.pages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
