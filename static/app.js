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
      var button = f.querySelector("[data-confirm]");
      var question = button ? button.getAttribute("data-confirm") : "Delete this analysis and its images?";
      if (!window.confirm(question)) event.preventDefault();
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
  if (picks.length) updateCompare();

  // Upload page: a click on the body map picks the site and side and marks the point; the
  // lesion list follows the patient identifier typed.
  var map = document.getElementById("body-map");
  if (map) {
    var form = map.closest("form");
    var NS = "http://www.w3.org/2000/svg";
    var pick = function (region, x, y) {
      var svg = region.ownerSVGElement;
      form.elements.site.value = region.getAttribute("data-site");
      form.elements.laterality.value = region.getAttribute("data-laterality");
      form.elements.map_view.value = svg.getAttribute("data-view");
      form.elements.map_x.value = (x / 100).toFixed(4);
      form.elements.map_y.value = (y / 210).toFixed(4);
      if (form.elements.lesion.value !== "new") form.elements.lesion.value = "new";
      map.querySelectorAll(".mark").forEach(function (m) { m.remove(); });
      var dot = document.createElementNS(NS, "circle");
      dot.setAttribute("class", "mark"); dot.setAttribute("cx", x); dot.setAttribute("cy", y); dot.setAttribute("r", 3.2);
      svg.appendChild(dot);
      document.getElementById("site-chosen").textContent = region.querySelector("title").textContent + " (" + svg.getAttribute("data-view") + ")";
    };
    map.querySelectorAll(".region").forEach(function (region) {
      region.addEventListener("click", function (event) {
        var point = region.ownerSVGElement.createSVGPoint();
        point.x = event.clientX; point.y = event.clientY;
        var at = point.matrixTransform(region.ownerSVGElement.getScreenCTM().inverse());
        pick(region, at.x, at.y);
      });
      region.addEventListener("keydown", function (event) {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        var box = region.getBBox();
        pick(region, box.x + box.width / 2, box.y + box.height / 2);
      });
    });
    var patientField = form.elements.patient, lesionSelect = form.elements.lesion;
    var fixed = lesionSelect.querySelectorAll("option[data-fixed]");
    patientField.addEventListener("change", function () {
      var url = "/api/patients/lesions?identifier=" + encodeURIComponent(patientField.value.trim());
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : {lesions: []}; })
        .then(function (found) {
          lesionSelect.innerHTML = "";
          fixed.forEach(function (o) { lesionSelect.appendChild(o); });
          found.lesions.forEach(function (l) {
            var option = document.createElement("option");
            option.value = l.id; option.textContent = l.label + " · " + l.site;
            lesionSelect.appendChild(option);
          });
        });
    });
  }

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
