"""A participant's walk through a study in a real browser, checking every page at a desktop and a
phone size: no sideways scrolling, the answer control on the first desktop screen (and the gull,
with its explanation beside it), no console errors, no broken images, no text under 12 px. Used
by test_browser.py.

Each page is checked at both sizes in the same tab (resizing re-lays it out; no second visit),
then answered as a person would: by clicking labels and buttons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DESKTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
MIN_TEXT_PX = 12.0

# What the page looks like, measured in the page: how far it scrolls sideways, where the answer
# control ends, the smallest visible text (SVG text scaled by its drawing's transform, since a
# diagram shrunk to fit draws its text smaller than its font-size says), images that failed.
MEASURE = """() => {
  const doc = document.documentElement;
  const out = {overflow: doc.scrollWidth - doc.clientWidth, small: [], broken: [], submit: null, last_choice: null};
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || seen.has(el) || !walker.currentNode.textContent.trim()) continue;
    seen.add(el);
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    if (r.width <= 1 || r.height <= 1 || cs.visibility === "hidden" || r.right < 0) continue;  // not shown
    let px = parseFloat(cs.fontSize);
    if (el instanceof SVGElement && el.getScreenCTM) {
      const m = el.getScreenCTM();
      if (m) px *= Math.hypot(m.a, m.b);
    }
    if (px < MIN_PX) out.small.push(`${px.toFixed(1)}px: ${el.textContent.trim().slice(0, 40)}`);
  }
  document.querySelectorAll("img").forEach((im) => {
    if (im.complete && im.naturalWidth === 0) out.broken.push(im.getAttribute("alt") || im.src);
  });
  const submit = document.querySelector("form.trial-form button[type=submit]");
  if (submit) out.submit = submit.getBoundingClientRect().bottom;
  const choices = document.querySelectorAll("form.trial-form .choices label");
  if (choices.length) out.last_choice = choices[choices.length - 1].getBoundingClientRect().bottom;
  const gull = document.querySelector("[data-stimulus]");
  if (gull) out.gull = gull.getBoundingClientRect().bottom;
  const explanation = document.querySelector(".trial .explanation");
  if (explanation) out.explanation = explanation.getBoundingClientRect().top;
  out.height = window.innerHeight;
  return out;
}""".replace("MIN_PX", str(MIN_TEXT_PX))


@dataclass
class Walk:
    """What one walk found: problems (one line each), pages visited, screenshots written."""

    problems: list[str] = field(default_factory=list)
    pages: int = 0
    shots: list[Path] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    banners: int = 0  # pages that said "Preview"


def check(page: Any, label: str, walk: Walk, shots: Path | None) -> None:
    """Check the page as it is now at both sizes; a screenshot of the first page of each kind."""
    for name, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.evaluate("window.scrollTo(0, 0)")
        m = page.evaluate(MEASURE)
        where = f"{label} at {name} {size['width']}x{size['height']}"
        if m["overflow"] > 0:
            walk.problems.append(f"{where}: scrolls sideways by {m['overflow']} px")
        if m["small"]:
            walk.problems.append(f"{where}: text under {MIN_TEXT_PX:g} px: {'; '.join(m['small'][:3])}")
        if m["broken"]:
            walk.problems.append(f"{where}: images did not load: {m['broken'][:3]}")
        bottom = max(m["submit"] or 0, m["last_choice"] or 0)
        if name == "desktop" and bottom > m["height"]:
            walk.problems.append(f"{where}: the answer ends {bottom:.0f} px down, below the first screen")
        if name == "desktop" and m.get("gull", 0) > m["height"]:
            walk.problems.append(f"{where}: the gull ends {m['gull']:.0f} px down, below the first screen")
        if name == "desktop" and m.get("explanation", 0) > m["height"] / 2:
            walk.problems.append(f"{where}: the explanation starts {m['explanation']:.0f} px down, not beside the gull")
        if shots is not None:
            path = shots / f"{label}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            walk.shots.append(path)
    page.set_viewport_size(DESKTOP)


def answer(page: Any, kind: str, attention_answers: set[str]) -> None:
    """Answer the page in front of us as a person would, and wait for the next one."""
    with page.expect_navigation(wait_until="load"):
        if kind == "consent":
            page.locator("button[value=agree]").click()
        elif kind == "questionnaire":
            for box in page.locator("fieldset.question").all():
                if box.locator(".likert").count():
                    box.locator("label.likert-point").last.click()
                elif box.locator("input[type=number]").count():
                    box.locator("input[type=number]").fill("30")
                elif box.locator("textarea").count():
                    box.locator("textarea").fill("By the colour of the back and the legs.")
                else:
                    box.locator("label.choice").first.click()
            page.locator("form button[type=submit]").click()
        elif kind == "attention":
            labels = page.locator("label.choice")
            texts = [t.strip() for t in labels.all_inner_texts()]
            pick = next((i for i, t in enumerate(texts) if t in attention_answers), 0)
            labels.nth(pick).click()
            page.locator("form button[type=submit]").click()
        elif kind == "trials":
            page.locator("form.trial-form .choices label.choice").first.click()
            if page.locator("input[name=confidence]").count():
                page.locator("form.trial-form label.likert-point").nth(2).click()
            page.locator("form.trial-form button[type=submit]").click()
        elif kind == "feedback":
            page.get_by_role("link", name="Continue").click()
        else:  # instructions, break
            page.locator("form button[type=submit]").click()


CHECKED_PER_BLOCK = 3  # trials (and their feedback) checked in each block; the rest are answered over HTTP


def walk(page: Any, url: str, prefix: str, shots: Path | None, attention_answers: set[str], limit: int = 200) -> Walk:
    """Take the study from `url` to its completion page, checking every page on the way.

    Every kind of page is measured, and the first CHECKED_PER_BLOCK trials of each block (their
    pictures and explanations differ); the rest of a block is answered by posting its forms, to
    keep the walk short. A screenshot is kept of the first page of each step (and stage)."""
    found = Walk()
    errors: list[str] = []

    def console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"{msg.text} ({msg.location.get('url', '')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size(DESKTOP)
    page.goto(url, wait_until="load")
    shot_keys: set[str] = set()
    for _ in range(limit):
        kind = page.locator("main").get_attribute("data-page") or "page"
        found.kinds.add(kind)
        found.pages += 1
        found.banners += page.locator(".preview-banner").is_visible()
        form_page = page.locator("input[name=page]")
        step = form_page.get_attribute("value") if form_page.count() else ""
        key = f"{kind}-{_block(page, kind)}"
        label = f"{prefix}-{found.pages:03d}-{re.sub(r'[^a-z0-9-]+', '-', key.lower())}"
        keep = key not in shot_keys
        shot_keys.add(key)
        check(page, label, found, shots if keep else None)
        for e in errors:
            found.problems.append(f"{label}: console error: {e}")
        errors.clear()
        if kind == "completion" or (not step and kind != "feedback"):
            break
        links = page.locator("a[href*='/guides']")  # a species reference beside the trial: checked once
        if links.count() and "guides" not in found.kinds:
            found.kinds.add("guides")
            _check_linked(page, links.first.get_attribute("href") or "", f"{prefix}-guides", found, shots)
        if kind == "trials" and _fast_forward(page, url):
            continue
        answer(page, kind, attention_answers)
    else:
        found.problems.append(f"{prefix}: did not reach the completion page in {limit} pages")
    return found


def _check_linked(page: Any, href: str, label: str, walk: Walk, shots: Path | None) -> None:
    """A page the trial links to (opened in a tab of its own), checked at both sizes."""
    other = page.context.new_page()
    errors: list[str] = []
    other.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        other.goto(page.url.split("/p/")[0] + href if href.startswith("/") else href, wait_until="load")
        check(other, label, walk, shots)
    finally:
        other.close()
    walk.problems += [f"{label}: console error: {e}" for e in errors]


def _fast_forward(page: Any, url: str) -> bool:
    """Past the first CHECKED_PER_BLOCK trials of a one-stage block: answer the rest of it by
    posting its forms (the first option; confidence 3), then open the page after it."""
    number, size = map(int, re.findall(r"\d+", page.locator(".trial-count").inner_text())[-2:])
    if number <= CHECKED_PER_BLOCK or page.locator(".first-answer").count():
        return False
    form = page.locator("form.trial-form")
    fields = {
        el.get_attribute("name"): el.get_attribute("value") or "" for el in form.locator("input[type=hidden]").all()
    }
    fields["answer"] = form.locator("input[name=answer]").first.get_attribute("value") or ""
    if form.locator("input[name=confidence]").count():
        fields["confidence"] = "3"
    action = page.url.split("/p/")[0] + (form.get_attribute("action") or "")
    first = int(fields["page"])
    for offset in range(size - number + 1):
        sent = page.request.post(action, form={**fields, "page": str(first + offset)}, max_redirects=0)
        assert sent.status == 303, (sent.status, sent.text()[:300])
    page.goto(url, wait_until="load")
    return True


def _block(page: Any, kind: str) -> str:
    """Which step a page belongs to, for naming screenshots: the trial block's phase, or the heading."""
    if kind == "trials":
        text = page.locator(".trial-count").inner_text()
        return text.split(":")[0]
    heading = page.locator("h1")
    return heading.first.inner_text()[:30] if heading.count() else kind
