// Message Center's only script, loaded from a file (the Content Security
// Policy allows no inline script). Everything works without it; it adds:
// - the browser's time zone to the form, so "deliver at 09:00" is the
//   sender's 09:00 (the server otherwise reads it in its own time zone);
// - times shown in the reader's time zone, with the zone's name;
// - the list's live channel: one request for every unfinished row;
// - focus where the person is working after Send, Cancel and Retry;
// - a reload (or a notice), not a broken row, when the person was signed
//   out meanwhile.
"use strict";

(function () {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  // (dateStyle and timeStyle cannot be combined with timeZoneName.)
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZoneName: "short",
  });
  // A hidden tab still learns what happened, but at most this often (ms).
  const HIDDEN_PACE = 30000;

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

  function isLoginPage(url) {
    const loginUrl = document.body.dataset.loginUrl;
    return Boolean(loginUrl && url && new URL(url).pathname === loginUrl);
  }

  // --- The live channel ------------------------------------------------------
  // The server says when asking again is worth it (Poll-After, in seconds):
  // soon while something is queued or running, at the earliest due time when
  // everything is scheduled, never when nothing can change. One timer, one
  // request in flight, at most.
  const list = document.getElementById("notifications");
  let timer = null;
  let inFlight = false;
  let nextAt = null; // when the timer fires (ms since the epoch)

  function liveRows() {
    return list ? list.querySelectorAll("li.notification[data-live]") : [];
  }

  function schedule(seconds) {
    if (!list || seconds === null || Number.isNaN(seconds) || liveRows().length === 0) {
      return;
    }
    let delay = Math.max(250, seconds * 1000);
    if (document.hidden) {
      delay = Math.max(delay, HIDDEN_PACE);
    }
    const at = Date.now() + delay;
    if (timer !== null && nextAt <= at) {
      return; // already due sooner
    }
    clearTimeout(timer);
    nextAt = at;
    timer = setTimeout(poll, delay);
  }

  async function poll() {
    timer = null;
    nextAt = null;
    const rows = liveRows();
    if (inFlight || rows.length === 0) {
      return;
    }
    const url = new URL(list.dataset.liveUrl, window.location.href);
    for (const row of rows) {
      url.searchParams.append("seen", row.dataset.progress);
    }
    inFlight = true;
    let pollAfter = null;
    try {
      // The page's live token stands in for the session (live_tokens.py).
      const headers = { "HX-Request": "true", "X-Live-Token": list.dataset.liveToken || "" };
      const response = await fetch(url, { headers: headers, credentials: "same-origin" });
      if (response.status === 403) {
        liveEnded();
        return;
      }
      const header = response.headers.get("Poll-After");
      pollAfter = header === null ? null : parseFloat(header);
      if (response.status === 200) {
        swapRows(await response.text());
      } else if (!response.ok && response.status !== 204) {
        pollAfter = 10; // the server is unwell: ask again later, gently
      }
    } catch (error) {
      pollAfter = 10; // offline, or the server restarts
    } finally {
      inFlight = false;
    }
    // Rows all waiting for a worker that is not there: no need to hurry.
    const moving = Array.from(liveRows()).some(function (row) {
      return !row.hasAttribute("data-stalled");
    });
    if (pollAfter !== null && !moving) {
      pollAfter = Math.max(pollAfter, 5);
    }
    schedule(pollAfter);
  }

  // 403: the token no longer holds (signed out, password changed, or the
  // page is half a day old). A reload gets a fresh one, or the sign-in page;
  // but never loses what is being typed, nor reloads again and again.
  function liveEnded() {
    const message = document.getElementById("id_message");
    const typing = message && message.value.trim() !== "";
    const last = Number(sessionStorage.getItem("liveReloadedAt") || 0);
    if (!typing && Date.now() - last > 60000) {
      sessionStorage.setItem("liveReloadedAt", String(Date.now()));
      window.location.reload();
      return;
    }
    const notice = document.getElementById("live-ended");
    if (notice) {
      notice.hidden = false;
    }
  }

  function swapRows(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    for (const fresh of template.content.querySelectorAll("li.notification")) {
      const current = document.getElementById(fresh.id);
      if (!current) {
        continue;
      }
      // Keep the attempt history open, and focus inside the row where it was.
      const focused = current.contains(document.activeElement) ? document.activeElement : null;
      const history = current.querySelector("details.history");
      current.replaceWith(fresh);
      if (history && history.open) {
        const details = fresh.querySelector("details.history");
        if (details) {
          details.open = true;
        }
      }
      htmx.process(fresh);
      enhance(fresh);
      if (focused) {
        focusInRow(fresh);
      }
    }
  }

  // A row swapped in by Send, Cancel or Retry: follow it from now on.
  function rowChanged(row) {
    if (row.hasAttribute("data-live")) {
      schedule(1);
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && liveRows().length > 0) {
      // Back in view: catch up at once, then at the server's pace.
      clearTimeout(timer);
      timer = null;
      poll();
    }
  });

  // --- Focus -------------------------------------------------------------------
  // After Send the person is writing the next message; after Cancel or Retry,
  // the row's own next action, or else the row itself, keeps their place.
  function focusInRow(row) {
    const target = row.querySelector("button, summary");
    if (target) {
      target.focus();
    } else {
      row.setAttribute("tabindex", "-1");
      row.focus();
    }
  }

  // Signed out in another tab, or the session expired: the server redirects
  // htmx's request to the sign-in page and htmx follows. Swapping that page
  // into a row would make no sense; reload instead, which lands on sign-in
  // and comes back here afterwards.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const responseUrl = event.detail.xhr && event.detail.xhr.responseURL;
    if (isLoginPage(responseUrl)) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  // Text typed into the form while Send was on its way is not lost: the
  // fresh form comes back empty, so put back whatever changed since.
  let sentValues = null;
  let typedSinceSend = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "notification-form") {
      sentValues = new FormData(event.detail.elt);
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    const form = event.detail.elt;
    if (!form || form.id !== "notification-form" || !sentValues) {
      return;
    }
    typedSinceSend = {};
    if (event.detail.xhr.status === 200) {
      for (const field of form.querySelectorAll("input[name], textarea[name], select[name]")) {
        // Text typed meanwhile; a checkbox's value is not what was chosen (the
        // channels are several boxes of one name), so boxes are left as sent.
        const typed = !["hidden", "checkbox", "radio"].includes(field.type);
        if (typed && field.value !== (sentValues.get(field.name) || "")) {
          typedSinceSend[field.name] = field.value;
        }
      }
    }
    sentValues = null;
  });

  function formArrived(form) {
    if (typedSinceSend === null) {
      return; // the page's first form: leave focus alone
    }
    for (const [name, value] of Object.entries(typedSinceSend)) {
      const field = form.elements.namedItem(name);
      if (field instanceof HTMLElement && "value" in field) {
        field.value = value;
        const folded = field.closest("details");
        if (folded) {
          folded.open = true; // typed into "More options": keep it in view
        }
      }
    }
    typedSinceSend = null;
    // Sent: ready for the next message. Refused: at the first field to fix.
    const target = form.querySelector("[aria-invalid=true]") || form.querySelector("#id_message");
    if (target) {
      target.focus();
    }
  }

  // htmx fires htmx:load on each piece of HTML it swaps in (a new form, a row).
  document.addEventListener("htmx:load", function (event) {
    const element = event.target;
    enhance(element);
    if (element.id === "notification-form") {
      formArrived(element);
    } else if (element.matches && element.matches("li.notification")) {
      rowChanged(element);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (target && target.matches && target.matches("li.notification")) {
      // Cancel or Retry replaced this row: the element is new, find it by id.
      const row = document.getElementById(target.id);
      if (row) {
        focusInRow(row);
      }
    }
  });

  // The script is deferred: the page is parsed by now.
  enhance(document);
  if (list && list.dataset.pollAfter) {
    schedule(parseFloat(list.dataset.pollAfter));
  }
})();
