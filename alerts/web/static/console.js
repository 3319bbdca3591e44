// alimcast console: small scripts, served by alimcast itself (no library, no CDN).
"use strict";

// Live regions: <div id="live" data-src="/now/live" data-every="5000"> is refreshed in place when it changed.
(function liveRegions() {
  document.querySelectorAll("[data-src][data-every]").forEach(function (region) {
    var every = parseInt(region.dataset.every, 10) || 5000;
    var version = null;
    var status = document.getElementById("live-status");
    function tick() {
      var headers = {"Accept": "text/html", "X-Requested-With": "fetch"};
      if (version) { headers["X-Live-Version"] = version; }
      fetch(region.dataset.src, {headers: headers, credentials: "same-origin", cache: "no-store"})
        .then(function (r) {
          if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname); return null; }
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          if (r.status === 204) { return null; }  // unchanged
          version = r.headers.get("X-Live-Version");
          return r.text();
        })
        .then(function (html) {
          if (html !== null && html !== undefined) { region.innerHTML = html; }
          if (status) { status.textContent = "updated " + new Date().toLocaleTimeString(); status.classList.remove("stale"); }
        })
        .catch(function () { if (status) { status.textContent = "connection lost, retrying"; status.classList.add("stale"); } })
        .finally(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  });
})();

// <form data-confirm="..."> asks before submitting (lifting a warning, removing a person).
document.addEventListener("submit", function (evt) {
  var form = evt.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { evt.preventDefault(); }
});
