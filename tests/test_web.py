"""The web view's API (docs/web.md): tokens, search, paging, a record, restore downloads,
bounds on the parameters, never unpickling, and the page's security headers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

aiohttp = pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

import safe_data  # noqa: E402
from safe_data.server.app import make_app  # noqa: E402
from safe_data.server.stores.directory import DirectoryStore  # noqa: E402
from safe_data.server.web import routes  # noqa: E402

TOKEN = "web-token-of-alpha-0123456789abcdef"
OTHER = "web-token-of-beta-fedcba9876543210"
TOKENS = {"alpha": TOKEN, "beta": OTHER}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS = "<script>document.title='owned'</script><img src=x onerror=alert(1)>"

UNPICKLED = []


def _unpickled_marker():
    UNPICKLED.append(True)
    return "unpickled!"


class Trap:
    """A value that is pickled when discarded; unpickling it would run _unpickled_marker."""

    def __reduce__(self):
        return (_unpickled_marker, ())


def _fill(path) -> None:
    journal = safe_data.Journal(path)
    try:
        cart = safe_data.SafeList(
            ["apple", XSS, "eggs", Trap()], name="cart", journal=journal, capture_caller=True
        )
        cart.pop()
        cart.pop()
        cart.pop()
        cart.remove("apple")
        prefs = safe_data.SafeDict({"theme": "dark", "lang": "en"}, name="cart.prefs", journal=journal)
        del prefs["lang"]
        orders = safe_data.SafeList([1, 2, 3], name="orders", journal=journal, versioned=True)
        orders.append(4)
        time.sleep(0.002)  # restore --at a time between the two, to the microsecond
        orders.pop(0)
        for i in range(20):
            safe_data.SafeSet({i}, name="noise", journal=journal).discard(i)
    finally:
        journal.close()


@pytest.fixture
def journal_dir(tmp_path):
    path = tmp_path / "journal"
    _fill(path)
    UNPICKLED.clear()
    return path


def iso(microseconds: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=microseconds)).isoformat()


def run(scenario, tmp_path, *, journal=None, journal_readers=None, ui=True):
    async def main():
        app = make_app(
            DirectoryStore(tmp_path / "store"),
            TOKENS,
            web_view=ui,
            journal=journal,
            journal_readers=journal_readers,
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


async def get_json(client, path, params=None, headers=AUTH, status=200):
    response = await client.get(path, params=params or {}, headers=headers)
    assert response.status == status, await response.text()
    return await response.json() if status == 200 else await response.text()


async def search_all(client, params) -> list[dict]:
    """Every result of a search, following the cursor page by page."""
    out, after = [], None
    for _ in range(1000):
        page = await get_json(client, "/ui/api/records", dict(params, **({"after": after} if after else {})))
        out += page["records"]
        after = page["next"]
        if after is None:
            return out
    raise AssertionError("the cursor never ends")


# --- the page ------------------------------------------------------------------------------------


def test_page_is_served_locally_with_a_strict_policy(tmp_path, journal_dir):
    async def scenario(client):
        redirect = await client.get("/ui", allow_redirects=False)
        assert redirect.status == 302 and redirect.headers["Location"] == "/ui/"
        home = await client.get("/", allow_redirects=False)
        assert home.status == 302 and home.headers["Location"] == "/ui/"
        pages = {}
        for name in ("", "app.js", "style.css", "favicon.svg"):
            response = await client.get("/ui/" + name)
            assert response.status == 200
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            pages[name] = await response.text()
        assert (await client.get("/ui/../v1/segments")).status in (401, 404)
        assert (await client.get("/ui/index.html.bak")).status == 404
        return pages

    pages = run(scenario, tmp_path, journal=journal_dir)
    html, script = pages[""], pages["app.js"]
    # no inline script or handler, nothing fetched from elsewhere
    assert re.findall(r"<script[^>]*>", html) == ['<script src="app.js" defer>']
    assert not re.search(r"\son[a-z]+=", html)
    assert "http://" not in html + script and "https://" not in html + script
    # what the server sends is written as text, never parsed as HTML
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "document.write" not in script and "eval(" not in script
    # the token is kept for the browser session only (the browser test checks its use)
    assert "localStorage" not in script and "sessionStorage" in script
    assert '<link rel="icon" href="favicon.svg"' in html


def test_no_ui_without_web_view(tmp_path):
    async def scenario(client):
        assert (await client.get("/ui/")).status == 404
        assert (await client.get("/", allow_redirects=False)).status == 404
        assert (await client.get("/health")).status == 200

    run(scenario, tmp_path, ui=False)


def test_the_old_names_still_serve_the_web_view(tmp_path, journal_dir):
    """safe_data.upload.server and safe_data.web, the names before the server moved."""
    from safe_data.upload.server import make_app as old_make_app
    from safe_data.web import mount as old_mount

    async def main():
        app = old_make_app(DirectoryStore(tmp_path / "store"), TOKENS)
        old_mount(app, journal=journal_dir, journal_readers=["alpha"])
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await get_json(client, "/ui/api/sources")

    assert asyncio.run(main())["sources"] == ["journal", "store"]


def test_a_journal_needs_the_web_view(tmp_path, journal_dir):
    with pytest.raises(ValueError, match="web_view=True"):
        make_app(DirectoryStore(tmp_path / "store"), TOKENS, journal=journal_dir)


# --- tokens ------------------------------------------------------------------------------------


def test_every_api_call_needs_a_token_in_the_header(tmp_path, journal_dir):
    async def scenario(client):
        queries = [
            ("/ui/api/sources", {}),
            ("/ui/api/records", {"container": "cart"}),
            ("/ui/api/record", {"segment": "0123456789abcdef-000001.seg", "offset": "64"}),
            ("/ui/api/restore", {"container": "orders"}),
        ]
        for path, params in queries:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = await client.get(path, params=params, headers=headers)
                assert response.status == 401, (path, headers)
            # a token in the URL is no credential
            response = await client.get(path, params=dict(params, token=TOKEN, access_token=TOKEN))
            assert response.status == 401
        info = await get_json(client, "/ui/api/sources")
        assert info["namespace"] == "alpha" and info["sources"] == ["journal", "store"]
        assert "pop" in info["ops"]
        metrics = await client.get("/metrics", headers=AUTH)
        assert "safe_data_requests_unauthorized_total 16" in await metrics.text()

    run(scenario, tmp_path, journal=journal_dir)


# --- searching the journal -----------------------------------------------------------------------


def test_search_by_container_op_and_time(tmp_path, journal_dir):
    journal_records = list(safe_data.Journal(journal_dir).records())
    cart_times = [r.time_ns for r in journal_records if r.container == "cart"]

    async def scenario(client):
        cart = await search_all(client, {"container": "cart"})
        assert [r["op"] for r in cart] == ["pop", "pop", "pop", "remove"]
        assert [r["values"] for r in cart[1:]] == ["['eggs']", repr([XSS]), "['apple']"]
        assert all(r["caller"].startswith("test_web.py:") for r in cart)
        assert {
            r["container"] for r in await search_all(client, {"container": "cart", "match": "prefix"})
        } == {"cart", "cart.prefs"}
        assert [r["op"] for r in await search_all(client, {"container": "cart", "op": "remove"})] == [
            "remove"
        ]
        # discards by default, as `safe-data log`; everything on request
        assert [r["op"] for r in await search_all(client, {"container": "orders"})] == ["pop"]
        assert [r["op"] for r in await search_all(client, {"container": "orders", "op": "*"})] == [
            "snapshot",
            "insert",
            "pop",
        ]
        # since is inclusive, until exclusive; ns-exact through ISO times to the microsecond
        since = iso(cart_times[1] // 1000)
        assert len(await search_all(client, {"container": "cart", "since": since})) == 3
        assert len(await search_all(client, {"container": "cart", "until": since})) == 1
        assert await search_all(client, {"container": "cart", "since": "1h"}) == cart
        assert await search_all(client, {"container": "cart", "until": "1h"}) == []
        assert await search_all(client, {"container": "nothing"}) == []
        everything = await search_all(client, {"op": "*"})
        assert len(everything) == len(journal_records)

    run(scenario, tmp_path, journal=journal_dir)


def test_pages_follow_the_cursor_without_gaps_or_repeats(tmp_path, journal_dir):
    async def scenario(client):
        whole = (await get_json(client, "/ui/api/records", {"op": "*", "limit": "200"}))["records"]
        for limit in ("1", "3", "7"):
            paged = await search_all(client, {"op": "*", "limit": limit})
            assert paged == whole
        first = await get_json(client, "/ui/api/records", {"container": "noise", "limit": "5"})
        assert len(first["records"]) == 5 and first["next"]

    run(scenario, tmp_path, journal=journal_dir)


WRITE = """
import sys, safe_data
with safe_data.Journal(sys.argv[1], segment_size=4096) as journal:
    items = safe_data.SafeList([sys.argv[2] + "-%03d-" % i + "x" * 100 for i in range(40)],
                               name="w" + sys.argv[2], journal=journal)
    for _ in range(40):
        items.pop()
