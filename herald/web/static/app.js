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
// every few seconds; each [data-field=name] child gets the value of that field.
function startPolling(root) {
  const url = root.getAttribute("data-poll");
  const until = (root.getAttribute("data-poll-until") || "").split(",");
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
    if (until.includes(data.status)) {
      clearInterval(timer);
      root.dispatchEvent(new CustomEvent("herald:done", { bubbles: true, detail: data }));
    }
  }
  const timer = setInterval(tick, every);
  root.addEventListener("herald:refresh", tick);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-poll]")) startPolling(el);
  for (const button of document.querySelectorAll("[data-refresh]")) {
    button.addEventListener("click", () => {
      const target = document.getElementById(button.getAttribute("data-refresh"));
      if (target) target.dispatchEvent(new CustomEvent("herald:refresh"));
    });
  }
});
