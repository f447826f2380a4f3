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

  function initTrial(root) {
    const form = root.querySelector("form.trial-form");
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    const token = (form.querySelector("input[name=token]") || {}).value;
    const onset = form.querySelector("[data-onset]");
    const response = form.querySelector("[data-response]");
    const img = root.querySelector("[data-stimulus]");
    // Stimulus onset: the first frame after the picture has been decoded.
    const mark = function () { requestAnimationFrame(function () { onset.value = performance.now().toFixed(1); }); };
    if (img && !(img.complete && img.naturalWidth)) {
      img.addEventListener("load", mark, { once: true });
    } else {
      mark();
    }
    form.addEventListener("submit", function () { response.value = performance.now().toFixed(1); });
    root.querySelectorAll("img").forEach(function (im) {
      im.addEventListener("error", function () { report("asset_error", im.getAttribute("alt"), token); }, { once: true });
    });
    const box = root.querySelector("[data-time-limit]");
    const limit = box && parseFloat(box.dataset.timeLimit);
    if (limit > 0) {
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
