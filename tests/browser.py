"""Headless Chromium for the tests that look at a page as a person would: Debian's
``chromium`` and ``chromium-driver``, installed by the test set-up with apt-get when missing
(as root). Where they cannot be had the tests skip with the reason, except in CI (CI=true),
where they fail: CI must run them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _install() -> str | None:
    """Install chromium with apt-get; the reason it could not be, or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine to install Debian's chromium"
    if os.geteuid() != 0:
        return "chromium is missing and installing it with apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            return f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}"
    return None


def chrome_driver():
    """A headless Chromium WebDriver that keeps the page's console log."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return _unavailable("selenium is not installed (pip install -e '.[test]')")
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        reason = _install()
        if reason:
            return _unavailable(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)
