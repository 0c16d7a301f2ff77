"""Prompt injection and jailbreak detection, in English, French, Spanish and German.

Two layers, both offline and CPU-only:

1. Heuristics on the normalised text (see normalize.py: spacing, leet, look-alikes, invisible
   characters, base64/hex payloads): instruction overrides, role reassignment, jailbreak
   personas, prompt-leak requests, fake system/delimiter tags, restriction bypass.
2. A logistic-regression classifier over hashed character n-grams, which also takes the
   heuristic hits as features (so it learns, for example, that quoting an attack to ask about
   it is not an attack).

The same guard scans retrieved documents (stage ``retrieval``) for indirect injection.
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
from pydantic import Field

from langdeploy.guards import classifier
from langdeploy.guards.base import Action, Finding, Guard, GuardContext, GuardOptions, Stage
from langdeploy.guards.normalize import (
    analysis_text,
    decode_embedded,
    decode_tags,
    has_invisible,
    looks_spaced,
    normalize,
)

_ANY = r"(?:\w+ ){0,3}"

HEURISTICS: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(?:ignore|ignoring|disregard|forget|skip|override|bypass|drop|discard|abandon|"
        r"set aside|throw away|erase|delete|cancel|neglect)\b (?:\w+ ){0,4}(?:previous|prior|"
        r"above|earlier|preceding|initial|original|system|existing|former|old|given|all|your|"
        r"these|those|the) (?:\w+ ){0,2}(?:instructions?|prompts?|rules|directions|guidelines|"
        r"directives|context|messages?|commands|orders|programming|constraints|restrictions|"
        r"policies|guardrails|safeguards|filters|safety training)\b"
        # French
        r"|\b(?:ignore[zr]?|oublie[zr]?|neglige[zr]?|ne tiens pas compte|fais abstraction)\b "
        r"(?:\w+ ){0,4}(?:instructions?|consignes|regles|directives|messages|ordres|"
        r"indications|contraintes)\b"
        # Spanish
        r"|\b(?:ignora[rd]?|ignore|olvida[rd]?|olvide|omite|omitir|descarta[r]?|pasa por alto|"
        r"haz caso omiso)\b (?:\w+ ){0,4}(?:instrucciones|indicaciones|reglas|normas|"
        r"directrices|mensajes|ordenes|restricciones)\b"
        # German
        r"|\b(?:ignoriere|ignorier|ignorieren|vergiss|vergessen|missachte|verwirf|uberschreibe)\b"
        r" (?:\w+ ){0,4}(?:anweisungen|instruktionen|regeln|vorgaben|befehle|richtlinien|"
        r"anordnungen|einschrankungen|nachrichten|systemanweisung\w*)\b"
    ),
    "new_instructions": re.compile(
        r"\b(?:new|updated|real|actual|true|revised|override) (?:system )?(?:instructions?|"
        r"rules|directive|task|orders?|prompt)\b ?:?|\bfrom now on\b|\bstarting now\b|"
        r"\bnouvelles? (?:instructions?|consignes|regles)\b|\ba partir de maintenant\b|"
        r"\bdesormais\b|\bnuevas instrucciones\b|\ba partir de ahora\b|\bde ahora en adelante\b|"
        r"\bneue (?:anweisungen|regeln|aufgabe)\b|\bab (?:jetzt|sofort)\b|\bvon nun an\b"
    ),
    "role_reassign": re.compile(
        r"\byou are (?:now|no longer|not) (?:\w+ ){0,3}|\byou(?:'re| are) (?:free|freed|"
        r"liberated|unchained|unleashed)\b|\bact as (?:an? )?(?:unrestricted|unfiltered|"
        r"uncensored|evil|rogue|jailbroken|amoral)\b|\bpretend (?:that )?(?:you are|you're|to be)"
        r" (?:\w+ ){0,4}(?:without|with no|no longer|that (?:has|have) no|unrestricted|"
        r"uncensored|unfiltered|evil)\b|\btu es (?:maintenant|desormais|a present)\b|"
        r"\bfais comme si tu (?:n'?)?(?:etais|avais)\b|\bjoue le role d'?une? (?:ia|assistant) "
        r"(?:sans|libre)|\b(?:ahora|ya no) eres\b|\bfinge (?:que eres|ser)\b|\bactua como "
        r"(?:una? )?(?:ia|asistente|modelo) sin\b|\bdu bist (?:jetzt|nun|ab sofort|ab jetzt|"
        r"nicht mehr)\b|\btu so,? als (?:ob|waerst|warst)\b|\bspiele? (?:eine[n]? )?(?:ki|"
        r"assistenten) ohne\b"
    ),
    "jailbreak_persona": re.compile(
        r"\bdan\b|\bdo anything now\b|\bdeveloper mode (?:enabled|activated|on|output|"
        r"response)|\benable developer mode\b|\bjailbr(?:eak|oken)\b|\bgodmode\b|\bgod mode\b|"
        r"\bstay in character\b|\bnever break(?:ing)? character\b|\bdo not break character\b|"
        r"\b(?:deceased|late|dead) grand(?:ma|mother|pa|father)\b|"
        r"\bevil (?:ai|assistant|confidant|twin|bot|mode)\b|"
        r"\baim\b (?:always intelligent|machiavellian)|\bunfiltered\b|\bamoral\b|"
        r"\bno (?:ethical|moral) (?:guidelines|rules|constraints|limits)\b|\bopposite mode\b|"
        r"\bmode developpeur\b|\bmodo (?:desarrollador|sin restricciones|dios)\b|"
        r"\bentwicklermodus\b|\bsans filtre\b|\bsin filtros?\b|\bohne filter\b"
    ),
    "prompt_leak": re.compile(
        r"\b(?:reveal|print|show|repeat|output|display|tell me|give me|share|dump|leak|write "
        r"out|recite|spell out|what (?:is|are|was|were))\b (?:\w+ ){0,4}(?:your|the|its) "
        r"(?:\w+ ){0,2}(?:system prompt|system message|initial (?:prompt|instructions)|hidden "
        r"(?:prompt|instructions)|original (?:prompt|instructions)|(?:secret|internal) "
        r"instructions|pre-?prompt|instructions above|confidential instructions)\b|"
        r"\b(?:text|words|everything) (?:above|before) (?:this|the first)\b|"
        r"\b(?:revele|affiche|montre|repete|donne)[sz]?(?:-moi)? (?:\w+ ){0,3}(?:ton|tes|le|les|"
        r"votre|vos) (?:\w+ ){0,2}(?:prompt|invite|instructions|consignes) (?:systeme|initiales?|"
        r"cachees?|secretes?)\b|\b(?:revela|muestra|muestrame|repite|dime|imprime)\b (?:\w+ )"
        r"{0,3}(?:tu|tus|el|las|los) (?:\w+ ){0,2}(?:prompt|mensaje|instrucciones) (?:del "
        r"sistema|de sistema|iniciales|ocultas|secretas|originales)\b|\b(?:zeige?|gib|wiederhole|"
        r"verrate|nenne|drucke)\b (?:\w+ ){0,3}(?:deinen|deine|den|die|mir) (?:\w+ ){0,2}"
        r"(?:systemprompt|system prompt|systemanweisung\w*|anfangsanweisung\w*|versteckten "
        r"anweisungen|geheimen anweisungen|ursprunglichen anweisungen)\b"
    ),
    "fake_tags": re.compile(
        r"<\|?(?:im_start|im_end|system|endoftext|eot_id|start_header_id|end_header_id|"
        r"assistant|user)\|?>|\[/?inst\]|<</?sys>>|### ?(?:system|instruction|new instructions)"
        r"\b|</?(?:system|sys|instructions?|admin|root)>|\[(?:system|admin)(?: message)?\]|"
        r"\bbegin (?:system|admin) (?:prompt|message|override)\b|\bend of (?:user )?input\b|"
        r"\b(?:system|admin|developer) (?:override|message|note|update)\s*:|^\s*system\s*:|"
        r"\n\s*system\s*:|\brole\W+system\b"
    ),
    "restriction_bypass": re.compile(
        r"\b(?:without|with no|free of|free from|no) (?:any |your |the |all )?(?:\w+ )?"
        r"(?:restrictions|limitations|limits|filters|filtering|censorship|safeguards|guardrails|"
        r"rules|boundaries|refusals?|content polic(?:y|ies)|safety)\b|\bbypass (?:\w+ ){0,2}"
        r"(?:filters?|safety|moderation|restrictions|guardrails|censorship)\b|\bsans (?:aucune? )?"
        r"(?:restrictions?|limites?|censure|regles)\b|\bsin (?:ninguna )?(?:restricciones|"
        r"limites|censura|reglas)\b|\bohne (?:jegliche |irgendwelche )?(?:einschrankungen|"
        r"beschrankungen|zensur|regeln|grenzen)\b"
    ),
    "quoted": re.compile(r"[\"'“”«»`].{3,120}?[\"'“”«»`]"),
}
# The key phrases with every space removed, for text spaced out letter by letter, whose word
# boundaries are lost when the letters are joined back ("d i s r e g a r d a l l p r i o r").
SQUASHED = re.compile(
    r"(?:ignore|ignoring|disregard|forget|bypass|override|skip|drop|neglect|ignorez?|oublie[zr]?|"
    r"ignora|olvida|ignoriere|vergiss|missachte)\w{0,24}?(?:instructions?|prompts?|rules|"
    r"guidelines|directives|polic(?:y|ies)|restrictions|consignes|regles|instrucciones|reglas|"
    r"normas|anweisungen|regeln|richtlinien)|(?:reveal|print|show|repeat|leak|tellme|"
    r"dime|revela|muestra|zeige|gibmir|montre|revele|repete)\w{0,12}?(?:systemprompt|"
    r"systemmessage|initialinstructions|hiddeninstructions|promptdelsistema|systemeprompt|"
    r"promptsysteme)|developermode|doanythingnow|modedeveloppeur|"
    r"mododesarrollador|entwicklermodus|(?:without|no|sans|sin|ohne)(?:any|aucune?|ninguna|"
    r"jegliche)?(?:restrictions|filters?|limits|censorship|restricciones|filtros?|limites|"
    r"einschrankungen|zensur)"
)
FEATURES = (
    *HEURISTICS,
    "squashed",
    "encoded_payload",
    "invisible_chars",
    "obfuscated",
    "strong_any",
)
STRONG = ("override", "prompt_leak", "fake_tags", "jailbreak_persona")


_SENTENCE = re.compile(r"(?<=[.!?。;])\s+|\n+|(?<=[.!?])(?=[A-Z¿¡])")


def segments(text: str, limit: int = 24) -> list[str]:
    """Normalised sentences of ``text`` with at least three words (at most ``limit``)."""
    parts = [p for p in _SENTENCE.split(text) if p and len(p.split()) >= 3]
    if len(parts) < 2:
        return []
    return [normalize(p) for p in parts[:limit]]


# Substrings one of which every match of a heuristic contains. A heuristic whose gates are all
# absent cannot match, so its (slow, alternation-heavy) regex is skipped: a plain substring test
# runs at C speed, which keeps a 4,000-character text within a millisecond or two.
GATES: dict[str, tuple[str, ...]] = {
    "override": (
        "ignor", "disregard", "forget", "skip", "overrid", "bypass", "drop", "discard",
        "abandon", "set aside", "throw away", "erase", "delete", "cancel", "neglect", "oubli",
        "neglig", "ne tiens pas", "fais abstraction", "olvid", "omit", "descart",
        "pasa por alto", "caso omiso", "vergiss", "vergessen", "missacht", "verwirf",
        "uberschreib",
    ),
    "role_reassign": (
        "you are", "you re", "act as", "pretend", "tu es", "fais comme si", "joue le role",
        "eres", "finge", "actua como", "du bist", "tu so", "spiel",
    ),
    "prompt_leak": (
        "prompt", "instruc", "system message", "above", "before", "consignes", "invite",
        "mensaje", "anweisung",
    ),
    "fake_tags": ("<", "[", "##", "begin ", "end of", "system", "admin", "developer", "role"),
    "new_instructions": (
        "instruc", "rules", "directive", "task", "order", "prompt", "from now on",
        "starting now", "consignes", "regles", "a partir de", "desormais", "de ahora en",
        "neue ", "ab jetzt", "ab sofort", "von nun an",
    ),
    "jailbreak_persona": (
        "dan", "do anything", "developer mode", "jailbr", "godmode", "god mode", "character",
        "grand", "evil ", "aim ", "unfiltered", "moral", "ethical", "opposite mode",
        "mode developpeur", "modo ", "entwicklermodus", "filtre", "filtro", "filter",
    ),
    "restriction_bypass": (
        "restric", "limit", "filter", "censor", "safeguard", "guardrail", "rules", "boundar",
        "refusal", "polic", "safety", "moderation", "censure", "regles", "censura", "reglas",
        "einschrankung", "beschrankung", "zensur", "regeln", "grenzen",
    ),
}  # fmt: skip


def _count(name: str, pattern: re.Pattern[str], text: str) -> int:
    gates = GATES.get(name)
    if gates is not None and not any(g in text for g in gates):
        return 0
    return len(pattern.findall(text))


def heuristic_features(text: str) -> tuple[np.ndarray, str]:
    """Heuristic hits (counts, capped) and the analysis text they ran on."""
    analysed = analysis_text(text)
    counts: dict[str, int] = {}
    for name, pattern in HEURISTICS.items():
        if name == "quoted":
            counts[name] = len(pattern.findall(text.lower()))
        else:
            counts[name] = _count(name, pattern, analysed)
    values = [min(2.0, float(counts[name])) for name in HEURISTICS]
    strong_hit = any(counts[n] for n in STRONG)
    # Only for spaced-out text ("d i s r e g a r d"), whose word boundaries are lost.
    squashed_hit = 0.0
    if not strong_hit and looks_spaced(text):
        squashed_hit = float(bool(SQUASHED.search(analysed.replace(" ", ""))))
    values.append(squashed_hit)
    decoded = decode_embedded(text)
    payload = 0.0
    if decoded:
        joined = " ".join(analysis_text(d) for d in decoded)
        payload = float(any(HEURISTICS[n].search(joined) for n in (*STRONG, "role_reassign")))
    values.append(payload)
    values.append(1.0 if has_invisible(text) or decode_tags(text) else 0.0)
    obfuscated = 0.0
    if strong_hit:
        plain = re.sub(r"\s+", " ", text.lower())
        if analysed.replace(" ", "") != re.sub(r"\W+", "", plain) and not any(
            HEURISTICS[n].search(plain) for n in STRONG
        ):
            obfuscated = 1.0
    values.append(obfuscated)
    strong = [FEATURES.index(n) for n in (*STRONG, "squashed", "encoded_payload")]
    values.append(1.0 if any(values[i] > 0 for i in strong) else 0.0)
    return np.asarray(values, dtype=np.float64), analysed


class InjectionOptions(GuardOptions):
    threshold: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Probability above which text is an attack; "
        "default: the threshold stored with the model (chosen on the training split).",
    )


class PromptInjectionGuard(Guard):
    name = "prompt_injection"
    description = (
        "Prompt injection and jailbreaks (EN/FR/ES/DE): heuristics on normalised text "
        "plus a hashed n-gram logistic regression shipped with the package."
    )
    default_action: ClassVar[Action] = "block"
    allowed_actions: ClassVar[tuple[Action, ...]] = ("block", "warn")
    Options = InjectionOptions
    stages: ClassVar[tuple[Stage, ...]] = ("input", "retrieval")
    lookahead = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.model = classifier.bundled_model()
        assert isinstance(self.options, InjectionOptions)
        self.threshold = self.options.threshold or self.model.threshold

    def score(self, text: str) -> float:
        if not text.strip():
            return 0.0
        features, analysed = heuristic_features(text)
        return self.model.probability(analysed, features, segments(text))

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        p = self.score(text)
        if p < self.threshold:
            return []
        category = "indirect_injection" if ctx.stage == "retrieval" else "prompt_injection"
        return [Finding(category, 0, len(text), score=p)]

    def message(self, finding: Finding) -> str:
        if finding.category == "indirect_injection":
            return "A retrieved document looks like it carries instructions for the model."
        return (
            "The request looks like a prompt-injection or jailbreak attempt and was not processed."
        )
