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

// Selects that submit their form when changed.
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

// Search boxes over a server-rendered list: <input data-filter="#list"> hides the rows
// (children with data-search) that do not contain every typed word.
function startFilters() {
  document.querySelectorAll("input.filter[data-filter]").forEach((input) => {
    const list = document.querySelector(input.dataset.filter);
    if (!list) return;
    const none = document.querySelector(`${input.dataset.filter}-none`)
      || list.parentElement.querySelector(".filter-none");
    input.hidden = false;
    const apply = () => {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      list.querySelectorAll("[data-search]").forEach((row) => {
        const hay = row.dataset.search;
        const ok = words.every((w) => hay.includes(w));
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      if (none) none.hidden = shown > 0;
    };
    input.addEventListener("input", apply);
    // Enter picks the only (or first) row left instead of submitting the form; a search
    // box that is itself a form field (/prices?q=) submits its search as usual.
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || input.name) return;
      event.preventDefault();
      const first = list.querySelector("[data-search]:not([hidden])");
      if (!first) return;
      const radio = first.querySelector("input[type=radio]:not([disabled])");
      if (radio) { radio.checked = true; radio.focus(); }
      const link = first.querySelector("a[href]");
      if (link) link.click();
    });
    apply();
  });
  // Opening the country list puts the cursor in its search box.
  const countries = document.getElementById("countries");
  if (countries) {
    countries.addEventListener("toggle", () => {
      if (countries.open) { const f = countries.querySelector("input.filter"); if (f) f.focus(); }
    });
  }
}

// Times: the server writes UTC (<time datetime="…Z">… UTC</time>); show them in the
// viewer's own time zone.
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
function localizeTimes(root) {
  (root || document).querySelectorAll("time[datetime]").forEach((el) => {
    if (el.dataset.local) return;
    const d = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(d.getTime())) return;
    el.title = el.textContent;
    el.textContent = TIME_FORMAT.format(d);
    el.dataset.local = "1";
  });
}

// The server's clock may differ from the browser's (and a test may move it): every live
// answer says what time the server has, and countdowns run on that.
let serverSkew = null;
function serverNow() { return Date.now() / 1000 + (serverSkew || 0); }
function syncClock(now) { serverSkew = Number(now) - Date.now() / 1000; }

function clockLeft(secs) {
  const left = Math.max(0, Math.round(secs));
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
}

// Countdowns (time left on an order) and buttons that open at a time (cancel after the
// early-cancel window): one ticker for the whole page.
function tick() {
  document.querySelectorAll(".countdown[data-expires]").forEach((el) => {
    if (serverSkew === null && el.dataset.now) syncClock(el.dataset.now);
    el.textContent = `${clockLeft(Number(el.dataset.expires) - serverNow())} left`;
  });
  document.querySelectorAll("button[data-opens-at]").forEach((b) => {
    if (serverSkew === null && b.dataset.now) syncClock(b.dataset.now);
    const left = Number(b.dataset.opensAt) - serverNow();
    if (left <= 0) {
      b.disabled = false;
      b.textContent = b.dataset.label;
      b.removeAttribute("data-opens-at");
    } else {
      b.textContent = `${b.dataset.label} in ${clockLeft(left)}`;
    }
  });
}
function startTicker() {
  tick();
  setInterval(tick, 1000);
}

// The browser's own notifications (no push service): only after the person opted in (on
// the dashboard or /settings/notifications), and only while a page of ours is open.
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
  if (!("Notification" in window)) {
    if (state) state.textContent = " This browser has no notifications.";
    return;
  }
  button.hidden = false;
  const show = () => {
    const on = Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "on";
    if (state) state.textContent = on ? " On in this browser." : "";
    button.textContent = on ? "Turn browser notifications off" : "Allow browser notifications";
  };
  button.addEventListener("click", async () => {
    if (localStorage.getItem(NOTIFY_KEY) === "on") {
      localStorage.removeItem(NOTIFY_KEY);
    } else if ((await Notification.requestPermission()) === "granted") {
      localStorage.setItem(NOTIFY_KEY, "on");
    }
    show();
  });
  show();
}

