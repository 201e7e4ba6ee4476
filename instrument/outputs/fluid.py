"""FluidSynth as the built-in sound: SoundFont instruments rendered in C, notes placed by its own sequencer.

Why FluidSynth: the numpy synth renders each block in Python, so every block needs the GIL,
which the model thread, the timing thread and the live view also want. FluidSynth's audio
driver (JACK, PipeWire, PulseAudio, ALSA, CoreAudio, ...) renders in its own C thread and never
runs Python, so nothing Python does can make it drop out.

Why its sequencer: a note is handed over ahead of time (from the model thread) with its time
on the synth's own sample clock. The sequencer is driven by the synth's rendering (a "sample
timer": ``new_fluid_sequencer2(0)`` registered with the synth), so a note starts in the audio
block in which its time falls (FluidSynth works in 64-sample blocks and whole milliseconds:
within ~2.3 ms at 48 kHz, and the same for every note), however late any Python thread runs.
Offline, ``render_with_fluidsynth`` drives the same synth and sequencer with ``fluid_synth_write_float``, so a
rendered take sounds as the live one does.

Clock mapping (``stream_clock.StreamClock``, as the numpy synth's): the sequencer's tick counts milliseconds of audio rendered. An
audio driver renders a period at the start of each cycle, before it is played, so
``tick/1000 - clock()`` read right after a render is the stream's lead over ``clock()``; read
later in the cycle it is smaller. The largest lead read over the last second is the mapping:
a note due at ``t`` is given tick ``(t + lead) * 1000``, the cycle after the one in which ``t``
falls, which is when a JACK MIDI message sent at ``t`` reaches its port too. Reads come with
every note scheduled and every status line; the largest wins, so a late read never moves a note.

The binding is our own few ctypes declarations; the ``pyfluidsynth`` package only finds the
library on each system (Linux, macOS's Homebrew, Windows).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import io
import logging
import math
import os
import threading
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from instrument.errors import UsageError
from instrument.music.timbres import GmTimbre
from instrument.outputs import VoiceSound, pan_cc
from instrument.music.tunes import Tune
from instrument.music.phrasing import ScheduledNote
from instrument.outputs.stream_clock import StreamClock
from instrument.outputs.synth import AudioUnavailable
from instrument.timing import clock

log = logging.getLogger("instrument.fluidsynth")

INSTALL = ("apt-get install libfluidsynth3 timgm6mb-soundfont && pip install pyfluidsynth "
           "(macOS: brew install fluid-synth)")
CHANNEL = 0  # the lead's channel in FluidSynth (voice N plays on its own: ``voice_channel``), whatever the MIDI channel
DRUMS = 9  # FluidSynth's channel 10 plays General MIDI's drums: no voice plays there
TICKS_PER_S = 1000  # the sequencer's tick: FluidSynth's sample timer advances it in whole milliseconds
LEAD_WINDOW_S = 1.0
RELEASE_S = 0.25  # after panic (All Notes Off), All Sounds Off ends what still rings
GAIN = 0.5
_OK, _FAILED = 0, -1

# Where systems put a General MIDI SoundFont (FluidSynth's own compiled-in default is asked first).
SOUNDFONT_FILES = (
    "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/default.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default-GM.sf2",
    "/usr/local/share/soundfonts/default.sf2", "/opt/homebrew/share/soundfonts/default.sf2",
    "/opt/local/share/sounds/sf2/FluidR3_GM.sf2", "C:/soundfonts/default.sf2",
)
SOUNDFONT_DIRS = (
    "/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts", "/opt/homebrew/share/soundfonts",
    "/opt/homebrew/share/fluid-synth", "/usr/local/share/fluid-synth", "~/.local/share/soundfonts",
    "~/Library/Audio/Sounds/Banks", "C:/soundfonts",
)


class FluidSynthUnavailable(AudioUnavailable):
    """FluidSynth cannot play here; the message says why and what to install, in one line."""


# -- the library -------------------------------------------------------------------------------

_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@functools.lru_cache(maxsize=None)
def library() -> SimpleNamespace:
    """libfluidsynth (2.2 or later) with the functions we use declared. Raises FluidSynthUnavailable."""
    try:
        # pyfluidsynth finds (and loads) the library where each system puts it; where the CI variable is set
        # it prints where it found it, which must not land in our stdout (ABC and JSON are written there)
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth as pyfluidsynth
    except ImportError as e:
        if e.name == "fluidsynth":
            raise FluidSynthUnavailable(f"FluidSynth: the Python package pyfluidsynth is missing; {INSTALL}") from None
        raise FluidSynthUnavailable(f"FluidSynth: libfluidsynth not found ({e}); {INSTALL}") from None
    except OSError as e:  # found but cannot be loaded
        raise FluidSynthUnavailable(f"FluidSynth: libfluidsynth cannot be loaded ({e}); {INSTALL}") from None
    path = getattr(pyfluidsynth, "lib", None)
    try:
        lib = ctypes.CDLL(path)
    except (OSError, TypeError) as e:
        raise FluidSynthUnavailable(f"FluidSynth: libfluidsynth cannot be loaded ({e}); {INSTALL}") from None
    P, I, S, D, U = ctypes.c_void_p, ctypes.c_int, ctypes.c_short, ctypes.c_double, ctypes.c_uint
    C = ctypes.c_char_p
    signatures = {
        "fluid_version": (None, ctypes.POINTER(I), ctypes.POINTER(I), ctypes.POINTER(I)),
        "fluid_set_log_function": (P, I, _LOG_FN, P),
        "new_fluid_settings": (P,), "delete_fluid_settings": (None, P),
        "fluid_settings_setstr": (I, P, C, C), "fluid_settings_setint": (I, P, C, I), "fluid_settings_setnum": (I, P, C, D),
        "fluid_settings_copystr": (I, P, C, C, I), "fluid_settings_getnum": (I, P, C, ctypes.POINTER(D)),
        "new_fluid_synth": (P, P), "delete_fluid_synth": (None, P),
        "fluid_synth_sfload": (I, P, C, I), "fluid_synth_program_change": (I, P, I, I),
        "fluid_synth_get_program": (I, P, I, ctypes.POINTER(I), ctypes.POINTER(I), ctypes.POINTER(I)),
        "fluid_synth_cc": (I, P, I, I, I), "fluid_synth_all_sounds_off": (I, P, I),
        "fluid_synth_get_active_voice_count": (I, P),
        "fluid_synth_set_gain": (None, P, ctypes.c_float), "fluid_synth_get_gain": (ctypes.c_float, P),
        "fluid_synth_write_float": (I, P, I, P, I, I, P, I, I),
        "new_fluid_audio_driver": (P, P, P), "delete_fluid_audio_driver": (None, P),
        "new_fluid_sequencer2": (P, I), "delete_fluid_sequencer": (None, P),
        "fluid_sequencer_register_fluidsynth": (S, P, P), "fluid_sequencer_unregister_client": (None, P, S),
        "fluid_sequencer_get_tick": (U, P), "fluid_sequencer_set_time_scale": (None, P, D),
        "fluid_sequencer_send_at": (I, P, P, U, I), "fluid_sequencer_send_now": (None, P, P),
        "fluid_sequencer_remove_events": (None, P, S, S, I),
        "new_fluid_event": (P,), "delete_fluid_event": (None, P),
        "fluid_event_set_source": (None, P, S), "fluid_event_set_dest": (None, P, S),
        "fluid_event_note": (None, P, I, S, S, U), "fluid_event_control_change": (None, P, I, S, I),
        "fluid_event_program_change": (None, P, I, I), "fluid_event_all_notes_off": (None, P, I),
        "fluid_event_all_sounds_off": (None, P, I), "fluid_event_noteoff": (None, P, I, S),
    }
    f = SimpleNamespace(path=path)
    try:
        for name, (restype, *argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(f, name.replace("fluid_", ""), fn)  # new_fluid_synth -> f.new_synth
    except AttributeError as e:
        raise FluidSynthUnavailable(f"FluidSynth: {path} lacks {e.args[0].split()[-1]} (version 2.2 or later needed); {INSTALL}") from None
    major, minor, micro = I(), I(), I()
    f.version(major, minor, micro)
    f.version_text = f"{major.value}.{minor.value}.{micro.value}"
    if (major.value, minor.value) < (2, 2):
        raise FluidSynthUnavailable(f"FluidSynth {f.version_text} is too old (2.2 or later plays overlapping notes right); {INSTALL}")
    quiet(f)
    return f


_captured: deque[str] = deque(maxlen=8)


@_LOG_FN
def _capture(level: int, message: bytes, data: object) -> None:
    _captured.append(message.decode(errors="replace").strip())


_silent = ctypes.cast(None, _LOG_FN)


def quiet(f: SimpleNamespace, capture: bool = False) -> None:
    """FluidSynth's log off (it would write to our terminal, from its audio thread too); or, only
    while a driver is being opened, kept to say why it failed."""
    for level in range(5):  # panic, error, warning, info, debug
        f.set_log_function(level, _capture if capture and level <= 2 else _silent, None)


def available() -> tuple[bool, str]:
    """Whether FluidSynth can play here: (True, "FluidSynth 2.3.1, /usr/share/.../default-GM.sf2") or
    (False, one line saying what to install). Never raises."""
    try:
        f = library()
        return True, f"FluidSynth {f.version_text}, {find_soundfont()}"
    except AudioUnavailable as e:
        return False, str(e)


# -- SoundFonts --------------------------------------------------------------------------------

def not_a_soundfont(path: Path) -> str | None:
    """Why ``path`` is not a SoundFont (None if it is one): a SoundFont (.sf2, and .sf3, its
    compressed form) is a RIFF file of form ``sfbk``. Checked from its first 12 bytes before
    FluidSynth reads it, and what the file holds is never quoted."""
    try:
        with path.open("rb") as file:
            head = file.read(12)
    except OSError as error:
        return f"cannot read it ({error.strerror or type(error).__name__})"
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        return "not a SoundFont (no RIFF sfbk header)"
    return None


def find_soundfont(given: str | os.PathLike | None = None) -> Path:
    """The SoundFont to play: ``given`` (``--soundfont``), else FluidSynth's own default, else a
    General MIDI SoundFont where systems install one. UsageError for a given file that is not
    there; FluidSynthUnavailable when none is found."""
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UsageError(f"--soundfont {given}: no such file; give a .sf2 or .sf3 SoundFont")
        problem = not_a_soundfont(path)
        if problem:
            raise UsageError(f"--soundfont {given}: {problem}; give a .sf2 or .sf3 SoundFont")
        return path
    candidates: list[str] = []
    try:
        f = library()
        settings = f.new_settings()
        buf = ctypes.create_string_buffer(1024)
        if f.settings_copystr(settings, b"synth.default-soundfont", buf, len(buf)) == _OK and buf.value:
            candidates.append(buf.value.decode())
        f.delete_settings(settings)
    except AudioUnavailable:
        pass
    candidates += SOUNDFONT_FILES
    for folder in SOUNDFONT_DIRS:
        found = sorted(glob.glob(os.path.join(os.path.expanduser(folder), "*.sf[23]")))
        candidates += sorted(found, key=lambda p: "gm" not in Path(p).name.lower())  # GM sets first
    for candidate in candidates:
        if os.path.isfile(candidate):
            return Path(candidate)
    raise FluidSynthUnavailable(f"FluidSynth: no General MIDI SoundFont found (looked in {SOUNDFONT_DIRS[0]}, "
                                f"{SOUNDFONT_DIRS[1]}, ...); apt-get install timgm6mb-soundfont, or give --soundfont FILE.sf2")


# -- one synth with its sequencer: live and offline ----------------------------------------------

def voice_channel(voice: int) -> int:
    """FluidSynth's channel (0-based) for an ensemble's voice: the lead 0, voice N N-1, never the drums'."""
    channel = voice - 1
    return channel + 1 if channel >= DRUMS else channel


