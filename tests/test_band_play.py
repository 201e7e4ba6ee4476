"""``play --ensemble trio`` over a real JACK server with the shipped model, steered over real OSC:
a voice's parameter moves that voice only, ``/panic`` and SIGTERM leave nothing sounding on any
of the band's channels."""

from __future__ import annotations


import pytest

from bench.harness.jack_server import realtime_jack_server
from bench.harness.midi import Receiver, sounding_after
from bench.harness.wait import wait_for
from bench.harness.osc import osc_message
from instrument.midi.messages import ALL_NOTES_OFF, CONTROL, NOTE_ON, PROGRAM
from instrument.music.timbres import find_timbre
from tests.player import Player

CHANNELS = {0, 1, 2}  # the trio's channels 1, 2, 3 (0-based on the wire)


@pytest.fixture(scope="module")
def band(jack_server, tmp_path_factory):
    with realtime_jack_server():
        receiver = Receiver("band-receiver", "in")
        player = Player(None, "default.yaml", tmp_path_factory.mktemp("band"), "--ensemble", "trio",
                        "--midi-out", "band-receiver", "--midi-api", "jack", "--tempo", "160")
        try:
            yield player, receiver
        finally:
            if player.proc.poll() is None:
                player.proc.kill()
                player.proc.communicate()
            receiver.close()


def channels_sounding(receiver) -> set[int]:
    return {channel for channel, _ in sounding_after(receiver.messages)}


def test_a_voice_s_temperature_over_osc_moves_that_voice_alone(band):
    player, receiver = band
    assert wait_for(lambda: {m[0] & 0x0F for _, m in receiver.of(NOTE_ON) if m[2]} >= CHANNELS, 60), "every voice plays"
    before = player.state()
    assert before["status"]["ensemble"]["name"] == "trio" and before["status"]["step"]["voices"] == 2
    assert before["status"]["ensemble"]["lookahead_ms"] > 0  # the chords hear each beat group whole
    player.send(osc_message("/voice/2/temperature", 2.0))
    after = player.wait_for(lambda s: s["voice.2.temperature"] == 2.0)
    changed = {k for k in before if k != "status" and before[k] != after[k]}
    assert changed == {"voice.2.temperature"}, changed


def test_a_voice_s_timbre_and_the_lead_s_program_reach_the_daw_as_program_changes_on_their_channels(band):
    """FluidSynth changes a voice's instrument live; a DAW on the MIDI port must hear it too."""
    player, receiver = band
    whistle = find_timbre("tin-whistle").program
    seen = len(receiver.messages)
    player.send(osc_message("/voice/2/timbre", "tin-whistle"))
    player.send(osc_message("/program", 40))
    changes = lambda: {(m[0] & 0x0F, m[1]) for _, m in receiver.messages[seen:] if m[0] & 0xF0 == PROGRAM}
    assert wait_for(lambda: {(1, whistle), (0, 40)} <= changes(), 5), changes()


def test_a_muted_voice_falls_silent_at_once_and_the_others_play_on(band):
    player, receiver = band
    assert wait_for(lambda: any(c == 2 for c, _ in sounding_after(receiver.messages)), 30), "a chord sounding"
    player.send(osc_message("/voice/3/mute", 1))
    assert wait_for(lambda: not any(c == 2 for c, _ in sounding_after(receiver.messages)), 10), sounding_after(receiver.messages)
    player.wait_for(lambda s: s["voice.3.mute"] is True)
    seen = len(receiver.messages)
    lead_ons = lambda: [m for _, m in receiver.messages[seen:] if m[0] & 0xF0 == NOTE_ON and m[0] & 0x0F == 0 and m[2]]  # noqa: E731
    wait_for(lambda: len(lead_ons()) >= 4, 30, "four notes of the lead while the chords are muted")
    later = receiver.messages[seen:]
    chords_on = [m for _, m in later if m[0] & 0xF0 == NOTE_ON and m[0] & 0x0F == 2 and m[2]]
    lead_on = [m for _, m in later if m[0] & 0xF0 == NOTE_ON and m[0] & 0x0F == 0 and m[2]]
    assert not chords_on and lead_on, (chords_on, len(lead_on))
    player.send(osc_message("/voice/3/mute", 0))
    assert wait_for(lambda: any(m[0] & 0xF0 == NOTE_ON and m[0] & 0x0F == 2 and m[2] for _, m in receiver.messages[seen:][len(later):]), 10)


def test_panic_leaves_nothing_sounding_on_any_channel(band):
    player, receiver = band
    assert wait_for(lambda: len(channels_sounding(receiver)) >= 2, 30), "two voices sounding at once"
    seen = len(receiver.messages)
    player.send(osc_message("/panic"))

    def silenced() -> list | None:
        after = receiver.messages[seen:]
        offs = [i for i, (_, m) in enumerate(after) if m[0] & 0xF0 == CONTROL and m[1] == ALL_NOTES_OFF]
        if {after[i][1][0] & 0x0F for i in offs} >= CHANNELS:
            return receiver.messages[:seen + max(offs) + 1]
        return None

    assert wait_for(lambda: silenced() is not None, 5), "All Notes Off on every channel of the band"
    assert not sounding_after(silenced()), sounding_after(silenced())


def test_sigterm_leaves_nothing_sounding(band):
    player, receiver = band
    assert wait_for(lambda: len(channels_sounding(receiver)) >= 1, 30)
    err = player.stop()  # SIGTERM
    assert "SIGTERM" in err
    assert wait_for(lambda: not sounding_after(receiver.messages), 3), sounding_after(receiver.messages)
    offs = {m[0] & 0x0F for _, m in receiver.messages if m[0] & 0xF0 == CONTROL and m[1] == ALL_NOTES_OFF}
    assert offs >= CHANNELS
