"""The web page in a real headless browser on a running ``play``, as a performer meets it: the
page loads with no console errors and shows the tune being written as notation, a slider moved
in the page changes /state over OSC and an OSC change moves the slider, the XY pad plays through
the patch, a page from another origin cannot open the socket, on another address control needs
the printed token, and a recorded take opens on the same page. Screenshots go to the test log."""

from __future__ import annotations

import re
import subprocess
import threading
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from instrument.music.tunes import abc_body_tokens
from bench.harness.wait import wait_for
from bench.harness.browser import BrowserMissing, artifact, console_errors, open_browser
from bench.harness.net import free_tcp_port
from tests.helpers import ROOT
from bench.harness.osc import osc_message
from tests.player import WebPlayer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def player(tmp_path_factory):
    p = WebPlayer(tmp_path_factory.mktemp("web"))
    yield p
    if p.proc.poll() is None:
        p.stop()


@pytest.fixture(scope="module")
def browser():
    try:
        driver = open_browser()
    except BrowserMissing as missing:
        pytest.skip(str(missing))
    yield driver
    driver.quit()


def page_tune(browser) -> dict | None:
    return browser.execute_script(
        "const n = shownTune, t = S.tunes.get(n); return t ? {number: n, pieces: t.pieces, ended: t.ended} : null;")


def test_the_page_loads_clean_and_shows_the_tune_as_it_is_written(player, browser, tmp_path):
    browser.get(player.url)
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('#sheet svg .abcjs-note').length") > 3,
               30, "notes in the sheet music")
    tune = page_tune(browser)
    title = browser.execute_script("return document.querySelector('#sheet svg .abcjs-title').textContent")
    assert title == f"folk-instrument tune {tune['number']}"
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('#sheet svg .sounding').length") > 0,
               10, "a sounding note lit in the notation")
    wait_for(lambda: browser.execute_script("return S.columns.length") > 2, 10, "the network's activity")
    shot = artifact("web-page-live.png", tmp_path)
    browser.save_screenshot(str(shot))
    print(f"screenshot of the live page: {shot}")
    assert console_errors(browser) == []
    # the tune ends (a new one is asked for): the page holds the very tune the recording writes
    number = page_tune(browser)["number"]
    player.send(osc_message("/tune/new", 1))
    abc = player.take.with_suffix(".abc")
    wait_for(lambda: (browser.execute_script("const t = S.tunes.get(arguments[0]); return t && t.ended;", number)), 10, "the end")
    # the page's pieces are spelled as drawn (a tuplet's sign with its first note, '(3G'): read as tokens
    pieces = abc_body_tokens(" ".join(browser.execute_script("return S.tunes.get(arguments[0]).pieces;", number)))
    # the take's checkpoints hold the tune as it stood while it was written; the ended tune is
    # written at once, and it must be the very tune the page shows
    recorded = lambda: abc_body_tokens(_abc_body(abc.read_text(), number) or "")
    try:
        wait_for(lambda: recorded() == pieces, 20, f"tune {number} in the recording as the page shows it")
    except AssertionError:
        assert pieces == recorded(), f"the page's tune {number}: {pieces}; the recording's: {recorded()}"


def _abc_body(text: str, number: int) -> str | None:
    match = re.search(rf"^X:{number}\n(?:.*\n)*?K:.*\n(.*)\n", text, re.M)
    return match.group(1) if match else None


def _slider(browser, name: str):
    return browser.find_element("css selector", f'#controls input[name="{name}"]')


def test_a_slider_moved_in_the_page_changes_state_over_osc(player, browser):
    from selenium.webdriver.common.keys import Keys

    browser.get(player.url)
    slider = wait_for(lambda: browser.find_elements("css selector", '#controls input[name="temperature"]'), 20, "controls")[0]
    slider.send_keys(Keys.END)  # a keyboard user's way to the top of the range
    state = player.wait_for(lambda s: s["temperature"] == 4.0)
    assert state["temperature"] == 4.0
    slider.send_keys(Keys.HOME)
    player.wait_for(lambda s: s["temperature"] == 0.0)
    wait_for(lambda: "by web" in browser.find_element("css selector", '.control[data-name="temperature"] .source').text, 5, "source")
    assert console_errors(browser) == []


def test_an_osc_change_moves_the_slider(player, browser):
    browser.get(player.url)
    wait_for(lambda: browser.find_elements("css selector", '#controls input[name="swing"]'), 20, "controls")
    player.send(osc_message("/swing", 0.7))
    wait_for(lambda: _slider(browser, "swing").get_attribute("value") == "0.7", 5, "the slider at 0.7")
    assert "by OSC /swing" in browser.find_element("css selector", '.control[data-name="swing"] .source').text