class _Engine:
    """A FluidSynth synth with a SoundFont loaded and a sequencer driven by its rendering."""

    def __init__(self, soundfont: Path, timbre: GmTimbre, samplerate: float, gain: float, reverb: bool,
                 settings: dict[str, str | int | float] | None = None, voices: Sequence[VoiceSound] = ()):
        f = self.f = library()
        self.settings = f.new_settings()
        base: dict[str, str | int | float] = {
            "synth.sample-rate": float(samplerate), "synth.gain": float(gain), "synth.reverb.active": int(reverb),
            "synth.chorus.active": 0, "synth.polyphony": 64, "synth.cpu-cores": 1,
        }
        for name, value in {**base, **(settings or {})}.items():
            key = name.encode()
            if isinstance(value, str):
                f.settings_setstr(self.settings, key, value.encode())
            elif isinstance(value, int):
                f.settings_setint(self.settings, key, value)
            else:
                f.settings_setnum(self.settings, key, float(value))
        self.synth = f.new_synth(self.settings)
        self.sfid = f.synth_sfload(self.synth, str(soundfont).encode(), 1)
        if self.sfid == _FAILED:
            self.delete()
            raise FluidSynthUnavailable(f"FluidSynth cannot read the SoundFont {soundfont}; give another with --soundfont")
        self.soundfont = soundfont
        self.timbre = timbre
        # each voice its own channel, program and pan (one voice: the lead, as ever)
        self.voices = tuple(voices) or (VoiceSound(1, "lead", 1, timbre, -1),)
        self.channels = {v.voice: voice_channel(v.voice) for v in self.voices}
        for v in self.voices:
            f.synth_program_change(self.synth, self.channels[v.voice], v.timbre.program)
            if len(self.voices) > 1 or v.pan:
                f.synth_cc(self.synth, self.channels[v.voice], 10, pan_cc(v.pan))
        self.seq = f.new_sequencer2(0)  # advanced by the synth's rendering, not by a system timer
        f.sequencer_set_time_scale(self.seq, float(TICKS_PER_S))
        self.dest = f.sequencer_register_fluidsynth(self.seq, self.synth)
        self._evt = f.new_event()
        self._lock = threading.Lock()  # one event struct, filled by whichever thread sends
        self.driver = None

    def send(self, tick: int | None, kind: str, *args: int) -> None:
        """One sequencer event to the synth at ``tick`` (None: at once)."""
        f = self.f
        with self._lock:
            evt = self._evt
            f.event_set_source(evt, -1)
            f.event_set_dest(evt, self.dest)
            getattr(f, f"event_{kind}")(evt, *args)
            if tick is None:
                f.sequencer_send_now(self.seq, evt)
            else:
                f.sequencer_send_at(self.seq, evt, max(0, tick), 1)

    def note(self, tick: int, note: ScheduledNote) -> None:
        # a "note" event: the sequencer ends it after its duration, and a new note on the same key
        # drops the earlier note's pending note-off, which would otherwise cut the new one short
        duration = max(1, round((note.off - note.on) * TICKS_PER_S))
        self.send(tick, "note", self.channels.get(note.voice, CHANNEL), note.pitch, note.velocity, duration)

    def tick(self) -> int:
        return int(self.f.sequencer_get_tick(self.seq))

    def silence(self, tick: int | None) -> None:
        """Drop every queued event; end the sounding notes (their release rings), then cut what is left."""
        f = self.f
        f.sequencer_remove_events(self.seq, -1, self.dest, -1)
        for channel in sorted(set(self.channels.values())):
            self.send(None, "control_change", channel, 64, 0)  # sustain pedal up
            self.send(None, "all_notes_off", channel)
            self.send((tick or self.tick()) + round(RELEASE_S * TICKS_PER_S), "all_sounds_off", channel)

    def delete(self) -> None:
        f = self.f
        if self.driver:
            f.delete_audio_driver(self.driver)
            self.driver = None
        if getattr(self, "seq", None):
            f.delete_event(self._evt)
            f.delete_sequencer(self.seq)  # unregisters the synth's client
            self.seq = None
        if self.synth:
            f.delete_synth(self.synth)
            self.synth = None
        if self.settings:
            f.delete_settings(self.settings)
            self.settings = None


