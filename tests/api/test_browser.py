"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium.

Logs in with an operator token, waits for the network plot (a Bokeh canvas with nonzero size), clicks the
transformer's marker on the plot (a real mouse click at its pixel position, which BokehJS's tap tool turns into a
selection), requests a shedding plan, approves it and dispatches it, checking the page at each step. A screenshot is
saved at each step in ``test-artifacts/browser/`` at the repository root. Selenium downloads nothing: the driver and
browser paths are given.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.api.conftest import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TIMEOUT_S = 20.0


def _chromium_paths() -> tuple[str, str]:
    browser = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    driver = str(CHROMEDRIVER) if CHROMEDRIVER.exists() else shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "chromium/chromium-driver not installed (apt-get install chromium chromium-driver); CI installs them"
        )
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (1400×1500 window) driven by the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1500", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    """Wait for ``condition(driver)`` to be truthy; on timeout fail with what was awaited and the page's message."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        message = driver.execute_script("const m = document.getElementById('message'); return m && m.textContent;")
        logs = [e["message"] for e in driver.get_log("browser")] if hasattr(driver, "get_log") else []
        _shot(driver, "timeout")
        pytest.fail(f"timed out after {timeout} s waiting for {what}; page message: {message!r}; console: {logs[-5:]}")


def _shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _text(driver: Any, element_id: str) -> str:
    script = "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';"
    return str(driver.execute_script(script, element_id))


_CANVAS_SIZE = """
const host = document.querySelector('#network-plot > *');
if (!host) { return null; }
const stack = [host];
while (stack.length) {
  const el = stack.pop();
  if (el.tagName === 'CANVAS' && el.width > 0 && el.height > 0) { return [el.width, el.height]; }
  if (el.shadowRoot) { stack.push(...el.shadowRoot.children); }
  stack.push(...el.children);
}
return null;
"""


_PLAN_IDS = "return Array.from(document.querySelectorAll('#plans-table tr[data-plan-id]'), (r) => r.dataset.planId);"


def _plan_status(driver: Any) -> str:
    return _text(driver, "plan-status")


