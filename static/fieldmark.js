// Fieldmark participant pages: timing, time limits, asset-error reports, Prolific redirect.
// Everything here is an enhancement: every page works as a plain form without it.
(function () {
  "use strict";

  function participantCode() {
    const m = location.pathname.match(/^\/p\/([^/]+)/);
    return m ? m[1] : null;
  }

  function report(kind, what, token) {
    const code = participantCode();
    if (!code || !token) return;
    const body = new URLSearchParams({ kind: kind, what: what || "", token: token });
    fetch("/p/" + code + "/event", { method: "POST", body: body, keepalive: true }).catch(function () {});
  }

  // Resolves when every picture under `box` that is on show has loaded (or failed: a failure is
  // reported, not waited for) and been decoded: <img> elements (a <picture>'s chosen source
  // included), and pictures an inline SVG draws (<image>). Pictures the participant must open
  // first (lazy ones, those in a closed <details>) are not part of the onset.
  function whenShown(box) {
    if (!box) return Promise.resolve();
    const waits = [];
    box.querySelectorAll("img").forEach(function (im) {
      if (im.loading === "lazy" || im.closest("details:not([open])")) return;
      waits.push(new Promise(function (done) {
        if (im.complete) return done();
        im.addEventListener("load", done, { once: true });
        im.addEventListener("error", done, { once: true });
      }).then(function () { return im.naturalWidth && im.decode ? im.decode().catch(function () {}) : null; }));
    });
    box.querySelectorAll("svg image").forEach(function (el) {
      const href = el.getAttribute("href") || el.getAttribute("xlink:href");
      if (!href) return;
      const copy = new Image();  // the browser's cache (or the data: URL) answers for the SVG's own picture
      copy.src = href;
      waits.push(copy.decode().catch(function () {}));
    });
    return Promise.all(waits);
  }

  function initTrial(root) {
    const form = root.querySelector("form.trial-form");
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    const token = (form.querySelector("input[name=token]") || {}).value;
    const onset = form.querySelector("[data-onset]");
    const response = form.querySelector("[data-response]");
    // Stimulus onset: the first frame in which everything the trial shows is on screen: the gull
    // and every picture of the explanation and the task (A and B), whatever the condition. Until
    // then the pictures are hidden, so that they appear together.
    const media = root.querySelector(".trial");
    if (media) media.classList.add("waiting");
    whenShown(media).then(function () {
      requestAnimationFrame(function () {
        if (media) media.classList.remove("waiting");
        requestAnimationFrame(function () {
          onset.value = performance.now().toFixed(1);
          startTimeLimit(root, form, response, token);  // the time limit counts from onset too
        });
      });
    });
    form.addEventListener("submit", function () { response.value = performance.now().toFixed(1); });
    root.querySelectorAll("img").forEach(function (im) {
      im.addEventListener("error", function () { report("asset_error", im.getAttribute("alt"), token); }, { once: true });
    });
  }

  function startTimeLimit(root, form, response, token) {
    const box = root.querySelector("[data-time-limit]");
    const limit = box && parseFloat(box.dataset.timeLimit);
    if (!(limit > 0)) return;
    const timer = root.querySelector("[data-timer]");
    const started = performance.now();
    const tick = setInterval(function () {
      const left = Math.max(0, limit - (performance.now() - started) / 1000);
      if (timer) timer.textContent = "Time left: " + Math.ceil(left) + " s";
      if (left <= 0) {
        clearInterval(tick);
        form.querySelector("[data-timed-out]").value = "1";
        response.value = performance.now().toFixed(1);
        report("timeout", "", token);
        form.requestSubmit ? form.requestSubmit() : form.submit();
      }
    }, 250);
  }

  // A second click while the answer is on its way would only be ignored by the server; say so.
  function guardDoubleSubmit(root) {
    root.querySelectorAll("form[method=post]").forEach(function (form) {
      form.addEventListener("submit", function () {
        setTimeout(function () {
          form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });
  }

  function initCompletion(root) {
    const link = root.querySelector("a[data-redirect]");
    if (link) setTimeout(function () { location.href = link.href; }, 3000);
    // The code is on the page either way; with JavaScript (and a secure page) it also copies in one click.
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      const code = document.getElementById(button.dataset.copy);
      if (!code || !navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(code.textContent.trim()).then(
          function () { button.textContent = "Copied"; },
          function () { button.textContent = "Select the code and copy it"; }
        );
      });
    });
  }

  function init(root) {
    initTrial(root);
    guardDoubleSubmit(root);
    initCompletion(root);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
})();
