"""Sessions in five languages with a known text, spoken by espeak voices, for the
multilingual tests and the quality benchmark's per-language table."""

from __future__ import annotations

import numpy as np

from scribe.config import SAMPLE_RATE
from tests.conversations import SENTENCES, espeak
from tests.media import Samples

VOICES = {"en": "en-us+m3", "de": "de", "es": "es", "fr": "fr", "it": "it"}
LINES: dict[str, tuple[str, ...]] = {
    "en": SENTENCES[:6],
    "de": (
        "Das Wetter ist heute sehr schön, und ich denke, wir sollten spazieren gehen.",
        "Bitte denke daran, die Unterlagen morgen früh zur Besprechung mitzubringen.",
        "Ich lese gerade ein spannendes Buch über die Geschichte der Seefahrt.",
        "Kannst du mir sagen, wie es dir seit unserem letzten Gespräch geht?",
        "Ehrlich gesagt waren die letzten zwei Wochen schwerer, als ich erwartet hatte.",
        "Was hat deiner Meinung nach den Unterschied zur letzten Woche gemacht?",
    ),
    "es": (
        "El tiempo hoy es muy agradable y creo que deberíamos salir a caminar.",
        "Por favor, recuerda traer los documentos a la reunión de mañana por la mañana.",
        "He estado leyendo un libro fascinante sobre la historia de la navegación.",
        "¿Puedes decirme cómo te has sentido desde nuestra última sesión?",
        "Sinceramente, las últimas dos semanas fueron más difíciles de lo que esperaba.",
        "¿Qué crees que marcó la diferencia entre esta semana y la anterior?",
    ),
    "fr": (
        "Le temps est très agréable aujourd'hui et je pense que nous devrions nous promener.",
        "N'oublie pas d'apporter les documents à la réunion de demain matin.",
        "Je lis un livre passionnant sur l'histoire de la navigation.",
        "Peux-tu me dire comment tu te sens depuis notre dernière séance ?",
        "Honnêtement, les deux dernières semaines ont été plus dures que prévu.",
        "Qu'est-ce qui a fait la différence entre cette semaine et la précédente ?",
    ),
    "it": (
        "Il tempo oggi è molto piacevole e penso che dovremmo fare una passeggiata.",
        "Ricordati di portare i documenti alla riunione di domani mattina.",
        "Sto leggendo un libro affascinante sulla storia della navigazione.",
        "Puoi dirmi come ti sei sentito dalla nostra ultima seduta?",
        "Sinceramente, le ultime due settimane sono state più difficili del previsto.",
        "Cosa pensi che abbia fatto la differenza tra questa settimana e la scorsa?",
    ),
}
GAP_S = 0.5


def spoken(language: str, lines: int = 6) -> tuple[Samples, str]:
    """The first ``lines`` sentences of ``language`` in its espeak voice, half a second
    apart, and their text."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    said = LINES[language][:lines]
    samples = np.concatenate([s for line in said for s in (espeak(VOICES[language], line), gap)])
    return samples, " ".join(said)
