"""The web view in a real headless browser: a `safe-data serve --journal DIR` process,
driven by selenium through chromium: connect, search, open a record, download a restore.

Skipped when selenium, chromium or chromedriver is missing (Debian: the ``chromium`` and
``chromium-driver`` packages).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")

import safe_data  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="the browser test needs chromium and chromedriver "
                                       "(Debian: apt-get install chromium chromium-driver)")

TOKEN = "browser-token-0123456789abcdef"
XSS = "<script>document.title='owned'</script><img src=x onerror=\"document.title='owned'\">"


def fill(path) -> None:
    with safe_data.Journal(path) as journal:
        cart = safe_data.SafeList(["apple", XSS, "eggs"], name="cart", journal=journal,
                                  capture_caller=True)
        cart.pop()
        cart.pop()
        orders = safe_data.SafeList([1, 2, 3], name="orders", journal=journal, versioned=True)
        orders.append(4)
        orders.pop(0)


@pytest.fixture
def server(tmp_path):
    journal = tmp_path / "journal"
    fill(journal)
    env = dict(os.environ, SAFE_DATA_TOKENS=f"alpha:{TOKEN}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "safe_data", "serve", "--store", str(tmp_path / "store"),
         "--journal", str(journal), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), (line, proc.stderr.read())
        yield line.split()[-1]
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
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "download.directory_upgrade": True, "safebrowsing.enabled": False})
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
    browser.get(server + "/ui/")
    assert browser.title == "safe-data: discarded values"

    # a wrong token is refused, the right one connects
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "connect").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "401"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "connect").click()
    wait.until(ec.visibility_of_element_located((By.ID, "search-form")))
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    assert Select(browser.find_element(By.ID, "source")).first_selected_option.get_attribute(
        "value") == "journal"

    # search a container
    browser.find_element(By.ID, "container").send_keys("cart")
    browser.find_element(By.ID, "search").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tr.result")) == 2)
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tr.result")
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [c[1:4] for c in cells] == [["cart", "pop", "2"], ["cart", "pop", "1"]]
    assert cells[1][4].startswith("['<script>document.title=")  # the markup shows as text
    assert cells[1][5].startswith("test_web_browser.py:") and cells[1][5].endswith(" in fill")

    # open the record: its caller and its values, as text
    rows[1].find_element(By.CSS_SELECTOR, "button.open").click()
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
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.exists(), (os.listdir(browser.downloads),
                             browser.find_element(By.ID, "status").text)
    assert json.loads(target.read_text()) == [2, 3, 4]
    assert browser.find_element(By.ID, "status").text == "downloaded orders-restore.json"

    # a plain container cannot be restored exactly: the page says why
    restore_container.clear()
    restore_container.send_keys("cart")
    browser.find_element(By.ID, "download").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "409"))
    assert "partial" in browser.find_element(By.ID, "status").text