class FluidSynth:
    """The built-in sound through FluidSynth's own audio driver: an ``Output``.

    ``schedule`` (model thread) places each note in the sequencer at once; nothing of ours runs
    when it sounds. ``panic`` and ``close`` drop what is queued and silence what sounds.
    """

    name = "synth"

    def __init__(self, timbre: GmTimbre, soundfont: str | os.PathLike | None = None, driver: str | None = None,
                 samplerate: float = 48000.0, gain: float = GAIN, client_name: str = "folk-instrument",
                 autoconnect: bool = True, reverb: bool = True, voices: Sequence[VoiceSound] = ()):
        """Open the synth and start its audio driver (silent until notes come). ``driver``: jack,
        pipewire, pulseaudio, alsa, coreaudio, ... (None: JACK where a JACK server runs, else
        FluidSynth's default, then the others). ``voices``: an ensemble's, each its own
        instrument on its own channel (none: ``timbre`` alone). Raises FluidSynthUnavailable (one line)."""
        from instrument.midi.ports import realtime_jack_threads

        path = find_soundfont(soundfont)
        settings = {"audio.jack.id": client_name, "audio.jack.autoconnect": int(autoconnect)}
        self._engine = _Engine(path, timbre, samplerate, gain, reverb, settings, voices)
        f = self._engine.f
        tried = []
        for name in self._drivers(driver):
            f.settings_setstr(self._engine.settings, b"audio.driver", name.encode())
            _captured.clear()
            quiet(f, capture=True)
            with realtime_jack_threads(name="fluid-jack"):  # its JACK thread real-time even under a server without it
                handle = f.new_audio_driver(self._engine.settings, self._engine.synth)
            quiet(f)
            if handle:
                self._engine.driver, self.driver = handle, name
                break
            tried.append(f"{name}: {_captured[-1] if _captured else 'failed'}")
        else:
            self._engine.delete()
            raise FluidSynthUnavailable(f"FluidSynth found no audio output ({'; '.join(tried)})")
        rate = ctypes.c_double()
        f.settings_getnum(self._engine.settings, b"synth.sample-rate", ctypes.byref(rate))
        self.samplerate = rate.value
        self.timbre = timbre
        self.late = 0
        self._clock = StreamClock(TICKS_PER_S, LEAD_WINDOW_S, follow_s=0.3, drop_s=0.004)
        self._closed = False
        self._read_lead(burst_s=0.05)

    @staticmethod
    def _drivers(driver: str | None) -> list[str]:
        if driver:
            return [driver]
        from instrument.midi.ports import jack_server_socket

        order = ["pipewire", "pulseaudio", "alsa", "coreaudio", "wasapi", "dsound", "oss", "sndman", "sdl2", "portaudio"]
        if os.name == "posix" and os.path.exists(jack_server_socket()):
            order.insert(0, "jack")
        return order

    def _read_lead(self, burst_s: float = 0.0) -> None:
        """Read the stream's lead; with ``burst_s``, every 0.25 ms for that long (opening only)."""
        end = clock() + burst_s
        while True:
            tick = self._engine.tick()  # first the tick, then the clock: a delay between them lowers the
            self._clock.read(clock(), tick)  # lead read, which the largest-lead rule ignores; never raises it
            if clock() >= end:
                return
            time.sleep(0.00025)

    # -- Output -------------------------------------------------------------------------------

    def start(self, at: float) -> None:
        """Nothing to start: the driver runs from opening (silence until the first note)."""

    def schedule(self, note: ScheduledNote) -> None:
        if self._closed:
            return
        self._read_lead()
        engine, mapping = self._engine, self._clock
        now = engine.tick()
        on = mapping.position(note.on)
        if on < now:  # arrived after its time: the sequencer plays it at once
            self.late += 1
        engine.note(on, note)

    def set_timbre(self, timbre: GmTimbre, voice: int = 1) -> None:
        """Change a voice's instrument now: notes already sounding keep theirs, new notes take it."""
        if self._closed or voice not in self._engine.channels:
            return
        if voice == 1:
            if timbre == self.timbre:
                return
            self.timbre = timbre
        self._engine.send(None, "program_change", self._engine.channels[voice], timbre.program)

    def set_pan(self, voice: int, pan: float) -> None:
        """A voice's pan now (CC 10 on its channel)."""
        if not self._closed and voice in self._engine.channels:
            self._engine.send(None, "control_change", self._engine.channels[voice], 10, pan_cc(pan))

    def release(self, voice: int, at: float, pitch: int | None = None) -> None:
        """The voice's sounding notes end at ``at`` (All Notes Off on its channel, then; with
        ``pitch``, that key's note-off)."""
        if not self._closed and voice in self._engine.channels:
            tick = max(self._clock.position(at), self._engine.tick())
            if pitch is None:
                self._engine.send(tick, "all_notes_off", self._engine.channels[voice])
            else:
                self._engine.send(tick, "noteoff", self._engine.channels[voice], int(pitch))

    def set_gain(self, db: float) -> None:
        """The live parameter ``gain``: FluidSynth's own gain, ``db`` above or below ``GAIN``
        (sounding notes follow at once; FluidSynth applies it in its audio thread)."""
        if not self._closed:
            self._engine.f.synth_set_gain(self._engine.synth, GAIN * 10.0 ** (db / 20.0))

    @property
    def gain(self) -> float:
        """FluidSynth's gain now (linear)."""
        return float(self._engine.f.synth_get_gain(self._engine.synth))

    def control(self, number: int, value: int) -> None:
        """A MIDI control change to the synth now (CC 7 volume, 11 expression, 64 sustain, ...), every voice's channel."""
        if not self._closed:
            for channel in sorted(set(self._engine.channels.values())):
                self._engine.send(None, "control_change", channel, number & 0x7F, value & 0x7F)

    def tune(self, number: int, tune: Tune) -> None:
        """Nothing to do: the synth only sounds notes."""

    def panic(self, at: float) -> None:
        if not self._closed:
            self._engine.silence(None)

    def close(self, at: float) -> None:
        """Panic, let the releases ring out briefly, then stop the driver and free the synth."""
        if self._closed:
            return
        self._closed = True
        engine = self._engine
        engine.silence(None)
        end = clock() + RELEASE_S + 0.05
        while clock() < end and engine.f.synth_get_active_voice_count(engine.synth) > 0:
            time.sleep(0.01)
        engine.delete()

    def status(self) -> str:
        if self._closed:
            return f"audio: closed ({self.late} late notes)"
        self._read_lead()
        line = (f"audio: FluidSynth {self._engine.f.version_text} ({self.driver}), {self.samplerate:g} Hz, "
                f"{self.timbre.name} from {self._engine.soundfont.resolve().name}")
        if self.late:
            line += f", {self.late} late notes"
        return line