// Live parts (dashboard and rentals page): ask /live, long-polled, and put each changed
// card in place. No page reload, ever: a half-filled form stays as it is.
const BASE_TITLE = document.title;

// The tab title says "Code N" only while it is news: browsers keep titles in their history,
// so the code must not outlive the order there. It goes back to the page's own title when
// the card no longer shows that code live, and when the tab is left after the code was seen.
const titled = { id: null, seen: false };
function titleSays(text, id) {
  document.title = `${text} · ${BASE_TITLE}`;
  titled.id = id;
  titled.seen = !document.hidden;
}
function titleBack() {
  titled.id = null;
  if (document.title !== BASE_TITLE) document.title = BASE_TITLE;
}
document.addEventListener("visibilitychange", () => {
  if (titled.id === null) return;
  if (!document.hidden) titled.seen = true;
  else if (titled.seen) titleBack();
});
function swapCard(old, html) {
  const box = document.createElement("div");
  box.innerHTML = html;
  const fresh = box.firstElementChild;
  if (!fresh) return null;
  localizeTimes(fresh);
  if (old) old.replaceWith(fresh);
  return fresh;
}

// How the live parts are polled: a long wait only while a card can still change (a live
// order, an active rental); otherwise a plain read now and then, for the balance. Nothing at
// all while the tab is hidden (caught up the moment it shows again). An unchanged answer that
// came back early, or a 503 (the server's pool of waiting pages is full), backs off.
const LIVE_STATUSES = ["waiting", "received", "retry"];
const LIVE_WAIT = 25;
const LIVE_IDLE_MS = 60000;
const LIVE_BACKOFF_MS = 5000;