def test_the_xy_pad_plays_the_patch(player, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(player.url)
    pad = wait_for(lambda: browser.find_elements("css selector", "#pad:not(.disabled)"), 20, "the pad")[0]
    size = pad.size
    # top right: x = 1 (temperature 2.0 in the default patch), y = 1 (stimulation weight 1)
    ActionChains(browser).move_to_element_with_offset(pad, size["width"] // 2 - 2, -size["height"] // 2 + 2) \
        .click_and_hold().pause(0.2).release().perform()
    state = player.wait_for(lambda s: s["temperature"] > 1.9 and s["stimulation.weight"] > 0.95)
    assert state["temperature"] <= 2.0
    assert "pad" in browser.find_element("css selector", '.control[data-name="temperature"] .source').text


ATTACK = """<!doctype html><title>waiting</title><script>
const ws = new WebSocket("ws://127.0.0.1:%d/ws");
ws.onopen = () => { ws.send(JSON.stringify({op: "set", name: "transpose", value: 12})); document.title = "open"; };
ws.onerror = () => { document.title = "refused"; };
</script>"""


def test_a_page_from_another_origin_cannot_open_the_socket(player, browser):
    port = player.web_port

    class Attack(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (ATTACK % port).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Attack)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{site.server_address[1]}/")
        wait_for(lambda: browser.title != "waiting", 10, "the foreign page's attempt")
        assert browser.title == "refused"
        assert player.state()["transpose"] == 0
        console_errors(browser)  # the refusal is logged by the browser: expected here
    finally:
        site.shutdown()
        site.server_close()
    assert any("Origin 'http://127.0.0.1:" in line and "refused" in line for line in player.err.lines)


def test_on_another_address_control_needs_the_printed_token(tmp_path, browser):
    from selenium.webdriver.common.keys import Keys

    guarded = WebPlayer(tmp_path, host="0.0.0.0")
    try:
        assert "?token=" in guarded.url
        bare = guarded.url.split("?")[0]
        browser.get(bare)
        wait_for(lambda: browser.find_element("css selector", "#view-only").is_displayed(), 20, "the view-only notice")
        slider = _slider(browser, "temperature")
        assert not slider.is_enabled()
        browser.execute_script("send({op: 'set', name: 'temperature', value: 3})")  # a page that tries anyway
        browser.get(guarded.url)
        slider = wait_for(lambda: [e for e in browser.find_elements("css selector", '#controls input[name="temperature"]')
                                     if e.is_enabled()], 20, "enabled controls")[0]
        assert not browser.find_element("css selector", "#view-only").is_displayed()
        slider.send_keys(Keys.END)
        guarded.wait_for(lambda s: s["temperature"] == 4.0)
        assert console_errors(browser) == []
    finally:
        browser.get("about:blank")  # no page left reconnecting to a stopped player
        err = guarded.stop()
    assert "control needs the token" in err


def test_a_recorded_take_opens_on_the_same_page_with_a_time_slider(player, browser, tmp_path):
    browser.get("about:blank")
    player.stop()
    console_errors(browser)  # what earlier pages left in the log
    port = free_tcp_port()
    view = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "view", str(player.take), "--web", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = view.stderr.readline() + view.stderr.readline()
        assert f"web page: http://127.0.0.1:{port}/" in line, line
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for(lambda: (browser.execute_script("return take && S.notes.length") or 0) > 10, 20, "the take's notes")
        assert browser.find_element("css selector", "#time").is_displayed()
        assert not browser.find_element("css selector", "#pad").is_displayed()
        aligned = browser.execute_script("return S.notes.filter(n => n.tok >= 0).length / S.notes.length")
        assert aligned > 0.9  # notes tied back to their place in the notation
        # move the time slider onto a note: it is lit in the notation of its tune
        note = browser.execute_script("return S.notes[Math.floor(S.notes.length / 2)]")
        browser.execute_script("const s = document.getElementById('time'); s.value = arguments[0]; s.dispatchEvent(new Event('input'));",
                               (note["on"] + note["off"]) / 2)
        # the page redraws at its next frame: until then the sheet shown before the move may be lit
        lit = "return shownTune === arguments[0] && rendered && rendered.number === arguments[0] && " \
              "document.querySelectorAll('#sheet svg .sounding').length > 0"
        wait_for(lambda: browser.execute_script(lit, note["tune"]), 10, f"the note at the slider lit in tune {note['tune']}")
        shot = artifact("web-page-take.png", tmp_path)
        browser.save_screenshot(str(shot))
        print(f"screenshot of a take's page: {shot}")
        assert console_errors(browser) == []
    finally:
        view.terminate()
        view.wait(10)
    assert view.returncode == 0
