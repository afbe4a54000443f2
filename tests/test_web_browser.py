"""The page in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against the real daemon (replay camera, real embedder, real
mosquitto).  Screenshots of each step are saved under the test's temp dir
(``screenshots/NN-step.png``; keep them with ``--basetemp DIR``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from conftest import IMAGES, wait_until
from webclient import PASSWORD, web_section

from edgeknn.cameras import ReplayCamera

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCENES = {
    "cat": [IMAGES / "imprinting" / f for f in ("cat_train_0.bmp", "cat_test_0.bmp")] + [IMAGES / "cat.bmp"],
    "dog": [IMAGES / "imprinting" / f for f in ("dog_train_0.bmp", "dog_test_0.bmp")],
}
CLASSES = "edgeknn/testpi/classes"
WAIT = 20.0


class ReplayScenes:
    """A replay camera per scene; the test switches which one the daemon sees."""

    name = "replay scenes"

    def __init__(self, scenes: dict[str, list[Path]], fps: float = 10.0) -> None:
        self._cameras = {name: ReplayCamera(paths, fps=fps) for name, paths in scenes.items()}
        self.scene = next(iter(scenes))

    def show(self, scene: str) -> None:
        self.scene = scene

    def open(self) -> None:
        for camera in self._cameras.values():
            camera.open()

    def read(self):
        return self._cameras[self.scene].read()

    def close(self) -> None:
        for camera in self._cameras.values():
            camera.close()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless chromium with a fresh profile; its console is read at the end of the test."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium is not installed: apt-get install chromium chromium-driver (./dev.sh test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1200,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


class Page:
    """The test's view of the page: finds, waits, and a numbered screenshot per step."""

    def __init__(self, driver, shots: Path) -> None:
        self.driver, self.shots, self.n = driver, shots, 0
        shots.mkdir()

    def shot(self, name: str) -> None:
        self.n += 1
        self.driver.save_screenshot(str(self.shots / f"{self.n:02d}-{name}.png"))

    def one(self, css: str):
        return self.driver.find_element("css selector", css)

    def all(self, css: str):
        return self.driver.find_elements("css selector", css)

    def card(self, label: str):
        found = [c for c in self.all("#classes .card") if c.get_attribute("data-label") == label]
        return found[0] if found else None

    def count(self, label: str) -> int:
        card = self.card(label)
        return int(card.get_attribute("data-count")) if card is not None else -1

    def predicted(self) -> str:
        return self.one("#prediction-label").get_attribute("data-label") or ""

    def wait(self, condition, what: str) -> None:
        """Until ``condition`` holds; elements not there yet, or replaced meanwhile, are a no."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        def holds() -> bool:
            try:
                return bool(condition())
            except (NoSuchElementException, StaleElementReferenceException):
                return False
        wait_until(holds, timeout=WAIT, what=what)

    def hold(self, element, seconds: float) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).click_and_hold(element).pause(seconds).release().perform()

    def add_class(self, label: str) -> None:
        self.one("#new-label").send_keys(label)
        self.one("#new-class button").click()
        self.wait(lambda: self.card(label) is not None, f"a card for {label}")


def test_teach_two_classes_watch_the_prediction_then_prune_and_rename(running, listen, browser, tmp_path):
    watch = listen("edgeknn/testpi/#")
    camera = ReplayScenes(SCENES)
    daemon = running(camera, web=web_section(tmp_path), gpio={"hold_time": 0.4, "record_rate": 5.0})
    wait_until(lambda: daemon.processor.processed > 0, what="a first frame processed")
    page = Page(browser, tmp_path / "screenshots")

    browser.get(daemon.web.url)
    page.wait(lambda: page.one("#status dd").text != "", "the status panel")
    page.wait(lambda: "readonly" in page.one("body").get_attribute("class"), "a read-only page before login")
    assert not page.one("#new-class").is_displayed()  # nothing to change before logging in
    page.shot("before-login")
    page.one("#password").send_keys(PASSWORD)
    page.one("#login button").click()
    page.wait(lambda: "readonly" not in page.one("body").get_attribute("class"), "the page to allow writes")

    # teach "cat" by pressing and holding while the camera sees the cat
    page.add_class("cat")
    page.hold(page.card("cat").find_element("css selector", ".teach"), 1.5)
    page.wait(lambda: page.count("cat") >= 2, "a hold to record several cat examples")
    time.sleep(0.8)  # a request in flight at release may still land
    held = page.count("cat")
    time.sleep(1.0)
    assert page.count("cat") == held  # recording stopped on release
    page.shot("cat-taught")

    camera.show("dog")
    page.add_class("dog")
    page.hold(page.card("dog").find_element("css selector", ".teach"), 1.5)
    page.wait(lambda: page.count("dog") >= 2, "a hold to record several dog examples")
    page.wait(lambda: page.predicted() == "dog", "the prediction on the page to say dog")
    page.shot("dog-taught")

    camera.show("cat")
    page.wait(lambda: page.predicted() == "cat", "the prediction to switch to cat with the replay")
    bars = {b.get_attribute("data-label") for b in page.all("#bars .bar")}
    assert bars == {"cat", "dog"}
    page.shot("sees-cat")
    camera.show("dog")
    page.wait(lambda: page.predicted() == "dog", "the prediction to switch back to dog")

    # delete one example from its thumbnail: the count drops, and MQTT agrees
    cats = page.count("cat")
    page.wait(lambda: len(page.card("cat").find_elements("css selector", ".thumb")) == min(cats, 24), "thumbnails")
    page.card("cat").find_element("css selector", ".thumb .delete").click()
    page.wait(lambda: page.count("cat") == cats - 1, "the cat count to drop by one")
    dogs = page.count("dog")
    expected = {"cat": cats - 1, "dog": dogs}
    wait_until(lambda: watch.on(CLASSES)[-1].json() == expected, what=f"MQTT classes {expected}")
    assert daemon.engine.store.counts() == expected
    page.shot("one-cat-deleted")

    # rename dog -> puppy
    card = page.card("dog")
    card.find_element("css selector", ".rename").click()
    field = card.find_element("css selector", ".rename-to")
    field.clear()
    field.send_keys("puppy")
    card.find_element("css selector", ".rename-form button[type=submit]").click()
    page.wait(lambda: page.card("puppy") is not None and page.card("dog") is None, "the card to be renamed")
    assert page.count("puppy") == dogs
    wait_until(lambda: watch.on(CLASSES)[-1].json() == {"cat": cats - 1, "puppy": dogs}, what="MQTT rename")
    page.wait(lambda: page.predicted() == "puppy", "the prediction to use the new name")
    page.shot("renamed")

    # a click (no hold) adds exactly one example
    camera.show("cat")
    before = page.count("cat")
    page.card("cat").find_element("css selector", ".teach").click()
    page.wait(lambda: page.count("cat") == before + 1, "one more cat example from a click")
    time.sleep(1.0)
    assert page.count("cat") == before + 1

    browser.set_window_size(390, 1600)  # a phone
    page.shot("phone")

    # clearing a class asks first; cancelling keeps it
    card = page.card("puppy")
    card.find_element("css selector", ".clear").click()
    question = card.find_element("css selector", ".confirm .question")
    page.wait(lambda: question.is_displayed() and f"Delete all {dogs} examples" in question.text, "the question")
    page.shot("clear-asks")
    card.find_element("css selector", ".confirm .cancel").click()
    assert page.count("puppy") == dogs and not question.is_displayed()
    card.find_element("css selector", ".clear").click()
    card.find_element("css selector", ".confirm .yes").click()
    page.wait(lambda: page.card("puppy") is None, "the class to be gone")
    wait_until(lambda: watch.on(CLASSES)[-1].json() == {"cat": before + 1}, what="MQTT classes after clear")

    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")]
    assert problems == []


def test_with_protected_reads_the_page_shows_nothing_until_login(running, browser, tmp_path):
    daemon = running(ReplayScenes(SCENES), web=web_section(tmp_path, protect_reads=True))
    wait_until(lambda: daemon.processor.processed > 0, what="a first frame processed")
    page = Page(browser, tmp_path / "screenshots")
    browser.get(daemon.web.url)
    page.wait(lambda: "Log in" in page.one("#message").text, "the page to ask for a login")
    assert page.one("#status").text == "" and not page.one("#live").get_attribute("src")
    page.shot("protected")
    page.one("#password").send_keys(PASSWORD)
    page.one("#login button").click()
    page.wait(lambda: page.one("#status dd").text != "", "the status panel after login")
    page.wait(lambda: page.predicted() == "" and page.one("#prediction-label").text == "nothing taught yet",
              "the live prediction after login")
    assert "/stream.mjpeg" in page.one("#live").get_attribute("src")
    page.shot("logged-in")
    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")]
    assert problems == []