function watchLive() {
  const orderBox = document.getElementById("live-orders");
  const rentalBox = document.getElementById("live-rentals");
  if (!orderBox && !rentalBox) return;
  let seen = "";
  let failures = 0;
  let timer = null;
  let inFlight = false;
  let controller = null;
  const ids = (box, sel) => (box ? Array.from(box.querySelectorAll(sel)).map((c) => c.dataset.id) : []);
  const anyLive = () =>
    (orderBox && Array.from(orderBox.querySelectorAll("article.order[data-id]"))
      .some((c) => LIVE_STATUSES.includes(c.dataset.status)))
    || (rentalBox && rentalBox.querySelector('article.rental[data-status="active"]') !== null);
  const apply = (data) => {
    syncClock(data.now);
    const balance = document.getElementById("balance");
    if (balance && balance.textContent !== data.balance) balance.textContent = data.balance;
    if (orderBox) {
      for (const o of data.orders) {
        const old = orderBox.querySelector(`article.order[data-id="${o.id}"]`);
        if (!old && !o.live) continue;
        const hadCode = old ? old.dataset.code || "" : "";
        if (old && old.dataset.status === o.status && hadCode === (o.code || "")) continue;
        const fresh = swapCard(old, o.html);
        if (!old && fresh) orderBox.prepend(fresh);
        if (o.code && o.code !== hadCode) {
          titleSays(`Code ${o.code}`, `o${o.id}`);
          showNotification(`Code ${o.code}`, `${o.service}: ${o.code}`);
        }
      }
      const none = document.querySelector("#live .none-live");
      if (none) none.hidden = orderBox.children.length > 0;
    }
    if (rentalBox) {
      for (const r of data.rentals) {
        const old = rentalBox.querySelector(`article.rental[data-id="${r.id}"]`);
        if (old && old.dataset.status === r.status && Number(old.dataset.messages) === r.messages) continue;
        if (old && Number(old.dataset.messages) < r.messages) {
          titleSays("New SMS", `r${r.id}`);
          showNotification("New SMS", "A new SMS reached your rented number.");
        }
        const fresh = swapCard(old, r.html);
        if (!old && fresh) rentalBox.prepend(fresh);
      }
    }
    // The card the title speaks of no longer shows it live: the title goes back.
    if (titled.id !== null) {
      const id = titled.id.slice(1);
      const card = titled.id[0] === "o"
        ? orderBox && orderBox.querySelector(`article.order[data-id="${id}"]`)
        : rentalBox && rentalBox.querySelector(`article.rental[data-id="${id}"]`);
      const live = card && (titled.id[0] === "o"
        ? LIVE_STATUSES.includes(card.dataset.status) && card.dataset.code
        : card.dataset.status === "active");
      if (!live) titleBack();
    }
    tick();
  };
  const later = (ms) => {
    clearTimeout(timer);
    timer = document.hidden ? null : setTimeout(poll, ms);
  };
  const poll = async () => {
    timer = null;
    if (inFlight || document.hidden) return;
    const waiting = anyLive();
    const q = new URLSearchParams({
      show: orderBox && rentalBox ? "" : (orderBox ? "orders" : "rentals"),
      orders: ids(orderBox, "article.order[data-id]").join(","),
      rentals: ids(rentalBox, "article.rental[data-id]").join(","),
      seen,
      wait: waiting ? String(LIVE_WAIT) : "0",
    });
    const started = Date.now();
    inFlight = true;
    controller = new AbortController();
    try {
      const res = await fetch(`/live?${q}`, { headers: { Accept: "application/json" }, signal: controller.signal });
      if (res.status === 503) {
        inFlight = false;
        const after = Number(res.headers.get("Retry-After")) || 10;
        later(after * 1000);
        return;
      }
      if (!res.ok || !(res.headers.get("Content-Type") || "").startsWith("application/json")) throw new Error(String(res.status));
      const data = await res.json();
      const unchanged = data.state === seen;
      seen = data.state;
      failures = 0;
      apply(data);
      inFlight = false;
      if (!anyLive()) later(LIVE_IDLE_MS);
      else if (unchanged && Date.now() - started < LIVE_WAIT * 500) later(LIVE_BACKOFF_MS);
      else later(300);
    } catch (_) {
      inFlight = false;
      // Hidden meanwhile (the wait was dropped, freeing its connection): resumed when shown.
      if (document.hidden) return;
      // Offline for a moment, or signed out: try again later, less often.
      failures += 1;
      later(Math.min(30000, 2000 * failures));
    }
  };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
      if (controller) controller.abort();
    } else if (!inFlight) {
      later(0);
    }
  });
  poll();
}

// The order form's operator: each service row shows that operator's price and stock (the
// ones the order is charged and served from), from the row's data-operators.
function operatorOffers() {
  const select = document.querySelector("#order-form select[name=operator]");
  if (!select) return;
  const show = () => {
    document.querySelectorAll("#service-list [data-operators]").forEach((row) => {
      const offer = JSON.parse(row.dataset.operators)[select.value];
      if (!offer) return;
      const [price, stock] = offer;
      row.querySelector(".price").textContent = price;
      row.querySelector(".stock").textContent = stock > 0 ? `${stock} in stock` : "out of stock";
      const radio = row.querySelector("input[type=radio]");
      radio.disabled = stock <= 0;
      if (radio.disabled) radio.checked = false;
    });
  };
  select.addEventListener("change", show);
  show();
}

// The rentals form: the price of the chosen service for the chosen length, before renting.
function rentTotal() {
  const form = document.getElementById("rent-form");
  const out = document.getElementById("rent-total");
  if (!form || !out) return;
  const digits = Number(out.dataset.digits);
  const show = () => {
    const radio = form.querySelector("input[name=service]:checked");
    const hours = Number(form.querySelector("select[name=hours]").value);
    if (!radio) return;
    const hour = Number(radio.closest("[data-hour]").dataset.hour);
    const total = (hour * hours) / 10 ** digits;
    out.textContent = `Price: ${total.toFixed(digits)} ${out.dataset.currency} for ${hours} hours.`;
  };
  form.addEventListener("change", show);
  show();
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
  localizeTimes();
  startFilters();
  startTicker();
  watchLive();
  rentTotal();
  operatorOffers();
  watchTopup();
  browserNotifyOptIn();
});
