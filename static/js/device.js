// What the browser is like, for the researcher's data: device class, window and screen size on the
// consent form, and on every trial form whether the tab was hidden while the trial was shown.
// Every form works without this file (the server then records no sizes and no tab state).
(function () {
  "use strict";
  function deviceClass() {
    var coarse = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
    var shortSide = Math.min(window.screen.width, window.screen.height);
    if (!coarse) return "desktop";
    return shortSide < 600 ? "phone" : "tablet";
  }
  function put(form, name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = String(value);
  }
  var hidden = document.visibilityState === "hidden";
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") hidden = true;
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.hasAttribute("data-device")) {
      put(form, "device_class", deviceClass());
      put(form, "viewport_w", Math.round(window.innerWidth));
      put(form, "viewport_h", Math.round(window.innerHeight));
      put(form, "screen_w", Math.round(window.screen.width));
      put(form, "screen_h", Math.round(window.screen.height));
    }
    if (form.classList.contains("trial-form")) put(form, "tab_hidden", hidden ? "1" : "0");
  }, true);
})();
