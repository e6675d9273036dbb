// Marketing pages: the campaign form's live recipient count, initial bar widths (the
// page's CSP forbids style attributes, so widths are set from data attributes), and the
// schedule form, whose date and time are the viewer's and go to the server in UTC.
"use strict";

function setInitialWidths() {
  for (const el of document.querySelectorAll("[data-initial-width]")) {
    el.style.width = Number(el.getAttribute("data-initial-width")) + "%";
  }
}

function liveAudienceCount() {
  const form = document.getElementById("campaign-form");
  const output = document.getElementById("audience-count");
  if (!form || !output) return;
  const url = output.getAttribute("data-count-url");
  const number = output.querySelector("[data-recipients]");
  const message = output.querySelector("[data-count-message]");
  let timer = null;
  let latest = 0;

  async function update() {
    const body = new FormData();
    body.append("csrf_token", form.elements.namedItem("csrf_token").value);
    const chosen = form.querySelector("input[name=audience_type]:checked");
    body.append("audience_type", chosen ? chosen.value : "ALL");
    for (const box of form.querySelectorAll("input[name=statuses]:checked")) {
      body.append("statuses", box.value);
    }
    const source = form.elements.namedItem("audience_campaign");
    if (source) body.append("audience_campaign", source.value);
    const mine = ++latest;
    try {
      const response = await fetch(url, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok || mine !== latest) return;
      const data = await response.json();
      number.textContent = data.recipients;
      message.textContent = data.message || "";
    } catch (error) {
      // Offline or the session ended: the count shown stays as it was.
    }
  }

  form.addEventListener("change", (event) => {
    const name = event.target.getAttribute("name");
    if (name !== "audience_type" && name !== "statuses") return;
    if (name === "statuses" && event.target.checked) {
      const byStatus = document.getElementById("audience_status");
      if (byStatus) byStatus.checked = true;
    }
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  });
}

function scheduleInLocalTime() {
  const form = document.querySelector("form[data-schedule]");
  if (!form) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const hint = form.querySelector("[data-time-zone]");
  if (hint) hint.textContent = "Date and time in your time zone" + (zone ? " (" + zone + ")." : ".");
  form.addEventListener("submit", () => {
    const local = form.elements.namedItem("local_at").value;
    const moment = new Date(local); // a datetime-local value is read in the viewer's time zone
    form.elements.namedItem("at").value = Number.isNaN(moment.getTime()) ? "" : moment.toISOString();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setInitialWidths();
  liveAudienceCount();
  scheduleInLocalTime();
});
