// The imaging viewer: choose a series, scroll through its frames (wheel, arrow keys,
// the slider), window presets (re-rendered by the server) and zoom. No framework.
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  var image = document.getElementById("viewer-image");
  if (!viewer || !image) { return; }
  var slider = document.getElementById("frame-slider");
  var position = document.getElementById("frame-position");
  var zoomLevel = document.getElementById("zoom-level");
  var stage = document.getElementById("viewer-stage");
  var thumbs = Array.prototype.slice.call(document.querySelectorAll(".series-thumb"));
  var presets = Array.prototype.slice.call(document.querySelectorAll("#viewer-presets button"));
  var frames = thumbs.length ? thumbs[0].getAttribute("data-frames").split(" ") : [];
  var index = 0;
  var windowValue = "";
  var zoom = 1;

  function url(i) {
    return frames[i] + (windowValue ? "?window=" + encodeURIComponent(windowValue) : "");
  }
  function show(i) {
    if (!frames.length) { return; }
    index = Math.max(0, Math.min(frames.length - 1, i));
    image.src = url(index);
    slider.max = String(frames.length);
    slider.value = String(index + 1);
    position.textContent = (index + 1) + " / " + frames.length;
    viewer.setAttribute("data-frame", String(index + 1));
    // The next frame is fetched ahead so that scrolling does not wait.
    if (index + 1 < frames.length) { new Image().src = url(index + 1); }
  }
  function setZoom(z) {
    zoom = Math.max(0.25, Math.min(8, z));
    image.style.transform = "scale(" + zoom + ")";
    zoomLevel.textContent = Math.round(zoom * 100) + "%";
  }
  function press(list, chosen) {
    list.forEach(function (b) {
      b.classList.toggle("selected", b === chosen);
      b.setAttribute("aria-pressed", b === chosen ? "true" : "false");
    });
  }

  thumbs.forEach(function (b) {
    b.addEventListener("click", function () {
      frames = b.getAttribute("data-frames").split(" ");
      press(thumbs, b);
      viewer.setAttribute("data-series", b.getAttribute("data-series"));
      show(0);
    });
  });
  presets.forEach(function (b) {
    b.addEventListener("click", function () {
      windowValue = b.getAttribute("data-window");
      press(presets, b);
      viewer.setAttribute("data-window", windowValue);
      show(index);
    });
  });
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10) - 1); });
  stage.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.ctrlKey) { setZoom(zoom * (e.deltaY < 0 ? 1.25 : 0.8)); } else { show(index + (e.deltaY > 0 ? 1 : -1)); }
  }, { passive: false });
  stage.tabIndex = 0;
  stage.addEventListener("keydown", function (e) {
    var step = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 }[e.key];
    if (step) { e.preventDefault(); show(index + step); }
  });
  document.getElementById("zoom-in").addEventListener("click", function () { setZoom(zoom * 1.25); });
  document.getElementById("zoom-out").addEventListener("click", function () { setZoom(zoom * 0.8); });
  document.getElementById("zoom-fit").addEventListener("click", function () { setZoom(1); });
  viewer.setAttribute("data-ready", "true");
  show(0);
})();
