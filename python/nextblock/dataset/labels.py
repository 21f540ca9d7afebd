"""Classify a stem by instrument from its file and folder names.

The table
---------
:data:`DEFAULT_RULES` is an ordered list of :class:`LabelRule`. A name is cut
into lower-case *tokens* twice – on separators/digits (``"BVs_Hi"`` →
``bvs, hi``) and additionally on camelCase (``"LeadVox"`` → ``lead, vox``) –
and the **first rule** with a token matching its regular expression (full
match) decides. The file name is tried first, then its folders from the
nearest outwards; nothing matching gives ``"other"``.

=============  =============================================================
label          typical names
=============  =============================================================
drums          Kick_In, Snare_Top, HH, OH_L, Tom1, BassDrum, Cymbal, 808
vocals         LeadVox, Vox_DT, BVs_Hi, BGV, Backing, Choir, Harmony, Speech
bass           Bass_DI, BassAmp, SubBass, Upright, DoubleBass
guitars        ElecGtr, AcGtr, Gtr_L, Guitar, Banjo, Mandolin, Ukulele
keys           Piano, Rhodes, Wurli, Organ, Hammond, Synth, Pad, Clav
strings        Violin, Viola, Cello, Strings, Fiddle, Harp
brass          Trumpet, Trombone, Horns, Tuba, Sax (horn sections)
drums          (weak cues, tried last) Room, Perc, Kit, Loop, Amb
other          anything else (FX, click, noise…)
=============  =============================================================

Order matters: specific drum names come first so ``BassDrum`` is drums, not
bass; ``bass`` comes before ``keys``/``guitars`` so ``SynthBass`` and
``BassGtr`` are bass; weak drum cues come last so ``Vox_Room`` is vocals.

Extending
---------
:func:`load_rules` reads extra rules from a CSV/JSON file with ``label`` and
``pattern`` columns; they are tried **before** the defaults.

Debian sources
--------------
Whole recordings from the project's own corpus are labelled by
:func:`label_for_debian_file`: speech packages → ``vocals`` (kind
``speech``), music packages → ``mix``, instrument packs → by name, falling back
to the package default (drum kits → ``drums``, sonic-pi → ``other``). See
:mod:`nextblock.dataset.debian`.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

LABELS = ("vocals", "drums", "bass", "guitars", "keys", "strings", "brass", "mix", "other")
"""Every label ``sort`` can emit (``mix`` = a full mix, used for whole music recordings)."""


@dataclass(frozen=True)
class LabelRule:
    """A label and the token pattern (regex, full match, lower case) that selects it."""

    label: str
    pattern: str

    def matches(self, token: str) -> bool:
        """True when ``token`` fully matches the pattern."""
        return re.fullmatch(self.pattern, token) is not None


DEFAULT_RULES: tuple[LabelRule, ...] = (
    LabelRule(
        "drums",
        r"kick\w*|kik|bd|bassdrum|snare\w*|snr|sn|sd|hh|hats?|hihats?|oh|ohs|ovhd|overheads?|toms?|ftom|"
        r"rtom|floortom|ride|crash|cymbals?|china|splash|drums?|drumkit|clap|claps|shaker|tamb\w*|conga\w*|"
        r"bongo\w*|tabla\w*|cowbell|808|909|amen|breakbeat|snap",
    ),
    LabelRule(
        "vocals",
        r"\w*vox|vocals?|voc|vx|lv|bv|bvs|bgvs?|bkg|backing\w*|backings|harmon(y|ies)|choir|chorale?|singers?|"
        r"sing|adlibs?|speech|spoken|voice\w*|narration|dialog(ue)?|rap|\w*vocal\w*",
    ),
    LabelRule("bass", r"bass\w*|\w*bass|bs|contrabass|upright|sub|808bass"),
    LabelRule(
        "guitars",
        r"gtrs?|\w*gtr\w*|guitars?|\w*guitar\w*|guit\w*|eg|ag|dobro|banjo|mandolin|ukulele|uke|steel|lapsteel",
    ),
    LabelRule(
        "keys",
        r"piano\w*|pno|keys?|keyboards?|organ|hammond|b3|rhodes|wurli\w*|synths?|syn|pads?|clav\w*|"
        r"harpsichord|mellotron|celesta|epiano|ep|moog|arp",
    ),
    LabelRule("strings", r"violins?|vln|vl|viola|vla|cello|vc|strings?|str|fiddle|harp|quartet|orch\w*"),
    LabelRule(
        "brass",
        r"trumpets?|tpt|trp|trombones?|tbn|horns?|tuba|brass|sax\w*|flugel\w*|cornet|euphonium",
    ),
    LabelRule("drums", r"room\w*|perc\w*|kit|loops?|amb|drm|beat\w*"),
)
"""The documented default table (see module docstring)."""

_SPLIT_SEPARATORS = re.compile(r"[^a-z0-9]+|(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2,})")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3", ".w64", ".rf64", ".caf")


def name_tokens(name: str) -> list[str]:
    """Lower-case tokens of one path component (extension removed).

    Parameters
    ----------
    name:
        A file or folder name, e.g. ``"01_LeadVox.wav"``.

    Returns
    -------
    Tokens split on separators and digits, followed by the camelCase split,
    without duplicates and without pure numbers except ``808``/``909``:
    ``"01_LeadVox.wav"`` → ``["leadvox", "lead", "vox"]``.
    """
    stem = name
    lowered = stem.lower()
    for suffix in _AUDIO_SUFFIXES:
        if lowered.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    coarse = [t for t in _SPLIT_SEPARATORS.split(stem.lower()) if t]
    fine = [t for t in _SPLIT_SEPARATORS.split(_CAMEL_BOUNDARY.sub(" ", stem).lower()) if t]
    tokens: list[str] = []
    for token in coarse + fine:
        if token.isdigit() and token not in ("808", "909"):
            continue
        if token not in tokens:
            tokens.append(token)
    return tokens


def classify_name(name: str, rules: tuple[LabelRule, ...] | list[LabelRule] = DEFAULT_RULES) -> str | None:
    """Label of one name component, or None when no rule matches."""
    tokens = name_tokens(name)
    for rule in rules:
        if any(rule.matches(token) for token in tokens):
            return rule.label
    return None


def classify_stem(
    path: str | PurePath, rules: tuple[LabelRule, ...] | list[LabelRule] = DEFAULT_RULES, default: str = "other"
) -> str:
    """Label of a stem from its file name, then its folders (nearest first).

    Parameters
    ----------
    path:
        Path of the stem *relative to the session root* (absolute cache
        folders would add noise such as ``nextblock``).
    rules:
        Ordered rule table.
    default:
        Label when nothing matches.

    Examples
    --------
    >>> classify_stem("Session/01_LeadVox.wav")
    'vocals'
    >>> classify_stem("Drums/OH_L.wav")
    'drums'
    """
    parts = PurePath(path).parts
    for component in reversed(parts):
        label = classify_name(component, rules)
        if label is not None:
            return label
    return default


def label_for_debian_file(
    relative_path: str | PurePath,
    default_label: str,
    label_by_name: bool,
    rules: tuple[LabelRule, ...] | list[LabelRule] = DEFAULT_RULES,
) -> str:
    """Label of one audio file inside an unpacked Debian package.

    Parameters
    ----------
    relative_path:
        Path inside the package (e.g. ``usr/share/sonic-pi/samples/bd_boom.flac``).
    default_label:
        The package's label (:class:`nextblock.dataset.debian.DebianSource`).
    label_by_name:
        Classify by file name first (instrument packs) or not (speech, music).
    """
    if not label_by_name:
        return default_label
    label = classify_name(PurePath(relative_path).name, rules)
    return default_label if label is None else label


def load_rules(path: str | Path) -> list[LabelRule]:
    """Read extra rules (``label``, ``pattern`` columns) from CSV or JSON.

    Raises
    ------
    ValueError
        Missing columns or an invalid regular expression (message names the row).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    rows = json.loads(text) if path.suffix.lower() == ".json" else list(csv.DictReader(text.splitlines()))
    rules = []
    for number, row in enumerate(rows, start=1):
        label, pattern = str(row.get("label", "")).strip(), str(row.get("pattern", "")).strip()
        if not label or not pattern:
            raise ValueError(f"{path} row {number}: needs 'label' and 'pattern'")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{path} row {number}: bad pattern {pattern!r}: {error}") from None
        rules.append(LabelRule(label, pattern.lower()))
    return rules
