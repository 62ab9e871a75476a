"""The web view in a real headless browser: a `safe-data serve --journal DIR` process,
driven by selenium through chromium: connect, search, page, open a record, download a
restore; the token kept for the session; a phone-width window.

Skipped when selenium (the ``browser`` extra), chromium or chromedriver is missing (Debian:
the ``chromium`` and ``chromium-driver`` packages).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import types

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("selenium", reason="the browser test needs selenium: pip install '.[browser]'")

import safe_data  # noqa: E402

from ._helpers import wait_until  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="the browser test needs chromium and chromedriver "
    "(Debian: apt-get install chromium chromium-driver)",
)

TOKEN = "browser-token-0123456789abcdef"
XSS = "<script>document.title='owned'</script><img src=x onerror=\"document.title='owned'\">"


def fill(path) -> None:
    with safe_data.Journal(path) as journal:
        cart = safe_data.SafeList(["apple", XSS, "eggs"], name="cart", journal=journal, capture_caller=True)
        cart.pop()
        cart.pop()
        orders = safe_data.SafeList([1, 2, 3], name="orders", journal=journal, versioned=True)
        orders.append(4)
        orders.pop(0)
        noise = safe_data.SafeList(list(range(7)), name="noise", journal=journal)
        for i in range(7):
            noise.remove(i)


def readline(proc, timeout=20) -> str:
    """A line of the server's output ("" if none comes in time: never a hung test)."""
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


@pytest.fixture
def server(tmp_path):
    journal = tmp_path / "journal"
    fill(journal)
    env = dict(os.environ, SAFE_DATA_TOKENS=f"alpha:{TOKEN}")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "safe_data",
            "serve",
            "--store",
            str(tmp_path / "store"),
            "--journal",
            str(journal),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = readline(proc)
        assert line.startswith("serving on http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[-1]
        assert readline(proc) == f"web view on {url}/ui/\n"  # the banner names the page
        yield types.SimpleNamespace(url=url, process=proc)
    finally:
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    assert TOKEN not in stderr  # the access log has no token


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def test_search_open_a_record_and_download_a_restore(server, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 10)
    browser.get(server.url + "/")  # redirected to the page
    assert browser.current_url == server.url + "/ui/"
    assert browser.title == "safe-data: discarded values"
    favicon = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch(document.querySelector('link[rel=icon]').href)"
        ".then(r => done([r.status, r.headers.get('Content-Type')]));"
    )
    assert favicon == [200, "image/svg+xml; charset=utf-8"]

    # a wrong token is refused, the right one connects
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "connect").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "401"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "connect").click()
    wait.until(ec.visibility_of_element_located((By.ID, "search-form")))
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    assert (
        Select(browser.find_element(By.ID, "source")).first_selected_option.get_attribute("value")
        == "journal"
    )

    # search a container
    browser.find_element(By.ID, "container").send_keys("cart")
    browser.find_element(By.ID, "search").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tr.result")) == 2)
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tr.result")
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [c[1:4] for c in cells] == [["cart", "pop", "1"], ["cart", "pop", "2"]]  # newest first
    assert cells[0][4].startswith("['<script>document.title=")  # the markup shows as text
    assert cells[0][5].startswith("test_web_browser.py:") and cells[0][5].endswith(" in fill")
    assert browser.find_element(By.ID, "summary").text == "records 1–2 of 2, newest first"

    # open the record: its caller and its values, as text
    rows[0].find_element(By.CSS_SELECTOR, "button.open").click()
    wait.until(ec.visibility_of_element_located((By.ID, "record")))
    caller = browser.find_element(By.ID, "rec-caller").text
    assert caller.startswith(__file__ + ":") and caller.endswith(" in fill")
    assert json.loads(browser.find_element(By.ID, "rec-values").text) == [XSS]
    assert browser.title == "safe-data: discarded values"  # no script ran
    assert browser.find_elements(By.CSS_SELECTOR, "#results img, #record img, main script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text

    # download a restore of the versioned container
    restore_container = browser.find_element(By.ID, "restore-container")
    assert restore_container.get_attribute("value") == "cart"  # from the record opened
    restore_container.clear()
    restore_container.send_keys("orders")
    browser.find_element(By.ID, "download").click()
    target = browser.downloads / "orders-restore.json"
    wait_until(
        target.exists,
        10,
        lambda: (
            f"no {target.name}: downloaded {os.listdir(browser.downloads)}, "
            f"status {browser.find_element(By.ID, 'status').text!r}"
        ),
    )
    assert json.loads(target.read_text()) == [2, 3, 4]
    assert browser.find_element(By.ID, "status").text == "downloaded orders-restore.json"

    # a plain container cannot be restored exactly: the page says why
    restore_container.clear()
    restore_container.send_keys("cart")
    browser.find_element(By.ID, "download").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "409"))
    assert "partial" in browser.find_element(By.ID, "status").text


