// Upload page: drag-and-drop, file names, progress indicator. History: pick two to compare.
// Result page: overlays, the enlarged view, print.
// Loaded from a file (no inline script), so the Content-Security-Policy can forbid inline code.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("upload-form");
  var input = document.getElementById("image-input");
  var zone = document.getElementById("dropzone");
  var text = document.getElementById("dropzone-text");

  function showBusy() {
    var busy = document.getElementById("busy");
    var button = document.getElementById("analyse-button");
    if (busy) busy.hidden = false;
    if (button) button.disabled = true;
  }

  if (form && input && zone) {
    input.addEventListener("change", function () {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      if (names.length) text.textContent = names.length + " selected: " + names.join(", ");
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    });
    form.addEventListener("submit", showBusy);
  }
  // A printed report carries what the page folds away behind "more".
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
  document.querySelectorAll(".print-button").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  document.querySelectorAll(".delete-form").forEach(function (f) {
    f.addEventListener("submit", function (event) {
      if (!window.confirm("Delete this analysis and its images?")) event.preventDefault();
    });
  });

  var picks = document.querySelectorAll(".compare-pick");
  var compareButton = document.getElementById("compare-button");
  function updateCompare() {
    var chosen = Array.prototype.filter.call(picks, function (p) { return p.checked; });
    if (compareButton) compareButton.disabled = chosen.length !== 2;
    if (chosen.length === 2) {
      document.getElementById("compare-a").value = chosen[1].value; // older first
      document.getElementById("compare-b").value = chosen[0].value;
    }
  }
  picks.forEach(function (p) { p.addEventListener("change", updateCompare); });

  // Result page: overlay on/off and opacity per explanation image; any image enlarges in a
  // dialog (Esc or the button closes it) at full resolution, with the same controls.
  function bindLayer(layer, toggle, slider) {  // returns the function that applies the controls
    var update = function () { layer.style.opacity = toggle.checked ? slider.value / 100 : 0; };
    toggle.addEventListener("change", update);
    slider.addEventListener("input", update);
    return update;
  }
  document.querySelectorAll("figure.layered").forEach(function (figure) {
    bindLayer(figure.querySelector("img.layer"), figure.querySelector(".overlay-toggle"),
              figure.querySelector(".overlay-opacity"));
  });
  var viewer = document.getElementById("viewer");
  if (viewer && viewer.showModal) {
    var base = document.getElementById("viewer-base");
    var layer = document.getElementById("viewer-layer");
    var toggle = document.getElementById("viewer-toggle");
    var slider = document.getElementById("viewer-opacity");
    var key = document.getElementById("viewer-key");
    var update = bindLayer(layer, toggle, slider);
    document.querySelectorAll("button.zoom").forEach(function (button) {
      button.addEventListener("click", function () {
        var layered = button.hasAttribute("data-base");
        var figure = button.closest("figure");
        layer.src = button.getAttribute("data-full");
        layer.alt = button.getAttribute("aria-label").replace("Enlarge: ", "");
        base.hidden = !layered;
        if (layered) base.src = button.getAttribute("data-base");
        viewer.classList.toggle("has-layer", layered);
        key.className = "ramp ramp-" + (button.getAttribute("data-key") || "none");
        document.getElementById("viewer-title").textContent = figure.querySelector("figcaption").textContent;
        var small = figure.querySelector(".overlay-toggle");  // start where the page's controls are
        toggle.checked = small ? small.checked : true;
        slider.value = small ? figure.querySelector(".overlay-opacity").value : 100;
        update();
        viewer.showModal();
      });
    });
    document.getElementById("viewer-close").addEventListener("click", function () { viewer.close(); });
    viewer.addEventListener("click", function (event) { if (event.target === viewer) viewer.close(); });
  }
});
