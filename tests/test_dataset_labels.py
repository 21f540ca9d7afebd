"""The stem-name classifier on real-world multitrack stem names."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextblock.dataset.debian import DEFAULT_CORPUS, source_for_package
from nextblock.dataset.labels import (
    DEFAULT_RULES,
    LABELS,
    classify_stem,
    label_for_debian_file,
    load_rules,
    name_tokens,
)

# Names as they appear in public multitrack sessions (Cambridge-MT style), with the label a
# mixing engineer would give them.
REAL_WORLD_STEMS = [
    ("01_LeadVox.wav", "vocals"),
    ("Vox_DT.wav", "vocals"),
    ("BVs_Hi.wav", "vocals"),
    ("03_BackingVox2.wav", "vocals"),
    ("LdVox_Comp.wav", "vocals"),
    ("Choir_L.wav", "vocals"),
    ("Harmony2.wav", "vocals"),
    ("BGV_Lo.flac", "vocals"),
    ("Vox_Room.wav", "vocals"),
    ("Kick_In.wav", "drums"),
    ("KickOut.wav", "drums"),
    ("OH_L.wav", "drums"),
    ("Overheads.wav", "drums"),
    ("Snare_Top.wav", "drums"),
    ("SnrBot.wav", "drums"),
    ("Hi_Hat.wav", "drums"),
    ("HH.wav", "drums"),
    ("Tom1.wav", "drums"),
    ("FloorTom.wav", "drums"),
    ("BassDrum.wav", "drums"),
    ("Room_Mono.wav", "drums"),
    ("Tamb.wav", "drums"),
    ("Bass_DI.wav", "bass"),
    ("BassAmp.wav", "bass"),
    ("SynthBass.wav", "bass"),
    ("UprightBass.wav", "bass"),
    ("ElecGtr1.wav", "guitars"),
    ("AcGtr_L.wav", "guitars"),
    ("Gtr_Solo.wav", "guitars"),
    ("Banjo.wav", "guitars"),
    ("Piano_Hi.wav", "keys"),
    ("Rhodes.wav", "keys"),
    ("Wurli_DI.wav", "keys"),
    ("Organ_Leslie.wav", "keys"),
    ("SynthPad.wav", "keys"),
    ("Violin1.wav", "strings"),
    ("Cello_DI.wav", "strings"),
    ("Strings_L.wav", "strings"),
    ("Trumpet.wav", "brass"),
    ("Trombone2.wav", "brass"),
    ("Horns_Section.wav", "brass"),
    ("TenorSax.wav", "brass"),
    ("Click.wav", "other"),
    ("FX_Riser.wav", "other"),
]


@pytest.mark.parametrize("name, label", REAL_WORLD_STEMS)
def test_real_world_stem_names_get_their_label(name, label):
    assert classify_stem(name) == label


@pytest.mark.parametrize(
    "path, label",
    [
        ("Drums/01_L.wav", "drums"),  # folder decides when the file name says nothing
        ("Vocals/Take3.wav", "vocals"),
        ("Guitars/Kick_Mic.wav", "drums"),  # the file name wins over the folder
    ],
)
def test_folder_names_are_used_when_file_name_is_silent(path, label):
    assert classify_stem(path) == label


def test_tokens_split_separators_digits_and_camel_case():
    assert name_tokens("01_LeadVox.wav") == ["leadvox", "lead", "vox"]
    assert name_tokens("BVs_Hi.wav") == ["bvs", "hi"]


def test_every_default_rule_emits_a_documented_label():
    assert {rule.label for rule in DEFAULT_RULES} <= set(LABELS)


def test_extra_rules_from_csv_are_tried_first(tmp_path):
    table = tmp_path / "rules.csv"
    table.write_text("label,pattern\nstrings,erhu|guzheng\nvocals,kick\n")
    rules = load_rules(table) + list(DEFAULT_RULES)
    assert classify_stem("Erhu_01.wav", rules) == "strings"
    assert classify_stem("Erhu_01.wav") == "other"
    assert classify_stem("Kick_In.wav", rules) == "vocals"


def test_bad_rule_table_names_the_row(tmp_path):
    table = tmp_path / "rules.csv"
    table.write_text("label,pattern\nstrings,erhu\nkeys,(unclosed\n")
    with pytest.raises(ValueError, match="row 2"):
        load_rules(table)


def test_debian_sources_map_kind_to_label():
    speech = source_for_package("klettres-data")
    assert (speech.kind, speech.default_label) == ("speech", "vocals")
    # speech packages ignore file names: a word recording called "bass" is still speech
    assert (
        label_for_debian_file("usr/share/klettres/en/bass.ogg", speech.default_label, speech.label_by_name) == "vocals"
    )
    music = source_for_package("wesnoth-1.16-music")
    assert label_for_debian_file("usr/share/x/battle.ogg", music.default_label, music.label_by_name) == "mix"
    samples = source_for_package("sonic-pi-samples")
    assert label_for_debian_file("samples/bd_boom.flac", samples.default_label, samples.label_by_name) == "drums"
    assert label_for_debian_file("samples/ambi_piano.flac", samples.default_label, samples.label_by_name) == "keys"
    assert label_for_debian_file("samples/misc_crow.flac", samples.default_label, samples.label_by_name) == "other"
    kit = source_for_package("hydrogen-drumkits")
    assert label_for_debian_file("GMkit/Jazz_Brush.flac", kit.default_label, kit.label_by_name) == "drums"


def test_default_corpus_is_the_allowed_list():
    assert {s.package for s in DEFAULT_CORPUS} == {
        "fillets-ng-data-cs",
        "fillets-ng-data-nl",
        "fillets-ng-data",
        "klettres-data",
        "ufoai-music",
        "warzone2100-music",
        "wesnoth-1.16-music",
        "nexuiz-music",
        "colobot-common-sounds",
        "singularity-music",
        "freedroidrpg-data",
        "openclonk-data",
        "planetblupi-music-ogg",
        "supertuxkart-data",
        "hydrogen-drumkits",
        "avldrums.lv2-soundfont",
        "sonic-pi-samples",
    }


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_- .", max_size=40))
def test_classifier_always_returns_a_known_label(name):
    assert classify_stem(name + ".wav") in LABELS