def render_with_fluidsynth(notes: Sequence[ScheduledNote], timbre: GmTimbre, samplerate: int = 48000, start: float | None = None,
           soundfont: str | os.PathLike | None = None, gain: float = GAIN, reverb: bool = True,
           tail_s: float = 3.0, voices: Sequence[VoiceSound] = ()) -> np.ndarray:
    """Render ``notes`` offline with FluidSynth: float32 (frames, 2), as fast as the CPU allows.

    The same synth, SoundFont and sequencer as live (``voices``: an ensemble's instruments and
    pans, each voice on its own channel); time 0 of the sequencer is ``start``
    (default: the first onset). The audio ends once everything has died away after the last
    note-off (at most ``tail_s`` later). Raises FluidSynthUnavailable.
    """
    if not notes:
        return np.zeros((0, 2), dtype=np.float32)
    engine = _Engine(find_soundfont(soundfont), timbre, samplerate, gain, reverb, voices=voices)
    try:
        if start is None:
            start = min(n.on for n in notes)
        for n in sorted(notes, key=lambda n: n.on):
            engine.note(round((n.on - start) * TICKS_PER_S), n)
        f, block = engine.f, 4096
        end = max(n.off for n in notes) - start
        frames = math.ceil(end * samplerate)
        out: list[np.ndarray] = []
        done = 0
        while True:
            buf = np.zeros((block, 2), dtype=np.float32)
            ptr = buf.ctypes.data
            f.synth_write_float(engine.synth, block, ptr, 0, 2, ptr, 1, 2)  # interleaved stereo
            out.append(buf)
            done += block
            if done >= frames and (done >= frames + tail_s * samplerate or
                                   (f.synth_get_active_voice_count(engine.synth) == 0 and np.abs(buf).max() < 1e-4)):
                break
        audio = np.concatenate(out)
        loud = np.flatnonzero(np.abs(audio).max(axis=1) >= 1e-4)
        length = max(frames, int(loud[-1]) + 1 if len(loud) else 0)
        return np.ascontiguousarray(audio[:length])
    finally:
        engine.delete()