def connect(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/ui/")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "search-form")))


def search(browser, container, *, limit="50", order=None, since=""):
    """Search; return when the page says something (the rows are then shown)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for field, value in (("container", container), ("limit", limit), ("since", since)):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    if order:
        Select(browser.find_element(By.ID, "order")).select_by_value(order)
    browser.execute_script(
        "document.getElementById('summary').textContent = '';"
        "document.getElementById('status').textContent = '';"
    )
    browser.find_element(By.ID, "search").click()
    wait_for_answer(browser)


def wait_for_answer(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(
        lambda d: (
            d.find_element(By.ID, "status").text not in ("", "searching...")
            or d.find_element(By.ID, "summary").text
        )
    )


def shown(browser) -> list[str]:
    """The discarded values of the rows shown."""
    from selenium.webdriver.common.by import By

    return [
        row.find_elements(By.TAG_NAME, "td")[4].text
        for row in browser.find_elements(By.CSS_SELECTOR, "#results tr.result")
    ]


def click_and_wait(browser, button_id):
    from selenium.webdriver.common.by import By

    browser.execute_script("document.getElementById('status').textContent = 'clicked';")
    browser.find_element(By.ID, button_id).click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "status").text not in ("clicked", "searching...")
    )


def test_pages_newest_first_and_oldest_first(server, browser):
    from selenium.webdriver.common.by import By

    connect(browser, server)
    search(browser, "noise", limit="3")  # removed 0, 1, ... 6: newest first, 6 first
    summary = lambda: browser.find_element(By.ID, "summary").text  # noqa: E731
    assert shown(browser) == ["[6]", "[5]", "[4]"] and summary() == "records 1–3, newest first"
    assert browser.find_element(By.ID, "previous").get_attribute("disabled") == "true"
    click_and_wait(browser, "next")
    assert shown(browser) == ["[3]", "[2]", "[1]"] and summary() == "records 4–6, newest first"
    click_and_wait(browser, "next")
    assert shown(browser) == ["[0]"] and summary() == "records 7–7 of 7, newest first"
    assert browser.find_element(By.ID, "next").get_attribute("disabled") == "true"
    click_and_wait(browser, "previous")
    assert shown(browser) == ["[3]", "[2]", "[1]"] and browser.find_element(By.ID, "page").text == "page 2"
    search(browser, "noise", limit="3", order="oldest")
    assert shown(browser) == ["[0]", "[1]", "[2]"] and summary() == "records 1–3, oldest first"


def test_after_an_error_the_summary_counts_what_is_shown(server, browser):
    from selenium.webdriver.common.by import By

    connect(browser, server)
    summary = lambda: browser.find_element(By.ID, "summary").text  # noqa: E731
    search(browser, "cart")
    assert len(shown(browser)) == 2 and summary() == "records 1–2 of 2, newest first"
    search(browser, "cart", since="not a time")  # refused: 400
    assert "400" in browser.find_element(By.ID, "status").text
    assert shown(browser) == [] and summary() == "no records shown: the search failed"

    search(browser, "noise", limit="3")
    assert shown(browser) == ["[6]", "[5]", "[4]"]
    server.process.terminate()  # the next page cannot come
    server.process.wait(10)
    click_and_wait(browser, "next")
    assert browser.find_element(By.ID, "status").text  # the error
    assert shown(browser) == ["[6]", "[5]", "[4]"] and summary() == "records 1–3, newest first"
    assert browser.find_element(By.ID, "page").text == "page 1"


def test_the_token_is_kept_for_the_browser_session_only(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 10)
    connect(browser, server)
    browser.refresh()  # connected again without typing the token
    wait.until(ec.visibility_of_element_located((By.ID, "search-form")))
    assert not browser.find_element(By.ID, "login-form").is_displayed()
    assert TOKEN not in browser.current_url
    storage = browser.execute_script(
        "return [sessionStorage.getItem('safe-data-token'), localStorage.length, document.cookie]"
    )
    assert storage == [TOKEN, 0, ""]

    browser.find_element(By.ID, "disconnect").click()  # forgets it
    assert browser.find_element(By.ID, "login-form").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    browser.refresh()
    assert browser.find_element(By.ID, "login-form").is_displayed()
    assert not browser.find_element(By.ID, "search-section").is_displayed()

    # a saved token the server no longer accepts is dropped, with the server's answer
    browser.execute_script("sessionStorage.setItem('safe-data-token', 'revoked')")
    browser.refresh()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "401"))
    assert browser.execute_script("return sessionStorage.length") == 0
    assert browser.find_element(By.ID, "login-form").is_displayed()


def test_a_phone_width_window_is_usable(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(390, 844)
    connect(browser, server)
    search(browser, "cart")
    browser.find_elements(By.CSS_SELECTOR, "#results button.open")[0].click()
    WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "record")))
    width = browser.execute_script("return window.innerWidth")
    assert width <= 400
    # nothing wider than the window: no sideways scrolling
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    for element_id in ("search", "download", "results", "rec-caller", "disconnect"):
        rect = browser.find_element(By.ID, element_id).rect
        assert rect["x"] >= 0 and rect["x"] + rect["width"] <= width, (element_id, rect)
    # each result a card: every field on a line of its own, in full
    cells = browser.find_elements(By.CSS_SELECTOR, "#results tr.result td")
    assert {c.value_of_css_property("display") for c in cells} == {"block"}
    assert any(c.text.startswith("test_web_browser.py:") for c in cells)
