// The fans' page: join (after a proof-of-work challenge solved in a Web
// Worker when the event asks for one), live position over the WebSocket
// (reconnecting by itself, polling meanwhile), then the seat map, hold and
// confirm. Korean and English: every string comes from /assets/<lang>.json
// (English when a key is missing). No framework, no CDN.
"use strict";

const app = document.getElementById("app");
const announcer = document.getElementById("announce");
const api = (path) => `/api/v1${path}`;
const LANGS = ["en", "ko"];

// ---------- languages ----------

const i18n = { lang: "en", strings: {}, fallback: {} };

// The remembered choice, else what the server picked from Accept-Language
// (the page's `lang`).
function chosenLang() {
  const saved = localStorage.getItem("wr-lang");
  if (LANGS.includes(saved)) return saved;
  const served = document.documentElement.lang;
  return LANGS.includes(served) ? served : "en";
}

async function catalog(lang) {
  const res = await fetch(`/assets/${lang}.json`);
  return res.ok ? res.json() : {};
}

async function loadLang(lang) {
  const [strings, fallback] = await Promise.all([catalog(lang), lang === "en" ? null : catalog("en")]);
  i18n.lang = lang;
  i18n.strings = strings;
  i18n.fallback = fallback || strings;
  document.documentElement.lang = lang;
  const sw = document.getElementById("lang-switch");
  const other = lang === "ko" ? "en" : "ko";
  sw.textContent = t("lang.switch");
  sw.setAttribute("lang", other);
  sw.setAttribute("title", t("lang.switch_label"));
  sw.hidden = false;
  document.getElementById("brand").textContent = t("brand");
}

// A string of the catalog with `{name}` filled in; English if missing.
function t(key, vars = {}) {
  const text = i18n.strings[key] ?? i18n.fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

function locale() {
  return i18n.lang === "ko" ? "ko-KR" : "en";
}

// The event's time zone (an IANA name from the catalog), when the browser
// knows it; else the fan's own.
let eventZone;

function zoneOptions(zone) {
  if (!zone) return {};
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return { timeZone: zone };
  } catch (_) {
    return {};
  }
}

// A date and time in the fan's locale, in the event's time zone, named.
function formatWhen(iso, zone = eventZone) {
  const d = new Date(iso);
  const tz = zoneOptions(zone);
  const date = new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short", ...tz }).format(d);
  const name = new Intl.DateTimeFormat(locale(), { timeZoneName: "long", ...tz }).formatToParts(d)
    .find((p) => p.type === "timeZoneName")?.value || tz.timeZone || Intl.DateTimeFormat().resolvedOptions().timeZone;
  return t("when.at", { date, zone: name });
}

// A time of day in the event's time zone, with its short name.
function formatTime(iso, seconds = false) {
  const options = { hour: "numeric", minute: "2-digit", timeZoneName: "short", ...zoneOptions(eventZone) };
  if (seconds) options.second = "2-digit";
  return new Intl.DateTimeFormat(locale(), options).format(new Date(iso));
}

