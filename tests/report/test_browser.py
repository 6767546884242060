"""The demo's pages in a real browser (headless Chromium driven by Playwright): the index links
every report and the comparison; each page loads without a JavaScript error; the headline
figures, plots and trace viewer are there and filled; filters, paging and clicks work; R1 text
with a long episode is collapsed and a ``</script>`` in a trace stays text. Skips where Chromium
is absent (``apt-get install chromium``; .ci/run installs it)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from mrt.cli import main

CHROMIUM = os.environ.get("MRT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM, reason="no Chromium here (apt-get install chromium, or set MRT_CHROMIUM)"
)


@pytest.fixture(scope="module")
def browser():
    pw = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extras have it)")
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    assert main(["demo", "--out", str(out), "--n-problems", "4", "--train-steps", "1"]) == 0
    return out


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.resolve().as_uri())
    return page, errors


def _viewer_works(page, multi: bool):
    page.wait_for_selector("#mrt-viewer[data-ready='1']", timeout=10000)
    rows = page.locator("#mrt-viewer table.list tr.row")
    n = rows.count()
    assert n > 0
    assert page.locator("#mrt-viewer .trace").count() >= 1  # the first trace is open
    eps = page.locator("#mrt-viewer .trace .ep")
    if eps.count():
        assert "rgba" in eps.first.get_attribute("style")  # shaded by its progress
        eps.first.click()
        assert "J before" in page.locator("#mrt-viewer .detail").first.inner_text()
    page.select_option("#mrt-viewer select[name=ok]", "wrong")
    wrong = rows.count()
    page.select_option("#mrt-viewer select[name=ok]", "correct")
    correct = rows.count()
    assert wrong + correct == min(n, 50) or wrong + correct >= n  # every trace is one or the other
    page.select_option("#mrt-viewer select[name=ok]", "all")
    page.select_option("#mrt-viewer select[name=sort]", "n-desc")
    tokens = [
        int(x)
        for x in page.locator(f"#mrt-viewer table.list tr.row td:nth-child({5 if multi else 4})").all_inner_texts()
    ]
    assert tokens == sorted(tokens, reverse=True)
    rows.nth(0).click()
    if multi:
        assert page.locator("#mrt-viewer .cols .trace").count() >= 2  # the problem in several runs


@needs_chromium
def test_demo_pages_in_chromium(browser, demo, tmp_path):
    index = demo / "index.html"
    assert index.is_file()
    page, errors = _open(browser, index)
    links = list(dict.fromkeys(page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")))
    assert "compare/compare.html" in links and "base/report.html" in links and "mrt/eval/report.html" in links
    # the front page: a card per run with its headline figures (the regret split), the overlaid curves
    cards = page.locator(".card.run")
    assert cards.count() == 4
    texts = [cards.nth(i).inner_text() for i in range(4)]
    assert [t.splitlines()[0] for t in texts] == ["base", "base-hard", "grpo", "mrt"]
    assert all("accuracy" in t and "before thinking" in t and "thinking tokens" in t for t in texts)
    assert all("training steps" in t and "sampled tokens" in t for t in texts[2:])
    assert not any("training steps" in t for t in texts[:2])
    assert page.locator("img").evaluate_all("els => els.map(e => e.naturalWidth)")[0] > 100
    assert not [e for e in errors if "favicon" not in e], errors
    page.close()
    links = [h for h in links if ":" not in h]  # the reports, not the definitions page (file:)
    for href in links:
        multi = href.startswith("compare")
        page, errors = _open(browser, demo / href)
        if not multi:
            cards = page.locator(".headline .card")
            assert cards.count() >= 4
            assert "Accuracy" in cards.first.inner_text() and "[" in cards.first.inner_text()  # with its interval
        else:
            assert page.locator("table th").first.inner_text() == "run"
        imgs = page.locator("img")
        assert imgs.count() >= 3
        assert all(w > 100 for w in imgs.evaluate_all("els => els.map(e => e.naturalWidth)"))  # decoded PNGs
        _viewer_works(page, multi)
        assert not errors, f"{href}: {errors}"
        if os.environ.get("MRT_SCREENSHOTS"):  # docs/img (scripts/screenshots.sh)
            page.screenshot(
                path=str(Path(os.environ["MRT_SCREENSHOTS"]) / (href.replace("/", "-") + ".png")), full_page=False
            )
        page.close()


@needs_chromium
def test_r1_text_long_episodes_and_escaping(browser, smollm2_dir, tmp_path):
    long_par = "Let me compute carefully. " * 40  # one episode of > 600 characters
    output = (
        f"First, 17 + 25 = 42.\n\n{long_par}\n\nWait, check </script><script>window.pwned=1</script> "
        "25 + 17 = 42.\n</think>\n\nThe answer is \\boxed{42}."
    )
    traces = tmp_path / "traces.jsonl"
    traces.write_text(
        json.dumps({"problem_id": "add", "problem": "What is 17 + 25?", "answer": "42", "output": output}) + "\n"
    )
    out = tmp_path / "an"
    assert (
        main(
            [
                "analyze",
                "--model",
                str(smollm2_dir),
                "--task",
                "math",
                "--knobs",
                "episode_group_size=1",
                "--traces",
                str(traces),
                "--answers-per-prefix",
                "2",
                "--answer-tokens",
                "8",
                "--extensions",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    page, errors = _open(browser, out / "report.html")
    page.wait_for_selector("#mrt-viewer[data-ready='1']")
    text = page.locator("#mrt-viewer .trace .text").inner_text()
    assert "characters: show]" in text and text.count("Let me compute carefully.") < 40  # collapsed
    page.locator("#mrt-viewer .text .more").first.click()
    assert page.locator("#mrt-viewer .trace .text").inner_text().count("Let me compute carefully.") == 40
    assert "</script><script>window.pwned=1</script>" in page.locator("#mrt-viewer .trace .text").inner_text()
    assert page.evaluate("window.pwned === undefined")
    assert not errors, errors


def test_report_of_a_bad_run_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no finished analysis" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text(json.dumps({"accuracy": 0.5}))
    (tmp_path / "traces.jsonl").write_text("{}\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "written by an older mrt" in capsys.readouterr().err
