// The known-at slider: each step is also a plain link, so the page reads without script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var slider = document.querySelector("[data-known-at-slider]");
  if (!slider) { return; }
  var links = document.querySelectorAll("[data-steps] a[data-step]");
  slider.addEventListener("change", function () {
    var link = links[Number(slider.value)];
    if (link) { window.location.assign(link.href); }
  });
});
