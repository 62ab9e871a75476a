"""The baselines of the upload benchmark (group 8): a bare aiohttp server in its own process.

``python bare_server.py discard`` answers ``POST /v1/segments/{id}`` with 201 once it has read
the body, and stores nothing.  ``python bare_server.py durable STORE`` also stores the body
with the backup server's own durable write (``DirectoryStore.put``: temp file, fsync,
rename, fsync of the directory, then the hash file the same way), trusting the client's
``X-Content-SHA256``: no token, no decompression, no check.  Either prints
``serving on http://127.0.0.1:PORT`` once listening, as ``safe-data serve`` does.
"""

import asyncio
import sys

from aiohttp import web


def make_app(mode: str, store_root: str | None) -> web.Application:
    store = None
    if mode == "durable":
        from safe_data.server.stores.directory import DirectoryStore

        store = DirectoryStore(store_root)

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, store.put, "bare", request.match_info["id"], body, request.headers["X-Content-SHA256"]
            )
        return web.Response(status=201)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/segments/{id}", handler)
    return app


async def main(mode: str, store_root: str | None) -> None:
    runner = web.AppRunner(make_app(mode, store_root))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()  # until terminated


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
