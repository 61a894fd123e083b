// digest preview: reload the page when the preview is rebuilt (unless a form has unsaved edits), and
// refresh the link report when the background link check finishes, and show an issue read-only as soon
// as its sending starts (`digest send` in another process). No other script runs on the page.
(function () {
  "use strict";
  var state = document.getElementById("preview-state");
  if (!state) { return; }
  var version = state.getAttribute("data-version");
  var linksVersion = state.getAttribute("data-links-version");
  var readOnly = state.getAttribute("data-read-only") === "1";
  var live = document.getElementById("live-status");
  var dirty = false;
  var submitted = false;
  document.addEventListener("input", function (event) {
    if (event.target && event.target.closest && event.target.closest("form")) { dirty = true; }
  });
  // Once a form is sent, its answer is the next page: a reload now would cancel that navigation (and
  // lose its notice), as the edit itself bumps the version before the answer arrives.
  document.addEventListener("submit", function () { dirty = false; submitted = true; });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { submitted = false; } });

  function say(text) {
    if (live && live.textContent !== text) { live.textContent = text; }
  }

  function refreshLinks() {
    return fetch("/report/links", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        var box = document.getElementById("links-report");
        if (html !== null && box) { box.innerHTML = html; }
      });
  }

  function poll() {
    fetch("/api/status", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s || submitted) { return; }
        if (Boolean(s.read_only) !== readOnly) {
          if (!dirty) { window.location.reload(); return; }
          say("This issue is being sent or was sent: the preview no longer changes it. Reload the page.");
        } else if (String(s.version) !== version) {
          if (!dirty) { window.location.reload(); return; }
          say("The preview was rebuilt. Save or discard your edits, then reload the page to see it.");
        } else if (s.building) {
          say("Rebuilding the preview…");
        } else {
          say("");
        }
        if (String(s.links_version) !== linksVersion) {
          linksVersion = String(s.links_version);
          return refreshLinks();
        }
      })
      .catch(function () { say("The preview server is not answering; is `digest preview` still running?"); })
      .then(function () { window.setTimeout(poll, 1000); });
  }
  window.setTimeout(poll, 1000);
}());
