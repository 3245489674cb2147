// The fans' page: join, live position over the WebSocket (reconnecting by
// itself), then the seat map, hold and confirm. No framework, no CDN.
"use strict";

const app = document.getElementById("app");
const api = (path) => `/api/v1${path}`;

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

function show(...nodes) {
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

function formatWait(seconds) {
  if (seconds === null || seconds === undefined) return "unknown for now";
  if (seconds < 60) return `about ${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  return minutes < 60 ? `about ${minutes} min` : `about ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// ---------- the list of events ----------

async function home() {
  document.title = "Events";
  const r = await call("GET", "/events");
  if (r.status === 200) {
    const items = r.data.events.map((e) =>
      el("li", {}, el("a", { href: `/events/${e.id}` }, e.name), " ",
        el("span", { class: "muted" }, `${e.venue}, ${new Date(e.starts_at).toLocaleString()}`)));
    show(el("h1", {}, "Events"), items.length ? el("ul", { class: "events" }, items) : el("p", {}, "No events yet."));
    return;
  }
  // Waiting room only (booking elsewhere): ask for the event.
  const input = el("input", { id: "event-id", name: "event", required: true, pattern: "[a-z0-9-]{1,64}", "aria-describedby": "event-help" });
  show(el("h1", {}, "Waiting room"),
    el("form", { class: "card", onsubmit: (ev) => { ev.preventDefault(); location.href = `/events/${input.value}`; } },
      el("label", { for: "event-id" }, "Event "), input,
      el("p", { id: "event-help", class: "muted" }, "The id of the sale you want to join."),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Go"))));
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
  }

  async start() {
    const info = await call("GET", `/events/${this.event}`);
    if (info.status === 200) this.info = info.data;
    if (info.status === 503 && info.data?.error?.code === "booking_disabled") this.booking = false;
    document.title = this.info ? this.info.name : `Queue ${this.event}`;
    if (this.ticket) {
      const r = await call("GET", `/events/${this.event}/queue/${this.ticket}`);
      if (r.status === 200 && ["queued", "admitted", "sold_out"].includes(r.data.state)) return this.apply(r.data);
      localStorage.removeItem(this.key);
      this.ticket = null;
    }
    this.renderJoin();
  }

  title() {
    return el("h1", {}, this.info ? this.info.name : this.event);
  }

  renderJoin(error) {
    show(this.title(),
      el("section", { class: "card", "aria-labelledby": "join-h" },
        el("h2", { id: "join-h" }, "Join the queue"),
        this.info ? el("p", { class: "muted" }, `${this.info.venue} · ${new Date(this.info.starts_at).toLocaleString()}`) : null,
        error ? el("p", { class: "error", role: "alert" }, error) : null,
        el("div", { class: "actions" }, el("button", { id: "join", onclick: () => this.join() }, "Join the queue"))));
    app.focus();
  }

  async join() {
    const r = await call("POST", `/events/${this.event}/queue`, { body: { client_id: clientId() } });
    if (r.status === 200 || r.status === 202) {
      this.ticket = r.data.ticket;
      localStorage.setItem(this.key, this.ticket);
      return this.apply(r.data);
    }
    const why = {
      sold_out: "This event is sold out.",
      queue_closed: "The queue is closed to new arrivals.",
      rate_limited: "Too many tries from your network; please wait a moment.",
      event_not_found: "There is no sale for this event.",
    }[r.data?.error?.code] || "We could not join you right now; please try again.";
    this.renderJoin(why);
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
    const live = el("div", { id: "status", "aria-live": "polite" });
    if (s.position !== undefined) {
      live.append(el("p", { class: "muted" }, "Your place in line"),
        el("p", { id: "position", class: "big" }, String(s.position)),
        el("p", {}, "Estimated wait: ", el("strong", { id: "wait" }, formatWait(s.estimated_wait_seconds))));
    } else {
      live.append(el("p", { id: "position" }, "You are in the pre-queue."),
        el("p", {}, "The sale opens at ", el("strong", {}, new Date(s.opens_at).toLocaleString()),
          ". Everyone here by then gets a random place ahead of later arrivals."));
    }
    show(this.title(),
      el("section", { class: "card" }, live,
        this.message ? el("p", { class: "notice", id: "message" }, this.message) : null,
        el("p", { class: "muted" }, "Keep this page open: it holds your place."),
        el("div", { class: "actions" }, el("button", { class: "secondary", id: "leave", onclick: () => this.leave() }, "Leave the queue"))));
  }

  renderSoldOut() {
    show(this.title(), el("section", { class: "card", role: "status" },
      el("h2", { id: "sold-out" }, "Sold out"),
      el("p", {}, "Every seat is taken for now. If seats come back, you keep your place."),
      el("div", { class: "actions" }, el("button", { class: "secondary", id: "leave", onclick: () => this.leave() }, "Leave the queue"))));
  }

  // The live view. Reconnects by itself, with backoff; while it is down,
  // polling keeps the place.
  connect() {
    if (this.socket || !this.ticket) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${api(`/events/${this.event}/queue/${this.ticket}/ws`)}`;
    const ws = new WebSocket(url);
    this.socket = ws;
    ws.onopen = () => { this.retry = 0; };
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
    if (ws) ws.close();
  }

  refreshMessage() {
    const node = document.getElementById("message");
    if (node && this.message) node.textContent = this.message;
    else if (node) node.remove();
  }

  async leave() {
    this.disconnect();
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.ticket) await call("DELETE", `/events/${this.event}/queue/${this.ticket}`);
    localStorage.removeItem(this.key);
    this.ticket = null;
    this.token = null;
    this.renderJoin();
  }

  ended(state) {
    this.disconnect();
    if (this.heartbeat) clearInterval(this.heartbeat);
    localStorage.removeItem(this.key);
    this.ticket = null;
    const text = state === "left" ? "You left the queue." : "Your place has expired.";
    show(this.title(), el("section", { class: "card", role: "status" }, el("p", {}, text),
      el("div", { class: "actions" }, el("button", { id: "join", onclick: () => this.join() }, "Join again"))));
  }

  async admitted(token, expiresAt) {
    this.token = token;
    this.expiresAt = expiresAt;
    // Keep the session alive while the fan chooses.
    if (!this.heartbeat) {
      this.heartbeat = setInterval(async () => {
        const r = await call("POST", `/events/${this.event}/queue/${this.ticket}/heartbeat`).catch(() => null);
        if (r && r.status === 410) this.ended("expired");
      }, 15000);
    }
    if (!this.booking) {
      show(this.title(), el("section", { class: "card", role: "status" },
        el("h2", { id: "admitted" }, "It's your turn"),
        el("p", {}, `You have until ${new Date(expiresAt).toLocaleTimeString()}.`),
        el("p", { class: "muted" }, "Your admission token:"), el("code", { id: "token" }, token)));
      return;
    }
    await this.renderSeats();
  }

  async renderSeats(notice) {
    const r = await call("GET", `/events/${this.event}/seats`);
    if (r.status !== 200) {
      show(this.title(), el("p", { class: "error", role: "alert" }, "The seat map is unavailable; retrying…"));
      setTimeout(() => this.renderSeats(), 3000);
      return;
    }
    const rows = new Map();
    for (const s of r.data.seats) {
      const k = `${s.section} ${s.row}`;
      if (!rows.has(k)) rows.set(k, []);
      rows.get(k).push(s);
    }
    const map = el("div", { class: "seatmap", role: "group", "aria-label": "Seat map" });
    for (const [label, seats] of rows) {
      map.append(el("div", { class: "row" }, el("span", { class: "row-label" }, label.split(" ")[1]),
        seats.map((s) => {
          const free = s.status === "available";
          return el("button", {
            class: `seat ${s.status}`, "data-seat": s.seat_id, disabled: !free,
            "aria-pressed": this.selected.has(s.seat_id) ? "true" : "false",
            "aria-label": `Row ${s.row}, seat ${s.number}, ${s.price_tier}, ${s.status}`,
            onclick: (ev) => this.toggle(s.seat_id, ev.currentTarget),
          }, String(s.number));
        })));
    }
    const holdButton = el("button", { id: "hold", onclick: () => this.holdSeats(), disabled: this.selected.size === 0 }, "Hold selected seats");
    this.holdButton = holdButton;
    show(this.title(),
      el("section", { class: "card", "aria-labelledby": "admitted" },
        el("h2", { id: "admitted" }, "It's your turn: choose your seats"),
        el("p", { class: "muted" }, `Your session ends at ${new Date(this.expiresAt).toLocaleTimeString()}.`),
        notice ? el("p", { class: "error", role: "alert" }, notice) : null,
        el("div", { class: "legend", "aria-hidden": "true" },
          el("span", {}, el("span", { class: "swatch", style: "background:#dfe8ff" }), "free"),
          el("span", {}, el("span", { class: "swatch", style: "background:#0b5fff" }), "chosen"),
          el("span", {}, el("span", { class: "swatch", style: "background:#f0a020" }), "held"),
          el("span", {}, el("span", { class: "swatch", style: "background:#9aa1ad" }), "sold")),
        map,
        el("div", { class: "actions" }, holdButton,
          el("button", { class: "secondary", id: "leave", onclick: () => this.leave() }, "Leave"))));
    document.getElementById("admitted").focus?.();
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
    const why = r.data?.error?.code === "seat_unavailable" ? "Someone was faster for one of those seats. Pick again." : (r.data?.error?.message || "Could not hold those seats.");
    this.renderSeats(why);
  }

  renderHold(error) {
    const h = this.hold;
    show(this.title(), el("section", { class: "card", "aria-labelledby": "hold-h" },
      el("h2", { id: "hold-h" }, "Your seats are held"),
      el("p", {}, `Seats ${h.seat_ids.join(", ")} are yours until ${new Date(h.expires_at).toLocaleTimeString()}.`),
      error ? el("p", { class: "error", role: "alert" }, error) : null,
      el("div", { class: "actions" },
        el("button", { id: "confirm", onclick: () => this.confirm() }, "Confirm booking"),
        el("button", { class: "secondary", id: "release", onclick: () => this.release() }, "Choose again"))));
    document.getElementById("confirm").focus();
  }

  async confirm() {
    const r = await call("POST", `/holds/${this.hold.hold_id}/confirm`, { token: this.token, headers: { "Idempotency-Key": this.idempotency } });
    if (r.status === 201 || r.status === 200) {
      if (this.heartbeat) clearInterval(this.heartbeat);
      localStorage.removeItem(this.key);
      show(this.title(), el("section", { class: "card", role: "status" },
        el("h2", { class: "ok", id: "booked" }, "Booked!"),
        el("p", {}, `Seats ${r.data.seat_ids.join(", ")}.`),
        el("p", { class: "muted" }, "Reservation ", el("code", { id: "reservation" }, r.data.reservation_id))));
      document.getElementById("booked").focus?.();
      return;
    }
    if (r.status === 410) return this.renderSeats("Your hold ran out; the seats are free again.");
    this.renderHold(r.data?.error?.message || "Could not confirm; try again.");
  }

  async release() {
    await call("DELETE", `/holds/${this.hold.hold_id}`, { token: this.token });
    this.hold = null;
    this.selected.clear();
    this.renderSeats();
  }
}

const match = location.pathname.match(/^\/events\/([a-z0-9-]{1,64})\/?$/);
if (match) new EventPage(match[1]).start();
else home();