def test_dashboard_login_plot_click_plan_approve_dispatch(browser: Any, live_server: LiveServer) -> None:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    started = time.monotonic()
    driver = browser
    for old in ARTIFACTS.glob("*.png") if ARTIFACTS.exists() else []:
        old.unlink()

    # 1. without a token the dashboard sends the browser to the login page; a wrong token is refused
    driver.get(live_server.url + "/dashboard")
    _wait(driver, lambda d: d.current_url.rstrip("/") == live_server.url, "redirect to the login page")
    driver.find_element(By.ID, "token").send_keys("gt_00000000_wrong")
    driver.find_element(By.ID, "login-button").click()
    _wait(driver, lambda d: "unknown or wrong token" in _text(d, "login-status"), "the refusal of a wrong token")
    _shot(driver, "01-login-refused")

    # 2. log in with the operator token
    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(live_server.tokens["operator"])
    driver.find_element(By.ID, "login-button").click()
    _wait(driver, lambda d: d.current_url.endswith("/dashboard"), "the dashboard after login")
    _wait(driver, lambda d: "(operator)" in _text(d, "who"), "the role shown in the header")

    # 3. the network plot is rendered: a Bokeh canvas of nonzero size
    size = _wait(driver, lambda d: d.execute_script(_CANVAS_SIZE), "a rendered network canvas")
    assert size[0] > 200, size
    assert size[1] > 200, size
    _wait(driver, lambda d: _text(d, "updated").startswith("updated "), "the 'updated hh:mm:ss' stamp")
    rendered = "return document.getElementById('trafo-plot').dataset.rendered === 'true';"
    _wait(driver, lambda d: d.execute_script(rendered), "the transformer plot")
    assert driver.execute_script("return typeof Bokeh") == "object"  # BokehJS served by gridtwin, no CDN
    _shot(driver, "02-dashboard")

    # the alarm table (the demo's alarms are cleared by now: include them)
    driver.find_element(By.ID, "alarms-all").click()
    _wait(driver, lambda d: "overload-risk" in _text(d, "alarms-table"), "the overload alarm in the alarm table")
    assert driver.find_elements(By.CSS_SELECTOR, "#alarms-table button")  # Ack offered to an operator

    # 4. clear the selection with the page's selector, then click the transformer's marker on the plot
    trafo = driver.execute_script("return document.getElementById('trafo-select').options[1].value;")
    Select(driver.find_element(By.ID, "trafo-select")).select_by_value("")
    _wait(driver, lambda d: _text(d, "request-plan") == "Request plan", "the selection cleared")
    point = driver.execute_script("return window.gridtwinTrafoPoint(arguments[0]);", trafo)
    assert point is not None, "the transformer marker is not on the network plot"
    builder = ActionBuilder(driver)
    builder.pointer_action.move_to_location(int(point["x"]), int(point["y"])).click()
    builder.perform()
    _wait(
        driver,
        lambda d: _text(d, "request-plan") == f"Request plan for {trafo}",
        "the transformer selected by the click",
    )
    _shot(driver, "03-transformer-clicked")

    # 5. request a plan for it: listed as proposed
    before = set(driver.execute_script(_PLAN_IDS))
    driver.find_element(By.ID, "request-plan").click()
    _wait(
        driver,
        lambda d: _text(d, "plan-title") not in before and _plan_status(d) == "proposed",
        "the requested plan, proposed",
        timeout=40,
    )
    plan_id = _text(driver, "plan-title")
    assert plan_id in driver.execute_script(_PLAN_IDS)
    assert f"protects {trafo}" in _text(driver, "plan-summary")
    assert driver.find_elements(By.CSS_SELECTOR, "#commands-table tbody tr td")
    _shot(driver, "04-plan-proposed")

    # 6. approve it
    driver.find_element(By.ID, "approve-plan").click()
    _wait(driver, lambda d: _plan_status(d) == "approved", "the plan approved")
    row = driver.find_element(By.CSS_SELECTOR, f"#plans-table tr[data-plan-id='{plan_id}'] .status-cell")
    assert row.text == "approved"
    _shot(driver, "05-plan-approved")

    # 7. dispatch it (in-process simulated gateways): executed
    driver.find_element(By.ID, "dispatch-plan").click()
    _wait(driver, lambda d: _plan_status(d) in ("executed", "partially executed", "failed"), "the plan's execution")
    assert _plan_status(driver) == "executed"
    _shot(driver, "06-plan-executed")

    # 8. live update: a plan requested by someone else appears without any click (the page polls the version)
    version = driver.execute_script("return document.getElementById('updated').dataset.version;")
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        r = client.post(
            "/api/v1/plans", json={"assets": [trafo], "horizon": "6h"}, headers=live_server.headers("admin")
        )
    assert r.status_code == 201, r.text
    other = r.json()["plan_id"]
    _wait(driver, lambda d: other in d.execute_script(_PLAN_IDS), "the other plan listed by the live update")
    assert driver.execute_script("return document.getElementById('updated').dataset.version;") != version
    assert _text(driver, "updated").startswith("updated ")
    _shot(driver, "07-live-update")
    # no script error, no blocked resource (CSP), no failed request other than the wrong token's 401
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert [m for m in errors if "status of 401" not in m] == []
    assert time.monotonic() - started < 60


def test_viewer_sees_the_dashboard_but_cannot_operate(browser: Any, live_server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(live_server.url + "/")
    driver.find_element(By.ID, "token").send_keys(live_server.tokens["viewer"])
    driver.find_element(By.ID, "login-button").click()
    _wait(driver, lambda d: "(viewer)" in _text(d, "who"), "the viewer's dashboard")
    _wait(driver, lambda d: d.execute_script(_CANVAS_SIZE), "a rendered network canvas")
    for button in ("request-plan", "approve-plan", "reject-plan", "dispatch-plan"):
        assert not driver.find_element(By.ID, button).is_enabled(), button
    driver.find_element(By.ID, "alarms-all").click()
    _wait(driver, lambda d: "overload-risk" in _text(d, "alarms-table"), "the alarm table")
    assert not driver.find_elements(By.CSS_SELECTOR, "#alarms-table button")  # no Ack for a viewer
    _shot(driver, "08-viewer")
    driver.find_element(By.ID, "logout").click()
    _wait(driver, lambda d: d.current_url.rstrip("/") == live_server.url, "the login page after signing out")
    assert driver.execute_script("return sessionStorage.getItem('gridtwin.token')") is None
