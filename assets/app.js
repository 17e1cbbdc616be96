// otpbox: small progressive enhancements; every page works without this file.
"use strict";

// Copy buttons: <button data-copy="text">.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  navigator.clipboard.writeText(text).then(() => {
    const old = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = old; }, 1500);
  });
});

// Selects that submit their form when changed (the country picker).
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

const LABELS = {
  waiting: "Waiting for SMS",
  received: "Code received",
  retry: "Waiting for another SMS",
  completed: "Completed",
  canceled: "Canceled, refunded",
  expired: "Expired, refunded",
};

// Countdowns: the server's clock may differ from the browser's, so keep the offset.
function startCountdowns() {
  const items = document.querySelectorAll(".countdown[data-expires]");
  if (!items.length) return;
  const skew = Number(items[0].dataset.now) - Date.now() / 1000;
  const tick = () => {
    const now = Date.now() / 1000 + skew;
    items.forEach((el) => {
      const left = Math.max(0, Math.round(Number(el.dataset.expires) - now));
      const m = Math.floor(left / 60);
      const s = String(left % 60).padStart(2, "0");
      el.textContent = `${m}:${s} left`;
    });
  };
  tick();
  setInterval(tick, 1000);
}

// The browser's own notifications (no push service): only after the person opted in on
// /settings/notifications, and only while a dashboard page is open.
const NOTIFY_KEY = "otpbox-browser-notifications";

function showNotification(title, body) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (localStorage.getItem(NOTIFY_KEY) !== "on") return;
  try { new Notification(title, { body }); } catch (_) { /* some browsers allow it only from a service worker */ }
}

function browserNotifyOptIn() {
  const button = document.getElementById("browser-notify");
  const state = document.getElementById("browser-notify-state");
  if (!button) return;
  const show = () => {
    const on = "Notification" in window && Notification.permission === "granted"
      && localStorage.getItem(NOTIFY_KEY) === "on";
    if (state) state.textContent = !("Notification" in window) ? " This browser has no notifications."
      : on ? " On in this browser." : " Off in this browser.";
    button.textContent = on ? "Turn browser notifications off" : "Allow browser notifications";
  };
  button.addEventListener("click", async () => {
    if (!("Notification" in window)) return;
    if (localStorage.getItem(NOTIFY_KEY) === "on") {
      localStorage.removeItem(NOTIFY_KEY);
    } else if ((await Notification.requestPermission()) === "granted") {
      localStorage.setItem(NOTIFY_KEY, "on");
    }
    show();
  });
  show();
}

// Live orders: ask the API for changes and show a code as soon as it arrives.
function watchOrders() {
  const cards = () => Array.from(document.querySelectorAll("article.order[data-id]"))
    .filter((c) => ["waiting", "received", "retry"].includes(c.dataset.status));
  if (!cards().length) return;
  const poll = async () => {
    const live = cards();
    if (!live.length) return;
    try {
      const res = await fetch("/api/v1/activations?limit=50", { headers: { Accept: "application/json" } });
      if (!res.ok) return;
      const data = await res.json();
      let reload = false;
      for (const card of live) {
        const a = data.activations.find((x) => String(x.id) === card.dataset.id);
        if (!a) continue;
        if (a.status !== card.dataset.status) {
          const st = card.querySelector(".state");
          if (st) st.textContent = LABELS[a.status] || a.status;
          if (!["waiting", "received", "retry"].includes(a.status)) reload = true;
          // Buttons depend on the state: refresh them from the server.
          if (a.status === "received" && card.dataset.status !== "received") reload = true;
          card.dataset.status = a.status;
        }
        const box = card.querySelector(".code-box");
        if (a.code && box && !box.querySelector(".code")) {
          box.textContent = "";
          const code = document.createElement("span");
          code.className = "code";
          code.textContent = a.code;
          const copy = document.createElement("button");
          copy.type = "button";
          copy.textContent = "Copy code";
          copy.setAttribute("data-copy", a.code);
          box.append(code, " ", copy);
          showNotification(`Code for ${a.service}`, `${a.code} (order #${a.id})`);
        }
      }
      if (reload) setTimeout(() => location.reload(), 1500);
    } catch (_) { /* offline for a moment: try again next tick */ }
  };
  setInterval(poll, 2500);
}

// A top-up's page: go on to the gateway right after the form (?go=1), then follow the
// payment's state from the API and show the credit the moment the gateway's notice lands.
const TOPUP_LABELS = {
  creating: "Waiting for the payment", pending: "Waiting for the payment", paid: "Credited",
  expired: "Expired, nothing charged", failed: "Failed, nothing credited",
  refunded: "Refunded", disputed: "Disputed",
};
function watchTopup() {
  const box = document.getElementById("topup-status");
  if (!box || !["creating", "pending"].includes(box.dataset.status)) return;
  const checkout = box.querySelector("a.checkout");
  if (checkout && new URLSearchParams(location.search).get("go") === "1") {
    history.replaceState(null, "", location.pathname);
    location.assign(checkout.href);
    return;
  }
  const timer = setInterval(async () => {
    try {
      const res = await fetch(`/api/v1/topups/${box.dataset.id}`, { headers: { Accept: "application/json" } });
      if (!res.ok) return;
      const t = await res.json();
      if (t.status === box.dataset.status) return;
      box.dataset.status = t.status;
      box.querySelector(".state").textContent = TOPUP_LABELS[t.status] || t.status;
      if (t.status === "paid") {
        box.querySelector(".credited-amount").textContent = `${t.credited} ${t.currency}`;
        box.querySelector(".credited").hidden = false;
      }
      if (!["creating", "pending"].includes(t.status)) {
        box.querySelectorAll(".wait, a.checkout").forEach((el) => el.remove());
        clearInterval(timer);
      }
    } catch (_) { /* offline for a moment: try again next tick */ }
  }, 2500);
}

document.addEventListener("DOMContentLoaded", () => {
  startCountdowns();
  watchOrders();
  watchTopup();
  browserNotifyOptIn();
});
