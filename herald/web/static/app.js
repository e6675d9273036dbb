// Herald's own small scripts: confirmations and live refresh. Nothing third-party.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Elements with data-poll="URL" and data-poll-until="STATUS" are refreshed from a JSON URL
// every few seconds; each [data-field=name] child gets the value of that field. Anywhere on
// the page, [data-show-while="S1,S2"] shows only while the status is one of those, and
// [data-confirm-template] gets its {field} placeholders filled into data-confirm. On a
// status listed in data-reload-on the page reloads (its actions change too much).
function showForStatus(status) {
  for (const el of document.querySelectorAll("[data-show-while]")) {
    el.hidden = !el.getAttribute("data-show-while").split(",").includes(status);
  }
}

function fillConfirmations(data) {
  for (const el of document.querySelectorAll("[data-confirm-template]")) {
    const text = el.getAttribute("data-confirm-template");
    el.setAttribute("data-confirm", text.replace(/\{(\w+)\}/g, (all, name) => (name in data ? data[name] : all)));
  }
}

function startPolling(root) {
  const url = root.getAttribute("data-poll");
  const until = (root.getAttribute("data-poll-until") || "").split(",");
  const reloadOn = (root.getAttribute("data-reload-on") || "").split(",");
  const every = Number(root.getAttribute("data-poll-seconds") || "3") * 1000;
  async function tick() {
    let data;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      data = await response.json();
    } catch (error) {
      return;
    }
    for (const el of root.querySelectorAll("[data-field]")) {
      const name = el.getAttribute("data-field");
      if (!(name in data)) continue;
      if (el.hasAttribute("data-width")) {
        el.style.width = data[name] + "%";
      } else {
        el.textContent = data[name];
      }
      if (el.classList.contains("badge")) el.className = "badge " + data[name];
    }
    showForStatus(data.status);
    fillConfirmations(data);
    if (reloadOn.includes(data.status)) {
      window.location.reload();
      return;
    }
    if (until.includes(data.status)) {
      clearInterval(timer);
      root.dispatchEvent(new CustomEvent("herald:done", { bubbles: true, detail: data }));
    }
  }
  const timer = setInterval(tick, every);
  root.addEventListener("herald:refresh", tick);
}

// <time data-local> shows its moment in the viewer's time zone (the page says UTC until then).
function localTimes() {
  for (const el of document.querySelectorAll("time[data-local]")) {
    const moment = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) continue;
    const options = { dateStyle: "medium", timeStyle: el.getAttribute("data-local") === "seconds" ? "medium" : "short" };
    el.title = el.textContent;
    el.textContent = moment.toLocaleString(undefined, options);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  for (const el of document.querySelectorAll("[data-poll]")) startPolling(el);
  for (const button of document.querySelectorAll("[data-refresh]")) {
    button.addEventListener("click", () => {
      const target = document.getElementById(button.getAttribute("data-refresh"));
      if (target) target.dispatchEvent(new CustomEvent("herald:refresh"));
    });
  }
});
