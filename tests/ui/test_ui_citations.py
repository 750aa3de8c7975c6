"""Citations -> seek links, on fixed text (the tiny model's answers are noise, so no model here)."""
import pytest

from omnivideo.ui.citations import cited_times, linkify, parse_time, seek_link


@pytest.mark.parametrize("text, seconds", [("00:00", 0.0), ("01:05", 65.0), ("59:59", 3599.0),
                                           ("125:00", 7500.0), ("1:02:05", 3725.0), ("10:00:00", 36000.0)])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["1:2:3:4", "ab:cd", "65", "01:5x", ""])
def test_parse_time_rejects(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_single_citation_becomes_a_seek_link():
    out = linkify("The ball crosses the line at [01:05], then again.")
    assert out == ('The ball crosses the line at [<a href="#t=65" class="ov-seek" title="Play from 01:05">'
                   '01:05</a>], then again.')


def test_hours_and_ranges():
    out = linkify("Intro [0:00:07]; the talk runs [12:30-14:02] and [1:00:00 to 1:00:30].")
    assert '<a href="#t=7" class="ov-seek" title="Play from 0:00:07">0:00:07</a>' in out
    assert ('[<a href="#t=750" class="ov-seek" title="Play from 12:30">12:30</a>-'
            '<a href="#t=842" class="ov-seek" title="Play from 14:02">14:02</a>]') in out
    assert ('[<a href="#t=3600" class="ov-seek" title="Play from 1:00:00">1:00:00</a> to '
            '<a href="#t=3630" class="ov-seek" title="Play from 1:00:30">1:00:30</a>]') in out
    assert cited_times("Intro [0:00:07]; the talk runs [12:30-14:02] and [1:00:00 to 1:00:30].") == \
        [7.0, 750.0, 842.0, 3600.0, 3630.0]


def test_not_citations_stay_text():
    text = "Scores 3:1 at 12:30, [see notes], [1:75], [abc:de] and a link [x](http://a.b)."
    assert linkify(text) == text
    assert cited_times(text) == []


def test_citations_past_the_end_are_not_links():
    out = linkify("Early [00:04], invented [09:59].", duration_s=6.0)
    assert 'href="#t=4"' in out
    assert "[09:59]" in out and 'href="#t=599"' not in out
    # one second of slack past the end: the last frame's time, rounded up, still links
    assert 'href="#t=7"' in linkify("[00:07]", duration_s=6.2)


def test_model_html_is_escaped_but_markdown_survives():
    out = linkify("**Bold** <img src=x onerror=alert(1)> & <script>x</script> at [00:02]\n> quote")
    assert "<img" not in out and "<script" not in out
    assert "&lt;img src=x onerror=alert(1)> &amp; &lt;script>x&lt;/script>" in out
    assert out.startswith("**Bold**") and out.endswith("\n> quote")
    assert 'href="#t=2"' in out


def test_seek_link_label_is_escaped():
    assert seek_link(1.5, "<b>") == '<a href="#t=1.5" class="ov-seek" title="Play from &lt;b&gt;">&lt;b&gt;</a>'
