// Message Center's only script, loaded from a file (the Content Security
// Policy allows no inline script). Everything works without it; it adds:
// - the browser's time zone to the form, so "deliver at 09:00" is the
//   sender's 09:00 (the server otherwise reads it in its own time zone);
// - times shown in the reader's time zone and language;
// - a reload, not a broken row, when the person was signed out meanwhile.
"use strict";

(function () {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function enhance(root) {
    const zoneInput = root.querySelector("#id_time_zone");
    if (zoneInput && zone) {
      zoneInput.value = zone;
      const help = root.querySelector("#id_deliver_at_helptext");
      if (help) {
        help.textContent = help.textContent.replace(/Time zone: .*$/, "Time zone: " + zone + ".");
      }
    }
    for (const time of root.querySelectorAll("time[data-localize]")) {
      const value = new Date(time.getAttribute("datetime"));
      if (!Number.isNaN(value.getTime())) {
        time.textContent = format.format(value);
      }
    }
  }

  // Signed out in another tab, or the session expired: the server redirects
  // htmx's request to the sign-in page and htmx follows. Swapping that page
  // into a row would make no sense; reload instead, which lands on sign-in
  // and comes back here afterwards.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const loginUrl = document.body.dataset.loginUrl;
    const responseUrl = event.detail.xhr && event.detail.xhr.responseURL;
    if (loginUrl && responseUrl && new URL(responseUrl).pathname === loginUrl) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  // The script is deferred: the page is parsed by now.
  enhance(document);
  // htmx fires htmx:load on each piece of HTML it swaps in (a new form, a row).
  document.addEventListener("htmx:load", function (event) {
    enhance(event.target);
  });
})();
