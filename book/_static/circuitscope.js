/* circuitscope: a figure shown smaller than it was drawn (a phone's column) opens full size on
 * click, in an overlay that scrolls; a second click, or Escape, closes it. No other behaviour. */
(function () {
  "use strict";
  function close(overlay) {
    if (overlay && overlay.parentNode) overlay.parentNode.removeChild(overlay);
  }
  function open(img) {
    var overlay = document.createElement("div");
    overlay.className = "circuitscope-zoom";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", "Figure at full size (click or press Escape to close)");
    var big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt || "";
    overlay.appendChild(big);
    overlay.addEventListener("click", function () { close(overlay); });
    document.addEventListener("keydown", function esc(e) {
      if (e.key === "Escape") { close(overlay); document.removeEventListener("keydown", esc); }
    });
    document.body.appendChild(overlay);
  }
  document.addEventListener("mouseover", function (e) {
    var img = e.target;
    if (img && img.tagName === "IMG" && img.closest(".cell_output, figure")) {
      img.classList.toggle("circuitscope-zoomable", img.naturalWidth > img.clientWidth + 2);
    }
  });
  document.addEventListener("click", function (e) {
    var img = e.target;
    if (!img || img.tagName !== "IMG" || !img.closest(".cell_output, figure")) return;
    if (img.closest("a")) return;
    if (img.naturalWidth > img.clientWidth + 2) {
      e.preventDefault();
      open(img);
    }
  });
})();
