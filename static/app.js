// Upload page: drag-and-drop, file names, progress indicator. History: pick two to compare;
// local times.
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
  // Times are stored and rendered in UTC; shown in the reader's own time zone, UTC kept as a tooltip.
  document.querySelectorAll("time.local-time").forEach(function (t) {
    var when = new Date(t.getAttribute("datetime"));
    if (isNaN(when)) return;
    t.title = t.textContent;
    t.textContent = when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
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
});
