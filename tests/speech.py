"""Speech synthesis for the tests and benchmarks: eSpeak NG, from the ``espeakng-loader``
wheel (which ships libespeak-ng and its voice data), driven through ctypes.

A pip install is all it needs: no Debian package and no program on PATH, so the README's
test command passes on a machine with Python alone. Where the wheel is missing or its
library does not load, :func:`synthesize` raises :class:`SpeechUnavailableError`, which
the tests' conftest turns into a skip that says why.

Each call synthesises in a short-lived child process, as the ``espeak-ng`` program did:
libespeak-ng keeps state between utterances in a process (its pitch flutter runs on), so
in one process a text's samples depend on what was said before it, and a seeded
conversation would differ with the order the tests ran in. Run as a script, this file is
that child; it imports nothing but the standard library.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import subprocess
import sys
import wave
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.media import Samples

WORDS_PER_MINUTE = 175  # espeak-ng's own default rate
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: synthesise into the callback, then return
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1  # espeak_PARAMETER espeakRATE
_NO_VOICE, _NO_LIBRARY = 3, 4  # the child's exit codes
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class SpeechUnavailableError(RuntimeError):
    """The synthesiser cannot run here (its wheel is missing, or its library did not load)."""


def synthesize(voice: str, text: str, *, words_per_minute: int = WORDS_PER_MINUTE) -> Samples:
    """``text`` spoken by eSpeak NG's ``voice`` (a language, optionally with a variant, as
    ``espeak-ng -v`` takes it: "en-us+m3", "en-gb+m2", "de", "fr+f2"), as float32 samples
    at 16 kHz. The same arguments give the same samples."""
    from scribe.pipeline.audio import decode

    try:
        import espeakng_loader
    except ImportError as exc:
        raise SpeechUnavailableError("speech synthesis needs the espeakng-loader wheel "
                                     "(pip install -e '.[test]' installs it)") from exc
    done = subprocess.run(
        [sys.executable, "-I", "-S", __file__, espeakng_loader.get_library_path(),
         espeakng_loader.get_data_path(), voice, str(words_per_minute)],
        input=text.encode(), capture_output=True, timeout=120)
    message = done.stderr.decode(errors="replace").strip()
    if done.returncode == _NO_VOICE:
        raise ValueError(message)
    if done.returncode == _NO_LIBRARY:
        raise SpeechUnavailableError(message)
    if done.returncode != 0:
        raise RuntimeError(f"speech synthesis failed ({done.returncode}): {message}")
    return decode(io.BytesIO(done.stdout)).samples  # resampled to 16 kHz like any input


def unavailable_reason() -> str | None:
    """None when :func:`synthesize` runs here, else why it cannot."""
    try:
        synthesize("en", "a")
    except SpeechUnavailableError as exc:
        return str(exc)
    return None


class _Voice(ctypes.Structure):
    """espeak_VOICE, as espeak_ListVoices returns it."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


class _Engine:
    """libespeak-ng, initialised in this (child) process, synthesising into a buffer."""

    def __init__(self, library: str, data: str) -> None:
        self.lib = ctypes.CDLL(library)
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self.rate = int(self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(),
                                                   0))
        if self.rate <= 0:
            raise OSError(f"libespeak-ng did not start (its data at {data})")
        self.chunks: list[bytes] = []
        self.callback = _CALLBACK(self._collect)  # kept: the library holds only the pointer
        self.lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int,
                 _events: int | None) -> int:
        if wav and count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # go on

    def set_voice(self, voice: str) -> bool:
        """``voice`` by its file's name, as the library takes it; else, as the program
        does, by language ("en-gb" names no file: it is a language of "gmw/en"), keeping
        the variant."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) == 0:
            return True
        language, plus, variant = voice.partition("+")
        known = self._voices_by_language().get(language.lower())
        return known is not None and self.lib.espeak_SetVoiceByName(
            (known + plus + variant).encode()) == 0

    def _voices_by_language(self) -> dict[str, str]:
        """Each language's preferred voice file ("en-gb" -> "gmw/en")."""
        best: dict[str, tuple[int, str]] = {}
        voices = self.lib.espeak_ListVoices(None)
        for i in itertools.count():
            if not voices[i]:
                break
            voice = voices[i].contents
            # a priority byte, then a NUL-terminated language, repeated; a 0 byte ends it
            at = voice.languages
            while (priority := ctypes.string_at(at, 1)[0]) != 0:
                language = ctypes.string_at(at + 1).decode()
                at += len(language) + 2
                if priority < best.get(language, (256, ""))[0]:
                    best[language] = (priority, voice.identifier.decode())
        return {language: identifier for language, (_, identifier) in best.items()}

    def pcm(self, text: str, words_per_minute: int) -> bytes:
        """16-bit mono PCM at :attr:`rate`, in the voice set last."""
        self.lib.espeak_SetParameter(_RATE, words_per_minute, 0)
        encoded = text.encode()
        status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                       _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        return b"".join(self.chunks)


def _child(argv: list[str]) -> int:
    """``LIBRARY DATA VOICE WPM``, the text on stdin: a WAV file on stdout."""
    library, data, voice, words_per_minute = argv
    try:
        engine = _Engine(library, data)
    except OSError as exc:
        sys.stderr.write(f"espeakng-loader's libespeak-ng did not load: {exc}\n")
        return _NO_LIBRARY
    if not engine.set_voice(voice):
        sys.stderr.write(f"eSpeak NG has no voice {voice!r}\n")
        return _NO_VOICE
    pcm = engine.pcm(sys.stdin.buffer.read().decode(), int(words_per_minute))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(engine.rate)
        out.writeframes(pcm)
    sys.stdout.buffer.write(buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
