"""A headless chromium for the dashboard tests (Debian's chromium and chromium-driver, through
selenium), with a screenshot of each step kept as a test artifact."""
from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from stackfleet.openstack.venv import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT = 90.0  # a first page of each panel loads its Python on a busy box
ARTIFACTS = Path(os.environ.get("STACKFLEET_ARTIFACTS", REPO_ROOT / "artifacts")) / "dashboard"


class Browser:
    """One headless chromium, with a screenshot per step."""

    def __init__(self, artifacts: Path) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # --no-sandbox: chromium's sandbox refuses to run as root, which the OpenStack tests are.
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=1400,1000"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(PAGE_TIMEOUT)
        self.artifacts = artifacts
        self.shots: list[Path] = []
        artifacts.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), path
        self.shots.append(path)
        return path

    def wait_for(self, css: str, timeout: float = PAGE_TIMEOUT) -> WebElement:
        return WebDriverWait(self.driver, timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def log_in(self, base: str, user: str, password: str, step: str) -> None:
        """Horizon's login form: `username`, `password`, then the Sign In button."""
        self.driver.get(f"{base}/auth/login/")
        self._sign_in(user, password, f"{step}-1-login")
        try:
            WebDriverWait(self.driver, PAGE_TIMEOUT).until(
                lambda d: "/auth/login" not in d.current_url)
        finally:
            self.shot(f"{step}-2-logged-in")

    def _sign_in(self, user: str, password: str, shot: str) -> None:
        self.wait_for("input[name=username]").send_keys(user)
        self.wait_for("input[name=password]").send_keys(password)
        self.shot(shot)
        self.wait_for("#loginBtn").click()

    def open_instances(self, step: str) -> str:
        """Project -> Compute -> Instances through the side menu's link; returns the table text."""
        # The side menu opens Project and Compute on the overview that a login lands on.
        WebDriverWait(self.driver, PAGE_TIMEOUT).until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, "#sidebar a[href='/project/instances/']"))).click()
        table = self.wait_for("table#instances")
        self.shot(f"{step}-3-instances")
        return str(table.text)

    def lists_the_server(self, base: str, user: str, password: str, server_id: str, step: str) -> str:
        """Logs in at BASE and opens Project -> Compute -> Instances, where the server must be
        listed and active: its row's text."""
        self.log_in(base, user, password, step)
        table = self.open_instances(step)
        row = self.wait_for(f"tr[data-object-id='{server_id}']")
        assert "Active" in row.text, table
        return str(row.text)

    def reload_lists_the_server(self, user: str, password: str, server_id: str, step: str) -> str:
        """The page that is still open, reloaded: Horizon asks for a login again if the session
        is gone (a new controller's memcached), and then shows the same page."""
        self.driver.refresh()
        WebDriverWait(self.driver, PAGE_TIMEOUT).until(
            lambda d: "/auth/login" in d.current_url or d.find_elements(By.CSS_SELECTOR, "table#instances"))
        if "/auth/login" in self.driver.current_url:
            self._sign_in(user, password, f"{step}-1-login-again")
        row = self.wait_for(f"tr[data-object-id='{server_id}']")
        self.shot(f"{step}-2-instances")
        assert "/project/instances/" in self.driver.current_url, self.driver.current_url
        assert "Active" in row.text, row.text
        return str(row.text)

    def quit(self) -> None:
        self.driver.quit()


def chromium_missing() -> str | None:
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            return f"needs {tool}: run scripts/install (chromium, chromium-driver)"
    return None