function formatWait(seconds) {
  if (seconds === null || seconds === undefined) return t("wait.unknown");
  if (seconds < 60) return t("wait.seconds", { n: seconds });
  const minutes = Math.ceil(seconds / 60);
  return minutes < 60 ? t("wait.minutes", { n: minutes }) : t("wait.hours", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

// ---------- helpers ----------

// An unguessable id made here, never an account id: it is what holds the
// place in the queue (see docs/api.md).
function clientId() {
  let id = localStorage.getItem("wr-client-id");
  if (!id) {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("wr-client-id", id);
  }
  return id;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function show(state, ...nodes) {
  app.dataset.state = state;
  app.replaceChildren(...nodes);
}

async function call(method, path, { body, token, headers = {} } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (token) h["Authorization"] = `Bearer ${token}`;
  const res = await fetch(api(path), { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty body */ }
  return { status: res.status, data };
}

// ---------- the bot challenge ----------

// Fetches the event's challenge and solves it in a worker. Resolves to the
// join's `challenge` object, or null when the event asks for none.
async function solveChallenge(event) {
  const r = await call("GET", `/events/${event}/queue/challenge`);
  // No challenge; or no queue, which the join itself will report.
  if (r.status === 204 || r.status === 404) return null;
  if (r.status !== 200) throw new Error(`challenge ${r.status}`);
  const c = r.data;
  const solved = await new Promise((resolve, reject) => {
    const worker = new Worker("/assets/pow-worker.js");
    worker.onmessage = (ev) => { worker.terminate(); ev.data.error ? reject(new Error(ev.data.error)) : resolve(ev.data); };
    worker.onerror = (e) => { worker.terminate(); reject(new Error(e.message || "worker failed")); };
    worker.postMessage(c);
  });
  app.dataset.powTook = String(solved.took);
  const expires = Number(new URLSearchParams(c.salt.split("?")[1] || "").get("expires")) || 0;
  return {
    expires,
    payload: { algorithm: c.algorithm, challenge: c.challenge, number: solved.number, salt: c.salt, signature: c.signature },
  };
}

// ---------- the list of events ----------

async function home() {
  document.title = t("home.title");
  const r = await call("GET", "/events");
  if (r.status === 200) {
    const items = r.data.events.map((e) =>
      el("li", {}, el("a", { href: `/events/${e.id}` }, e.name), " ",
        el("span", { class: "muted" }, `${e.venue}, ${formatWhen(e.starts_at, e.time_zone)}`)));
    show("home", el("h1", {}, t("home.title")), items.length ? el("ul", { class: "events" }, items) : el("p", {}, t("home.none")));
    return;
  }
  // Waiting room only (booking elsewhere): ask for the event.
  const input = el("input", { id: "event-id", name: "event", required: true, pattern: "[a-z0-9-]{1,64}", "aria-describedby": "event-help" });
  show("home", el("h1", {}, t("home.waiting_room")),
    el("form", { class: "card", onsubmit: (ev) => { ev.preventDefault(); location.href = `/events/${input.value}`; } },
      el("label", { for: "event-id" }, `${t("home.event_label")} `), input,
      el("p", { id: "event-help", class: "muted" }, t("home.event_help")),
      el("div", { class: "actions" }, el("button", { type: "submit" }, t("home.go")))));
}

// ---------- one event ----------

class EventPage {
  constructor(eventId) {
    this.event = eventId;
    this.key = `wr-ticket-${eventId}`;
    this.ticket = localStorage.getItem(this.key);
    this.token = null;
    this.socket = null;
    this.retry = 0;
    this.info = null;
    this.message = null;
    this.selected = new Set();
    this.hold = null;
    this.heartbeat = null;
    this.booking = true;
    this.pow = null;
    this.view = () => {};
    this.last = null;
    this.live = false;
  }

  async start() {
    const info = await call("GET", `/events/${this.event}`);
    if (info.status === 200) {
      this.info = info.data;
      eventZone = info.data.time_zone;
    }
    if (info.status === 503 && info.data?.error?.code === "booking_disabled") this.booking = false;
    this.baseTitle();
    if (this.ticket) {
      const r = await call("GET", `/events/${this.event}/queue/${this.ticket}`);
      if (r.status === 200 && ["queued", "admitted", "sold_out"].includes(r.data.state)) return this.apply(r.data);
      localStorage.removeItem(this.key);
      this.ticket = null;
    }
    this.renderJoin();
  }

  name() {
    return this.info ? this.info.name : this.event;
  }

  baseTitle() {
    document.title = `${this.name()} · ${t("page.title")}`;
  }

  title() {
    return el("h1", {}, this.name());
  }

  // Re-draws the current view (after a language switch).
  redraw() {
    this.baseTitle();
    this.view();
  }

  // Starts solving while the fan reads the event's details.
  prepareChallenge() {
    const fresh = this.pow && this.pow.solution && (this.pow.solution === "none" || this.pow.solution.expires * 1000 > Date.now() + 30000);
    if (fresh || (this.pow && this.pow.pending)) return this.pow.pending || Promise.resolve(this.pow.solution);
    const state = { solution: null, pending: null };
    state.pending = solveChallenge(this.event).then(
      (s) => { state.solution = s || "none"; state.pending = null; this.challengeStatus(); return state.solution; },
      (e) => { state.pending = null; state.error = e; this.challengeStatus(); throw e; });
    this.pow = state;
    return state.pending;
  }

  challengeStatus() {
    const node = document.getElementById("challenge");
    if (!node || !this.pow) return;
    if (this.pow.error) node.textContent = t("challenge.failed");
    else if (this.pow.solution && this.pow.solution !== "none") node.textContent = t("challenge.ready");
    else if (this.pow.solution === "none") node.textContent = "";
    else node.textContent = t("challenge.solving");
    node.dataset.challenge = this.pow.error ? "failed" : (this.pow.solution ? "solved" : "solving");
  }

  renderJoin(errorKey) {
    this.view = () => this.renderJoin(errorKey);
    this.prepareChallenge().catch(() => {});
    show("join", this.title(),
      el("section", { class: "card", "aria-labelledby": "join-h" },
        el("h2", { id: "join-h" }, t("join.title")),
        this.info ? el("p", { class: "muted", id: "when" }, `${this.info.venue} · ${formatWhen(this.info.starts_at)}`) : null,
        errorKey ? el("p", { class: "error", role: "alert" }, t(errorKey)) : null,
        el("p", { id: "challenge", class: "muted", role: "status" }),
        el("div", { class: "actions" }, el("button", { id: "join", onclick: () => this.join() }, t("join.button")))));
    this.challengeStatus();
  }

  async join() {
    const button = document.getElementById("join");
    if (button) { button.disabled = true; button.textContent = t("join.joining"); }
    let solution;
    try {
      if (!this.pow?.solution) {
        const node = document.getElementById("challenge");
        if (node) node.textContent = t("challenge.waiting");
      }
      solution = await this.prepareChallenge();
    } catch (_) {
      this.pow = null;
      return this.renderJoin("challenge.failed");
    }
    const body = { client_id: clientId() };
    if (solution && solution !== "none") body.challenge = solution.payload;
    const r = await call("POST", `/events/${this.event}/queue`, { body });
    // A solution is used once: the next join needs a new one.
    this.pow = null;
    if (r.status === 200 || r.status === 202) {
      this.ticket = r.data.ticket;
      localStorage.setItem(this.key, this.ticket);
      if (r.data.position !== undefined) localStorage.setItem(`${this.key}-ahead`, String(r.data.position - 1));
      return this.apply(r.data);
    }
    const code = r.data?.error?.code;
    const known = ["sold_out", "queue_closed", "rate_limited", "event_not_found"];
    if (code === "challenge_failed" || code === "challenge_required") return this.renderJoin("challenge.failed");
    this.renderJoin(known.includes(code) ? `error.${code}` : "error.generic");
  }

  // Applies a state, from a status body or a WebSocket message.
  apply(s) {
    if (s.message !== undefined) this.message = s.message;
    switch (s.state) {
      case "queued": this.renderQueued(s); this.connect(); break;
      case "sold_out": this.renderSoldOut(); this.connect(); break;
      case "admitted": this.admitted(s.token, s.expires_at); break;
      default: this.ended(s.state);
    }
  }

  renderQueued(s) {
    this.last = { s, at: new Date() };
    this.view = () => { this.drawQueued(); };
    this.drawQueued();
  }

  // The queued view is built once and then updated in place, so that the
  // live region announces changes rather than a new page every 2 s.
  drawQueued() {
    const { s, at } = this.last;
    if (app.dataset.state !== "queued" || app.dataset.lang !== i18n.lang || !document.getElementById("status")) {
      show("queued", this.title(),
        el("section", { class: "card" },
          el("div", { id: "status", "aria-live": "polite", "aria-atomic": "true" }),
          el("div", { id: "progress-box" }),
          el("p", { class: "muted", id: "updated" }),
          el("p", { class: "muted", id: "connection", role: "status" }),
          el("p", { class: "notice", id: "message", hidden: true }),
          el("p", { class: "muted" }, t("queued.keep_open")),
          el("div", { class: "actions" }, el("button", { class: "secondary", id: "leave", onclick: () => this.leave() }, t("queued.leave")))));
      app.dataset.lang = i18n.lang;
    }
    const status = document.getElementById("status");
    const box = document.getElementById("progress-box");
    if (s.position !== undefined) {
      status.replaceChildren(el("p", { class: "muted" }, t("queued.place")),
        el("p", { id: "position", class: "big" }, String(s.position)),
        el("p", {}, `${t("queued.wait")} `, el("strong", { id: "wait" }, formatWait(s.estimated_wait_seconds))));
      const ahead = Number(localStorage.getItem(`${this.key}-ahead`) ?? s.position - 1);
      const gone = Math.max(0, ahead - (s.position - 1));
      const pct = ahead <= 0 ? 100 : Math.round((100 * gone) / ahead);
      box.replaceChildren(
        el("progress", { id: "progress", max: "100", value: String(pct), "aria-labelledby": "progress-label" }),
        el("p", { id: "progress-label", class: "muted" }, t("queued.progress_text", { pct })));
    } else {
      status.replaceChildren(el("p", { id: "position" }, t("queued.prequeue")),
        el("p", {}, t("queued.opens", { when: formatWhen(s.opens_at) })));
      box.replaceChildren();
    }
    document.getElementById("updated").textContent = t("queued.updated", { time: formatTime(at, true) });
    this.connectionStatus();
    this.refreshMessage();
  }

  connectionStatus() {
    const node = document.getElementById("connection");
    if (!node) return;
    node.textContent = this.live ? t("conn.live") : t("conn.reconnecting");
    node.dataset.live = this.live ? "live" : "polling";
  }

  renderSoldOut() {
    this.view = () => this.renderSoldOut();
    show("sold_out", this.title(), el("section", { class: "card", role: "status" },
      el("h2", { id: "sold-out" }, t("sold_out.title")),
      el("p", {}, t("sold_out.text")),
      el("div", { class: "actions" }, el("button", { class: "secondary", id: "leave", onclick: () => this.leave() }, t("queued.leave")))));
  }

  // The live view. Reconnects by itself, with backoff; while it is down,
  // polling keeps the place.
  connect() {
    if (this.socket || !this.ticket) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${api(`/events/${this.event}/queue/${this.ticket}/ws`)}`;
    const ws = new WebSocket(url);
    this.socket = ws;
    ws.onopen = () => { this.retry = 0; this.live = true; this.connectionStatus(); };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (m.type === "position") this.renderQueued(m);
      else if (m.type === "message") { this.message = m.text || null; this.refreshMessage(); }
      else if (m.type === "sold_out") this.renderSoldOut();
      else if (m.type === "admitted") { this.disconnect(); this.admitted(m.token, m.expires_at); }
      else if (m.type === "expired") { this.disconnect(); this.ended("expired"); }
    };
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.live = false;
      this.connectionStatus();
      if (this.token || !this.ticket) return;
      const delay = Math.min(30000, 500 * 2 ** this.retry++) * (0.5 + Math.random());
      setTimeout(() => this.poll(), delay);
    };
  }

  async poll() {
    if (!this.ticket || this.token || this.socket) return;
    const r = await call("GET", `/events/${this.event}/queue/${this.ticket}`).catch(() => null);
    if (r && r.status === 200) this.apply(r.data);
    else setTimeout(() => this.poll(), 5000);
  }

  disconnect() {
    const ws = this.socket;
    this.socket = null;
    this.live = false;
    if (ws) ws.close();
  }

  refreshMessage() {
    const node = document.getElementById("message");
    if (!node) return;
    node.textContent = this.message || "";
    node.hidden = !this.message;
  }

  async leave() {
    this.disconnect();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.ticket) await call("DELETE", `/events/${this.event}/queue/${this.ticket}`);
    localStorage.removeItem(this.key);
    localStorage.removeItem(`${this.key}-ahead`);
    this.ticket = null;
    this.token = null;
    announcer.textContent = "";
    this.baseTitle();
    this.renderJoin();
  }

  ended(state) {
    this.disconnect();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    localStorage.removeItem(this.key);
    this.ticket = null;
    this.token = null;
    announcer.textContent = "";
    this.baseTitle();
    this.view = () => this.ended(state);
    show("ended", this.title(), el("section", { class: "card", role: "status" },
      el("p", {}, t(state === "left" ? "ended.left" : "ended.expired")),
      el("div", { class: "actions" }, el("button", { id: "join", onclick: () => this.join() }, t("join.again")))));
  }

  // The fan's turn: said aloud (an assertive live region that was on the
  // page all along), in the tab's title, and by vibration where possible.
  yourTurn() {
    announcer.textContent = t("turn.announce");
    document.title = t("turn.tab_title", { name: this.name() });
    if (typeof navigator.vibrate === "function") {
      try { navigator.vibrate([200, 100, 200]); } catch (_) { /* not allowed here */ }
    }
  }

  async admitted(token, expiresAt) {
    const first = !this.token;
    this.token = token;
    this.expiresAt = expiresAt;
    if (first) this.yourTurn();
    // Keep the session alive while the fan chooses.
    if (!this.heartbeat) {
      this.heartbeat = setInterval(async () => {
        const r = await call("POST", `/events/${this.event}/queue/${this.ticket}/heartbeat`).catch(() => null);
        if (r && r.status === 410) this.ended("expired");
      }, 15000);
    }
    if (!this.booking) {
      this.view = () => this.admitted(token, expiresAt);
      show("admitted", this.title(), el("section", { class: "card", role: "status" },
        el("h2", { id: "admitted" }, t("turn.title")),
        el("p", {}, t("turn.until", { time: formatTime(expiresAt) })),
        el("p", { class: "muted" }, t("turn.token")), el("code", { id: "token" }, token)));
      return;
    }
    await this.renderSeats();
  }

  async renderSeats(noticeKey) {
    this.view = () => this.renderSeats(noticeKey);
    const r = await call("GET", `/events/${this.event}/seats`);
    if (r.status !== 200) {
      show("seats", this.title(), el("p", { class: "error", role: "alert" }, t("seats.unavailable")));
      setTimeout(() => this.renderSeats(), 3000);
      return;
    }
    const rows = new Map();
    for (const s of r.data.seats) {
      const k = `${s.section} ${s.row}`;
      if (!rows.has(k)) rows.set(k, []);
      rows.get(k).push(s);
    }
    // Its own scrolling box (focusable, so the keyboard can scroll it too);
    // the buttons stay below it, in view.
    const map = el("div", { class: "seatmap", role: "group", "aria-label": t("seats.map"), tabindex: "0" });
    for (const [label, seats] of rows) {
      map.append(el("div", { class: "row" }, el("span", { class: "row-label", "aria-hidden": "true" }, label.split(" ")[1]),
        seats.map((s) => {
          const free = s.status === "available";
          return el("button", {
            class: `seat ${s.status}`, "data-seat": s.seat_id, disabled: !free,
            "aria-pressed": this.selected.has(s.seat_id) ? "true" : "false",
            "aria-label": t("seats.seat_label", { row: s.row, number: s.number, tier: s.price_tier, status: t(`status.${s.status}`) }),
            onclick: (ev) => this.toggle(s.seat_id, ev.currentTarget),
          }, String(s.number));
        })));
    }
    const holdButton = el("button", { id: "hold", onclick: () => this.holdSeats(), disabled: this.selected.size === 0 }, t("seats.hold"));
    this.holdButton = holdButton;
    show("seats", this.title(),
      el("section", { class: "card", "aria-labelledby": "admitted" },
        el("h2", { id: "admitted", tabindex: "-1" }, t("seats.title")),
        el("p", { class: "muted" }, t("seats.session_ends", { time: formatTime(this.expiresAt) })),
        noticeKey ? el("p", { class: "error", role: "alert" }, t(noticeKey)) : null,
        el("div", { class: "legend", "aria-hidden": "true" },
          el("span", {}, el("span", { class: "swatch free" }), t("seats.free")),
          el("span", {}, el("span", { class: "swatch chosen" }), t("seats.chosen")),
          el("span", {}, el("span", { class: "swatch held" }), t("seats.held")),
          el("span", {}, el("span", { class: "swatch sold" }), t("seats.sold"))),
        map,
        el("div", { class: "actions sticky" }, holdButton,
          el("button", { class: "secondary", id: "leave", onclick: () => this.leave() }, t("seats.leave")))));
    document.getElementById("admitted").focus();
  }

  toggle(seat, button) {
    if (this.selected.has(seat)) this.selected.delete(seat);
    else this.selected.add(seat);
    button.setAttribute("aria-pressed", this.selected.has(seat) ? "true" : "false");
    this.holdButton.disabled = this.selected.size === 0;
  }

  async holdSeats() {
    const r = await call("POST", `/events/${this.event}/holds`, { token: this.token, body: { seat_ids: [...this.selected] } });
    if (r.status === 201) {
      this.hold = r.data;
      this.idempotency = crypto.getRandomValues(new Uint32Array(4)).join("-");
      return this.renderHold();
    }
    this.selected.clear();
    this.renderSeats(r.data?.error?.code === "seat_unavailable" ? "seats.taken" : "seats.hold_failed");
  }

  renderHold(errorKey) {
    this.view = () => this.renderHold(errorKey);
    const h = this.hold;
    show("hold", this.title(), el("section", { class: "card", "aria-labelledby": "hold-h" },
      el("h2", { id: "hold-h" }, t("hold.title")),
      el("p", {}, t("hold.text", { seats: h.seat_ids.join(", "), time: formatTime(h.expires_at) })),
      errorKey ? el("p", { class: "error", role: "alert" }, t(errorKey)) : null,
      el("div", { class: "actions" },
        el("button", { id: "confirm", onclick: () => this.confirm() }, t("hold.confirm")),
        el("button", { class: "secondary", id: "release", onclick: () => this.release() }, t("hold.release")))));
    document.getElementById("confirm").focus();
  }

  async confirm() {
    const r = await call("POST", `/holds/${this.hold.hold_id}/confirm`, { token: this.token, headers: { "Idempotency-Key": this.idempotency } });
    if (r.status === 201 || r.status === 200) {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      localStorage.removeItem(this.key);
      localStorage.removeItem(`${this.key}-ahead`);
      const booked = r.data;
      this.view = () => this.renderBooked(booked);
      this.renderBooked(booked);
      return;
    }
    if (r.status === 410) return this.renderSeats("hold.expired");
    this.renderHold("hold.confirm_failed");
  }

  renderBooked(b) {
    announcer.textContent = "";
    this.baseTitle();
    show("booked", this.title(), el("section", { class: "card", role: "status" },
      el("h2", { class: "ok", id: "booked", tabindex: "-1" }, t("booked.title")),
      el("p", {}, t("booked.seats", { seats: b.seat_ids.join(", ") })),
      el("p", { class: "muted" }, `${t("booked.reservation")} `, el("code", { id: "reservation" }, b.reservation_id))));
    document.getElementById("booked").focus();
  }

  async release() {
    await call("DELETE", `/holds/${this.hold.hold_id}`, { token: this.token });
    this.hold = null;
    this.selected.clear();
    this.renderSeats();
  }
}

async function main() {
  await loadLang(chosenLang());
  const match = location.pathname.match(/^\/events\/([a-z0-9-]{1,64})\/?$/);
  const page = match ? new EventPage(match[1]) : null;
  document.getElementById("lang-switch").addEventListener("click", async () => {
    const next = i18n.lang === "ko" ? "en" : "ko";
    localStorage.setItem("wr-lang", next);
    await loadLang(next);
    if (page) page.redraw();
    else home();
  });
  if (page) page.start();
  else home();
}

main();
