from mrt.core.episodes import chunk_ends, didactic_ends, r1_episode_starts, segment_r1

PARAS = [
    "Let me start.",
    "Compute x.",
    "Wait, check.",
    "x=2.",
    "Alternatively, y.",
    "But wait, no.",
    "ok",
    "But hold on",
    "Done.",
]
TEXT = "\n\n".join(PARAS)


def test_r1_min_gap_and_markers():
    # "Wait" at 2 is only 2 paragraphs after the start; "But wait" at 5 is 1 after the start at 4.
    assert r1_episode_starts(PARAS) == [4, 7]


def test_r1_segments_and_offsets():
    seg = segment_r1(TEXT, max_steps=49, group_size=1)
    assert seg.episodes == ["\n\n".join(PARAS[0:4]), "\n\n".join(PARAS[4:7]), "\n\n".join(PARAS[7:9])]
    assert seg.char_ends[-1] == len(TEXT)
    assert TEXT[: seg.char_ends[0]] == seg.episodes[0]
    assert TEXT[: seg.char_ends[1]] == "\n\n".join(PARAS[0:7])
    assert seg.prefix(1) == seg.episodes[0] + "\n\n"
    assert seg.prefix(0) == ""


def test_r1_max_steps_keeps_remainder_as_last_episode():
    seg = segment_r1(TEXT, max_steps=1, group_size=1)
    assert seg.episodes == ["\n\n".join(PARAS[0:4]), "\n\n".join(PARAS[4:9])]


def test_r1_grouping():
    seg = segment_r1(TEXT, max_steps=49, group_size=2)
    assert seg.episodes == ["\n\n".join(PARAS[0:7]), "\n\n".join(PARAS[7:9])]
    assert seg.char_ends == [len("\n\n".join(PARAS[0:7])), len(TEXT)]


def test_r1_marker_must_open_the_paragraph():
    paras = ["a", "b", "c", "I said Wait", "e"]
    assert r1_episode_starts(paras) == []
    assert segment_r1("").episodes == []


def test_didactic_and_chunk_ends():
    toks = "try v1 v2 dead try v1 v3 found check v1 v3 found".split()
    assert didactic_ends(toks) == [4, 8, 12]
    assert didactic_ends([]) == []
    assert didactic_ends(["v1", "try", "v2"]) == [1, 3]
    assert chunk_ends(10, 4) == [4, 8, 10]
    assert chunk_ends(8, 4) == [4, 8]


def test_r1_marker_after_leading_whitespace_is_not_a_boundary():
    # the authors match the paragraph's first characters, with no strip
    paras = ["a", "b", "c", " Wait, spaced", "\nWait, newline", "d", "e", "Wait, real"]
    assert r1_episode_starts(paras) == [7]
