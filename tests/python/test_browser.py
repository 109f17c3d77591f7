"""A real browser (Debian's headless Chromium through chromedriver) logs in with a
password and a TOTP code from an independent implementation (pyotp), sees the home
page, and is logged out after the idle timeout (set to 3 seconds for the test).
Screenshots go to $LIANYI_SCREENSHOTS when set."""
import os
import shutil
import re
import tempfile
import time

import pyotp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Server

IDLE_SECS = 3


@pytest.fixture(scope="module")
def web():
    s = Server(config=f"session_idle_secs = {IDLE_SECS}\n")
    out = s.cli("user", "add", "dr.web", "--name", "网页 测试医生", "--role", "doctor@campus-east")
    password = re.search(r"initial password: (\S+)", out).group(1)
    s.start()
    yield s, password
    s.stop()


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="lianyi-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--lang=zh-CN", "--window-size=1100,900", f"--user-data-dir={profile}",
    ]:
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(driver, name):
    folder = os.environ.get("LIANYI_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        driver.save_screenshot(os.path.join(folder, name + ".png"))


def wait_url(driver, fragment):
    """Waits for a navigation started by a click to land."""
    WebDriverWait(driver, 10).until(EC.url_contains(fragment))
    return driver.current_url


def fill(driver, field, value):
    el = driver.find_element(By.ID, field)
    el.clear()
    el.send_keys(value)


def test_login_with_password_and_totp_then_idle_logout(web, browser):
    server, password = web
    # localhost, so Chromium accepts the Secure __Host- cookies over plain http.
    base = server.base.replace("127.0.0.1", "localhost")
    browser.get(base + "/")
    assert browser.current_url.endswith("/login")
    assert "登录" in browser.title
    fill(browser, "username", "dr.web")
    fill(browser, "password", password)
    shot(browser, "1-login")
    browser.find_element(By.ID, "submit").click()

    assert wait_url(browser, "/login/password").endswith("/login/password")
    fill(browser, "current", password)
    fill(browser, "new", "browser tested passphrase")
    fill(browser, "confirm", "browser tested passphrase")
    browser.find_element(By.ID, "submit").click()

    assert wait_url(browser, "/login/enrol").endswith("/login/enrol")
    assert browser.find_element(By.CSS_SELECTOR, "figure.qr svg")
    secret = browser.find_element(By.ID, "totp-secret").text.strip()
    shot(browser, "2-enrol")
    fill(browser, "code", pyotp.TOTP(secret).now())
    browser.find_element(By.ID, "submit").click()

    WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.ID, "welcome")))
    assert browser.current_url.rstrip("/") == base
    welcome = browser.find_element(By.ID, "welcome").text
    assert "网页 测试医生" in welcome and "欢迎" in welcome
    assert "campus-east" in browser.find_element(By.ID, "roles").text
    shot(browser, "3-home")

    # No activity for longer than the idle timeout: the next page is the login page.
    time.sleep(IDLE_SECS + 1.5)
    browser.get(base + "/")
    assert "/login" in browser.current_url and "m=expired" in browser.current_url
    assert "会话已超时" in browser.find_element(By.ID, "message").text
    shot(browser, "4-expired")

    # The language switch keeps the page and changes its language.
    browser.find_element(By.ID, "lang-switch").click()
    WebDriverWait(browser, 10).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Log in"))
