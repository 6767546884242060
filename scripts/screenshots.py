"""Screenshots of a demo's pages for the docs, in headless Chromium (Playwright):

    python scripts/screenshots.py runs/demo docs/img/report

Writes the demo's reports, comparison and index again from its run directories (``mrt report``,
``mrt compare``), then ``report.png`` (the headline and first plots of the base model's report),
``viewer.png`` (a trace with its episodes shaded by progress, one episode opened) and
``compare.png`` (the same problem in base, grpo and mrt). Chromium: ``MRT_CHROMIUM`` or
``chromium`` on the PATH.
"""

import os
import shutil
import sys
from pathlib import Path


def main(demo: str, out: str):
    from playwright.sync_api import sync_playwright

    from mrt.report.analysis import load_run_dir, write_index, write_report
    from mrt.report.compare import compare

    d, o = Path(demo), Path(out)
    o.mkdir(parents=True, exist_ok=True)
    runs = {"base": d / "base", "base-hard": d / "base-hard", "grpo": d / "grpo" / "eval", "mrt": d / "mrt" / "eval"}
    for path in runs.values():
        write_report(path, *load_run_dir(path))
    compare([str(d / "base"), str(d / "grpo"), str(d / "mrt")], str(d / "compare"))
    write_index(
        d,
        [
            ("base: report", "base/report.html", "the base model on the held-out set"),
            ("base-hard: report", "base-hard/report.html", "the base model on the harder held-out set"),
            ("grpo: report", "grpo/eval/report.html", "the grpo model on the held-out set"),
            ("mrt: report", "mrt/eval/report.html", "the mrt model on the held-out set"),
            ("comparison", "compare/compare.html", "base, grpo and mrt side by side, with their traces"),
        ],
        "mrt demo: the didactic world end to end",
    )
    chromium = os.environ.get("MRT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1200, "height": 820})
        page.goto((d / "base" / "report.html").resolve().as_uri())
        page.wait_for_selector("#mrt-viewer[data-ready='1']")
        page.screenshot(path=str(o / "report.png"))
        page.select_option("#mrt-viewer select[name=sort]", "n-desc")
        page.locator("#mrt-viewer table.list tr.row").nth(3).click()
        page.locator("#mrt-viewer .trace .ep").nth(2).click()
        page.locator("#mrt-viewer .trace").scroll_into_view_if_needed()
        page.evaluate("document.querySelector('#mrt-viewer .trace').scrollIntoView({block: 'start'})")
        page.screenshot(path=str(o / "viewer.png"))
        page.goto((d / "compare" / "compare.html").resolve().as_uri())
        page.wait_for_selector("#mrt-viewer[data-ready='1']")
        page.select_option("#mrt-viewer select[name=sort]", "n-desc")
        page.locator("#mrt-viewer table.list tr.row").nth(0).click()
        page.evaluate("document.querySelector('#mrt-viewer .cols').scrollIntoView({block: 'start'})")
        page.screenshot(path=str(o / "compare.png"))
        page.goto((d / "compare" / "compare.html").resolve().as_uri())
        page.screenshot(path=str(o / "compare-headline.png"))
        b.close()
    print(f"screenshots in {o}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
