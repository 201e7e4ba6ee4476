"""The web page of ``play --ensemble trio`` in a real headless browser: the score has a staff per
voice with every voice's sounding notes lit, a column of controls per voice that moves that
voice alone (seen in /state over OSC), and the chords' look-ahead in the status line."""

from __future__ import annotations

import pytest

from bench.harness.wait import wait_for
from bench.harness.browser import BrowserMissing, artifact, console_errors, open_browser
from tests.player import WebPlayer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def band(tmp_path_factory):
    try:
        driver = open_browser()
    except BrowserMissing as missing:
        pytest.skip(str(missing))
    player = WebPlayer(tmp_path_factory.mktemp("band-web"), "127.0.0.1", "--ensemble", "trio")
    yield player, driver
    driver.quit()
    if player.proc.poll() is None:
        player.stop()


def test_the_score_has_a_staff_per_voice_and_lights_every_voice(band, tmp_path):
    player, browser = band
    browser.get(player.url)
    wait_for(lambda: browser.execute_script("const t = S.tunes.get(shownTune); return t && t.voices && t.voices.size") == 2,
               40, "the follower's and the chords' parts")
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('#sheet svg .abcjs-staff').length") >= 3,
               30, "three staves")
    lit = set()

    def voices_lit():  # the voice whose part each lit element of the score is in
        lit.update(browser.execute_script(
            "if (!rendered) return []; const firsts = [...rendered.starts.entries()].filter(([v, a]) => a.length)"
            ".map(([v, a]) => [v, a[0]]).sort((x, y) => x[1] - y[1]);"
            "return [...rendered.lit].map((el) => { let v = 0; for (const [voice, at] of firsts) if (at <= el.startChar) v = voice;"
            " return v; });"))
        return lit >= {1, 2, 3}

    wait_for(voices_lit, 30, "notes of every voice sounding while the score lights them")
    assert "chords look ahead" in browser.find_element("css selector", "#info").text
    shot = artifact("web-page-trio.png", tmp_path)
    browser.save_screenshot(str(shot))
    print(f"screenshot of the trio's page: {shot}")
    assert console_errors(browser) == []


def test_a_voice_s_column_moves_that_voice_alone(band):
    player, browser = band
    columns = wait_for(lambda: browser.find_elements("css selector", "#voices .voice"), 20, "the voices' columns")
    heads = [c.find_element("css selector", ".group").text for c in columns]
    assert [h.lower().split()[:2] for h in heads] == [["1", "lead"], ["2", "follow"], ["3", "chords"]], heads
    slider = columns[1].find_element("css selector", 'input[name="voice.2.cohesion"]')
    before = player.state()
    browser.execute_script("arguments[0].value = 0.2; arguments[0].dispatchEvent(new Event('input'));", slider)
    after = player.wait_for(lambda s: abs(s["voice.2.cohesion"] - 0.2) < 1e-6, 10)
    changed = {k for k in before if k != "status" and before[k] != after[k]}
    assert changed == {"voice.2.cohesion"}, changed
