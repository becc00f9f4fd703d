"""Sessions in five languages with a known text, spoken by espeak voices, for the
multilingual tests and the quality benchmark's per-language table."""

from __future__ import annotations

import numpy as np

from scribe.config import SAMPLE_RATE
from tests.conversations import SENTENCES, espeak
from tests.media import Samples

VOICES = {"en": "en-us+m3", "de": "de", "es": "es", "fr": "fr", "it": "it"}
LINES: dict[str, tuple[str, ...]] = {
    "en": SENTENCES + (
        "Last weekend we took the children to the lake, and the water was still quite cold.",
        "For next week, I am planning to walk for half an hour every morning.",
    ),
    "de": (
        "Das Wetter ist heute sehr schön, und ich denke, wir sollten spazieren gehen.",
        "Bitte denke daran, die Unterlagen morgen früh zur Besprechung mitzubringen.",
        "Ich lese gerade ein spannendes Buch über die Geschichte der Seefahrt.",
        "Kannst du mir sagen, wie es dir seit unserem letzten Gespräch geht?",
        "Ehrlich gesagt waren die letzten zwei Wochen schwerer, als ich erwartet hatte.",
        "Was hat deiner Meinung nach den Unterschied zur letzten Woche gemacht?",
        "Ich schlafe besser, seit ich abends nicht mehr auf mein Handy schaue.",
        "Das klingt nach einer echten Veränderung. Wie hat deine Familie darauf reagiert?",
        "Sie haben bemerkt, dass ich beim Abendessen ruhiger war, und wir haben mehr geredet.",
        "Lass uns das aufschreiben, damit wir beim nächsten Treffen darauf zurückkommen.",
        "Am Wochenende waren wir mit den Kindern am See, und das Wasser war noch ziemlich kalt.",
        "Für die nächste Woche nehme ich mir vor, jeden Morgen eine halbe Stunde zu gehen.",
    ),
    "es": (
        "El tiempo hoy es muy agradable y creo que deberíamos salir a caminar.",
        "Por favor, recuerda traer los documentos a la reunión de mañana por la mañana.",
        "He estado leyendo un libro fascinante sobre la historia de la navegación.",
        "¿Puedes decirme cómo te has sentido desde nuestra última sesión?",
        "Sinceramente, las últimas dos semanas fueron más difíciles de lo que esperaba.",
        "¿Qué crees que marcó la diferencia entre esta semana y la anterior?",
        "Empecé a dormir mejor cuando dejé de mirar el teléfono por la noche.",
        "Eso suena como un cambio real. ¿Cómo reaccionó tu familia?",
        "Notaron que estaba más tranquilo en la cena, y hablamos más de lo normal.",
        "Vamos a apuntarlo, para volver a ello la próxima vez que nos veamos.",
        "El fin de semana fuimos al lago con los niños, y el agua todavía estaba bastante fría.",
        "Para la próxima semana me propongo caminar media hora cada mañana.",
    ),
    "fr": (
        "Le temps est très agréable aujourd'hui et je pense que nous devrions nous promener.",
        "N'oublie pas d'apporter les documents à la réunion de demain matin.",
        "Je lis un livre passionnant sur l'histoire de la navigation.",
        "Peux-tu me dire comment tu te sens depuis notre dernière séance ?",
        "Honnêtement, les deux dernières semaines ont été plus dures que prévu.",
        "Qu'est-ce qui a fait la différence entre cette semaine et la précédente ?",
        "Je dors mieux depuis que je ne regarde plus mon téléphone le soir.",
        "Cela ressemble à un vrai changement. Comment ta famille a-t-elle réagi ?",
        "Ils ont remarqué que j'étais plus calme au dîner, et nous avons plus parlé.",
        "Notons-le, pour que nous puissions y revenir la prochaine fois que nous nous verrons.",
        "Le week-end dernier, nous sommes allés au lac avec les enfants, et l'eau était froide.",
        "Pour la semaine prochaine, je me propose de marcher une demi-heure chaque matin.",
    ),
    "it": (
        "Il tempo oggi è molto piacevole e penso che dovremmo fare una passeggiata.",
        "Ricordati di portare i documenti alla riunione di domani mattina.",
        "Sto leggendo un libro affascinante sulla storia della navigazione.",
        "Puoi dirmi come ti sei sentito dalla nostra ultima seduta?",
        "Sinceramente, le ultime due settimane sono state più difficili del previsto.",
        "Cosa pensi che abbia fatto la differenza tra questa settimana e la scorsa?",
        "Ho cominciato a dormire meglio da quando non guardo più il telefono la sera.",
        "Sembra un vero cambiamento. Come ha reagito la tua famiglia?",
        "Hanno notato che ero più tranquillo a cena, e abbiamo parlato più del solito.",
        "Scriviamolo, così possiamo tornarci sopra la prossima volta che ci vediamo.",
        "Il fine settimana siamo andati al lago con i bambini, e l'acqua era ancora fredda.",
        "Per la prossima settimana mi propongo di camminare mezz'ora ogni mattina.",
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