"""


def test_newest_first_is_the_journal_order_reversed(tmp_path):
    path = tmp_path / "writers"
    for writer in "abc":  # three processes: three writers, each over several segments
        subprocess.run([sys.executable, "-c", WRITE, str(path), writer], check=True, timeout=60)
    assert len([n for n in os.listdir(path) if n.endswith(".seg")]) >= 6

    async def scenario(client):
        oldest = await search_all(client, {"limit": "200"})
        assert len(oldest) == 120 and [r["values"][2:3] for r in oldest[::40]] == ["a", "b", "c"]
        for limit in ("1", "7", "40"):
            assert await search_all(client, {"order": "newest", "limit": limit}) == oldest[::-1]
        until = oldest[70]["time"]
        assert await search_all(client, {"order": "newest", "container": "wb", "until": until}) == [
            r for r in oldest[::-1] if r["container"] == "wb" and r["time"] < until
        ]
        await get_json(client, "/ui/api/records", {"order": "up"}, status=400)

    run(scenario, tmp_path, journal=path)


def test_a_search_stops_at_its_time_budget_and_resumes(tmp_path, journal_dir, monkeypatch):
    monkeypatch.setattr(routes, "SEARCH_BUDGET", 0.0)
    monkeypatch.setattr(routes.reading, "_BUDGET_CHECK_EVERY", 1, raising=False)

    async def scenario(client):
        first = await get_json(client, "/ui/api/records", {"container": "orders"})
        assert first["records"] == [] and first["next"]  # scanned a little, found nothing yet
        found = await search_all(client, {"container": "orders"})
        assert [r["op"] for r in found] == ["pop"]

    run(scenario, tmp_path, journal=journal_dir)


def test_a_record_shows_its_caller_and_full_values(tmp_path, journal_dir):
    async def scenario(client):
        summary = (await search_all(client, {"container": "cart"}))[2]
        record = await get_json(
            client, "/ui/api/record", {"segment": summary["segment"], "offset": str(summary["offset"])}
        )
        assert record["values"] == [XSS] and record["op"] == "pop" and record["key"] == 1
        file, line, function = record["caller"]
        assert file == __file__ and function == "_fill" and isinstance(line, int)
        assert record["caller_text"] == f"{__file__}:{line} in _fill"
        # the segment may be named without its suffix, as `safe-data show` accepts
        stem = summary["segment"].removesuffix(".seg")
        again = await get_json(client, "/ui/api/record", {"segment": stem, "offset": str(summary["offset"])})
        assert again == record
        await get_json(
            client,
            "/ui/api/record",
            {"segment": summary["segment"], "offset": str(summary["offset"] + 1)},
            status=404,
        )
        await get_json(
            client, "/ui/api/record", {"segment": "0123456789abcdef-000009.seg", "offset": "64"}, status=404
        )

    run(scenario, tmp_path, journal=journal_dir)


def test_pickled_values_are_never_unpickled(tmp_path, journal_dir):
    async def scenario(client):
        trap = (await search_all(client, {"container": "cart"}))[0]
        assert re.fullmatch(r"\[<UnverifiedPickle \d+ bytes>\]", trap["values"])
        record = await get_json(
            client, "/ui/api/record", {"segment": trap["segment"], "offset": str(trap["offset"])}
        )
        assert re.fullmatch(r"<UnverifiedPickle \d+ bytes>", record["values"][0])
        restored = await client.get(
            "/ui/api/restore", params={"container": "cart", "mode": "discarded"}, headers=AUTH
        )
        assert re.fullmatch(r"<UnverifiedPickle \d+ bytes>", (await restored.json())[0])

    run(scenario, tmp_path, journal=journal_dir)
    assert UNPICKLED == []
    # the library itself, with the journal's key, does unpickle it: the trap is real
    with safe_data.Journal(journal_dir) as journal:
        assert safe_data.discarded("cart", journal)[0] == "unpickled!"
    assert UNPICKLED == [True]


def test_browsing_changes_nothing_in_the_journal(tmp_path, journal_dir):
    def snapshot():
        return {
            name: hashlib.sha256((journal_dir / name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(journal_dir))
            if (journal_dir / name).is_file()
        }

    before = snapshot()

    async def scenario(client):
        await search_all(client, {"op": "*"})
        await client.get("/ui/api/restore", params={"container": "orders"}, headers=AUTH)

    run(scenario, tmp_path, journal=journal_dir)
    assert snapshot() == before


# --- restore downloads ---------------------------------------------------------------------------


def test_restore_downloads(tmp_path, journal_dir):
    with safe_data.Journal(journal_dir) as journal:
        orders = [r for r in journal.records("orders")]
        expected_now = safe_data.restore("orders", journal=journal)
        expected_before = safe_data.restore("orders", at=orders[1].time_ns, journal=journal)
    assert expected_now == [2, 3, 4] and expected_before == [1, 2, 3, 4]
    at = iso(orders[1].time_ns // 1000 + 1)

    async def scenario(client):
        response = await client.get("/ui/api/restore", params={"container": "orders"}, headers=AUTH)
        assert response.status == 200
        assert response.headers["Content-Disposition"] == 'attachment; filename="orders-restore.json"'
        assert await response.json() == expected_now
        response = await client.get("/ui/api/restore", params={"container": "orders", "at": at}, headers=AUTH)
        assert await response.json() == expected_before
        discarded = await client.get(
            "/ui/api/restore", params={"container": "cart.prefs", "mode": "discarded"}, headers=AUTH
        )
        assert discarded.headers["Content-Disposition"].endswith('"cart.prefs-discarded.json"')
        assert await discarded.json() == [["lang", "en"]]
        # a plain container: refused unless partial, as `safe-data restore`
        refused = await get_json(client, "/ui/api/restore", {"container": "cart.prefs"}, status=409)
        assert "versioned=True" in refused and "partial" in refused
        partial = await client.get(
            "/ui/api/restore", params={"container": "cart.prefs", "partial": "1"}, headers=AUTH
        )
        assert await partial.json() == {"lang": "en"}
        await get_json(client, "/ui/api/restore", {"container": "ghost"}, status=404)

    run(scenario, tmp_path, journal=journal_dir)


def test_restore_from_the_journal_follows_nested_containers(tmp_path):
    """As the journal reads them: the records of the containers nested in it, by identity
    (a versioned deep=True container whose nested list and dict changed)."""
    path = tmp_path / "journal"
    with safe_data.Journal(path) as journal:
        orders = safe_data.SafeDict(
            {"a": [1, 2, 3], "b": {"x": 1}}, name="orders", journal=journal, deep=True, versioned=True
        )
        orders["a"].pop()
        orders["a"].append(9)
        del orders["b"]["x"]
    with safe_data.Journal(path, readonly=True) as journal:
        expected = safe_data.restore("orders", journal=journal)
    assert expected == {"a": [1, 2, 9], "b": {}}

    async def scenario(client):
        response = await client.get("/ui/api/restore", params={"container": "orders"}, headers=AUTH)
        assert response.status == 200
        assert await response.json() == expected

    run(scenario, tmp_path, journal=path, journal_readers=["alpha"])


def test_restore_file_name_is_sanitized(tmp_path):
    path = tmp_path / "journal"
    with safe_data.Journal(path) as journal:
        safe_data.SafeList([1], name='../"evil"\r\nX-Header: 1', journal=journal).pop()

    async def scenario(client):
        response = await client.get(
            "/ui/api/restore",
            params={"container": '../"evil"\r\nX-Header: 1', "mode": "discarded"},
            headers=AUTH,
        )
        assert response.status == 200
        assert (
            response.headers["Content-Disposition"] == 'attachment; filename="evil_X-Header_1-discarded.json"'
        )
        assert "X-Header" not in response.headers

    run(scenario, tmp_path, journal=path)


# --- bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, params",
    [
        ("/ui/api/records", {"limit": "0"}),
        ("/ui/api/records", {"limit": "201"}),
        ("/ui/api/records", {"limit": "-1"}),
        ("/ui/api/records", {"limit": "9" * 30}),
        ("/ui/api/records", {"container": "x" * 1025}),
        ("/ui/api/records", {"container": "a\x00b"}),
        ("/ui/api/records", {"match": "regex"}),
        ("/ui/api/records", {"op": "__import__('os')"}),
        ("/ui/api/records", {"since": "yesterday"}),
        ("/ui/api/records", {"until": "9" * 65}),
        ("/ui/api/records", {"since": "99999999999999w"}),
        ("/ui/api/records", {"after": "1-2-3"}),
        ("/ui/api/records", {"source": "../../etc"}),
        ("/ui/api/record", {"segment": "../../../etc/passwd", "offset": "0"}),
        ("/ui/api/record", {"segment": "0123456789abcdef-000001.seg"}),
        ("/ui/api/record", {"segment": "0123456789abcdef-000001.seg", "offset": "x"}),
        ("/ui/api/restore", {}),
        ("/ui/api/restore", {"container": "orders", "mode": "pickle"}),
        ("/ui/api/restore", {"container": "orders", "partial": "yes"}),
        ("/ui/api/restore", {"container": "orders", "at": "soon"}),
    ],
)
def test_parameters_are_bounded(tmp_path, journal_dir, path, params):
    async def scenario(client):
        body = await get_json(client, path, params, status=400)
        assert "error" in body

    run(scenario, tmp_path, journal=journal_dir)


# --- the store -----------------------------------------------------------------------------------


def _upload(client, path, token):
    async def go():
        for name in sorted(os.listdir(path)):
            if not name.endswith(".seg"):
                continue
            data = (path / name).read_bytes()
            response = await client.put(
                f"/v1/segments/{name[:-4]}",
                data=zstandard.ZstdCompressor().compress(data),
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
                },
            )
            assert response.status == 201, await response.text()

    return go()


def test_store_namespaces_are_browsed_with_their_own_token(tmp_path, journal_dir):
    async def scenario(client):
        await _upload(client, journal_dir, TOKEN)
        beta = {"Authorization": f"Bearer {OTHER}"}
        info = await get_json(client, "/ui/api/sources", headers=beta)
        assert info == {
            "namespace": "beta",
            "sources": ["store"],
            "ops": info["ops"],
            "journal": None,
            "last_good_drill": None,
        }
        # no journal on this server
        await get_json(client, "/ui/api/records", {"source": "journal"}, status=404)
        cart = await search_all(client, {"source": "store", "container": "cart"})
        assert [r["values"] for r in cart[1:]] == ["['eggs']", repr([XSS]), "['apple']"]
        page = await get_json(client, "/ui/api/records", {"source": "store", "op": "*"}, headers=beta)
        assert page == {"records": [], "next": None, "undecodable": 0}
        record = await get_json(
            client,
            "/ui/api/record",
            {"source": "store", "segment": cart[1]["segment"], "offset": str(cart[1]["offset"])},
        )
        assert record["values"] == ["eggs"] and record["caller"][2] == "_fill"
        await get_json(
            client,
            "/ui/api/record",
            {"source": "store", "segment": cart[1]["segment"], "offset": str(cart[1]["offset"])},
            headers=beta,
            status=404,
        )
        response = await client.get(
            "/ui/api/restore", params={"source": "store", "container": "orders"}, headers=AUTH
        )
        assert await response.json() == [2, 3, 4]

    run(scenario, tmp_path, journal=None)
    assert UNPICKLED == []


def test_serve_refuses_a_journal_without_the_ui(tmp_path):
    from click.testing import CliRunner

    from safe_data.cli import main

    result = CliRunner().invoke(
        main,
        ["serve", "--store", str(tmp_path / "s"), "--no-ui", "--journal", str(tmp_path)],
        env={"SAFE_DATA_TOKENS": f"alpha:{TOKEN}"},
    )
    assert result.exit_code == 2 and "--no-ui" in result.output


def test_the_journal_is_shown_only_to_its_readers_namespaces(tmp_path, journal_dir):
    async def scenario(client):
        beta = {"Authorization": f"Bearer {OTHER}"}
        info = await get_json(client, "/ui/api/sources", headers=beta)
        assert info["sources"] == ["store"] and info["journal"] is None
        # beta's default source is its store; naming the journal is refused everywhere
        assert await get_json(client, "/ui/api/records", {"op": "*"}, headers=beta) == {
            "records": [],
            "next": None,
            "undecodable": 0,
        }
        journal_records = list(safe_data.Journal(journal_dir).records())
        first = journal_records[0]
        for path, params in [
            ("/ui/api/records", {}),
            ("/ui/api/record", {"segment": first.segment, "offset": str(first.offset)}),
            ("/ui/api/restore", {"container": "orders"}),
        ]:
            body = await get_json(client, path, dict(params, source="journal"), headers=beta, status=403)
            assert "may not read this server's journal" in body
        info = await get_json(client, "/ui/api/sources")
        assert info["sources"] == ["journal", "store"]
        cart = await search_all(client, {"container": "cart"})
        assert len(cart) == sum(r.container == "cart" for r in journal_records)

    run(scenario, tmp_path, journal=journal_dir, journal_readers=["alpha"])


@pytest.mark.parametrize(
    "args,tokens,message",
    [
        (
            ["--journal", "{journal}"],
            f"alpha:{TOKEN},beta:{OTHER}",
            "the tokens have 2 namespaces: name those whose tokens may browse --journal",
        ),
        (
            ["--journal", "{journal}", "--journal-namespace", "gamma"],
            f"alpha:{TOKEN}",
            "no token has the namespace 'gamma'",
        ),
        (["--journal-namespace", "alpha"], f"alpha:{TOKEN}", "give --journal too"),
    ],
)
def test_serve_needs_to_know_who_may_browse_its_journal(tmp_path, args, tokens, message):
    from click.testing import CliRunner

    from safe_data.cli import main

    args = [a.format(journal=tmp_path) for a in args]
    result = CliRunner().invoke(
        main, ["serve", "--store", str(tmp_path / "s"), *args], env={"SAFE_DATA_TOKENS": tokens}
    )
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert TOKEN not in result.output and not (tmp_path / "s").exists()
