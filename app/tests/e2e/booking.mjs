// The fans' journey in headless Chromium against a running app, once per
// language, on an event with the proof-of-work challenge and capacity 1:
// fan A is admitted, B waits first in line, C (the journey) waits second,
// solving the challenge in the page's worker while it reads the event; its
// live connection drops once (reconnecting, polling, live again). A
// leaves (C's progress bar fills over the WebSocket), B leaves, C is told
// it is its turn (live region, tab title, vibration), picks a seat with the
// keyboard in a seat map that scrolls in its own box, holds and books it.
// axe-core checks every state (no serious or critical violation).
// Usage: node booking.mjs <base-url> <screenshot.png> <lang>:<event-id>...
// Prints one JSON line: [{lang, event, position, reservation, pow_took_ms}].
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const [base, shot, ...runs] = process.argv.slice(2);
if (!base || !shot || runs.length === 0) {
  console.error("usage: node booking.mjs <base-url> <screenshot.png> <lang>:<event-id>...");
  process.exit(2);
}
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const catalogs = {
  en: JSON.parse(readFileSync(new URL("../../web/en.json", import.meta.url), "utf8")),
  ko: JSON.parse(readFileSync(new URL("../../web/ko.json", import.meta.url), "utf8")),
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const fail = (msg) => { throw new Error(msg); };
const errors = [];

async function fan(options) {
  const context = await browser.newContext({ bypassCSP: true, ...options });
  // Records vibrations (headless Chromium has no vibrator to ask).
  await context.addInitScript(() => {
    window.__vibrations = [];
    navigator.vibrate = (p) => { window.__vibrations.push(p); return true; };
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console error: ${m.text()} (${m.location().url})`); });
  return page;
}

// axe-core on the page as it is: no serious or critical violation.
async function axe(page, state, lang) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) {
    fail(`axe (${lang}, ${state}): ${bad.map((v) => `${v.id} [${v.impact}] ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}${v.nodes.length > 3 ? ` and ${v.nodes.length - 3} more` : ""}`).join("; ")}`);
  }
  checked.push(`${lang}:${state}`);
}
const checked = [];

async function joinAndWait(page, url, selector) {
  await page.goto(url);
  await page.waitForSelector('#challenge[data-challenge="solved"]', { timeout: 20000 });
  await page.click("#join");
  await page.waitForSelector(selector, { timeout: 15000 });
}

async function journey(lang, event) {
  const t = catalogs[lang];
  const url = `${base}/events/${event}`;
  const locale = lang === "ko" ? "ko-KR" : "en-US";
  const a = await fan({ locale });
  const b = await fan({ locale });
  // C: a phone in Korean; in English a desktop at 200% zoom (640 CSS px
  // wide), whose Accept-Language is Korean: it switches with the button.
  const c = lang === "ko"
    ? await fan({ locale, viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
    : await fan({ locale: "ko-KR", viewport: { width: 640, height: 400 }, deviceScaleFactor: 2 });

  await joinAndWait(a, url, "#admitted");
  await joinAndWait(b, url, "#position");
  if ((await b.textContent("#position")).trim() !== "1") fail("B should be first in line");

  // C reads the event while its worker solves (held back a moment here so
  // that the state can be checked).
  await c.route("**/assets/pow-worker.js", async (route) => {
    await new Promise((r) => setTimeout(r, 600));
    await route.continue();
  });
  // C's first live connection drops after its first message: the page
  // says it is reconnecting (polling meanwhile), then live again.
  let dropped = false;
  await c.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    if (dropped) return;
    dropped = true;
    server.onMessage((m) => { ws.send(m); ws.close(); });
  });
  await c.goto(url);
  await c.waitForSelector('#challenge[data-challenge="solving"]', { timeout: 10000 });
  if (lang === "en") {
    if ((await c.getAttribute("html", "lang")) !== "ko") fail("Accept-Language ko should serve Korean");
    if ((await c.textContent("#join")).trim() !== catalogs.ko["join.button"]) fail("the join button is not in Korean");
    await c.focus("#lang-switch");
    await c.keyboard.press("Enter");
    await c.waitForFunction(() => document.documentElement.lang === "en");
    await c.reload();
    await c.waitForSelector('#challenge[data-challenge="solving"]', { timeout: 10000 });
    if ((await c.getAttribute("html", "lang")) !== "en") fail("the language switch is not remembered");
  }
  if ((await c.textContent("#join")).trim() !== t["join.button"]) fail(`the join button is not in ${lang}`);
  // 2030-01-01T20:00Z is 2 January, 05:00 in Seoul, the event's zone, named.
  const when = await c.textContent("#when");
  const zone = lang === "ko" ? "한국 표준시" : "Korean Standard Time";
  if (!when.includes(zone) || !when.includes(lang === "ko" ? "2030. 1. 2. 오전 5:00" : "Jan 2, 2030, 5:00")) fail(`the event's date in its zone: ${when}`);
  await axe(c, "challenge", lang);
  await c.waitForSelector('#challenge[data-challenge="solved"]', { timeout: 20000 });
  await axe(c, "join", lang);
  await c.focus("#join");
  await c.keyboard.press("Enter");
  await c.waitForSelector("#position", { timeout: 15000 });
  const position = (await c.textContent("#position")).trim();
  if (position !== "2") fail(`C should be second in line, saw ${position}`);
  if ((await c.getAttribute("#progress", "value")) !== "0") fail("nobody ahead has gone in yet");
  await c.waitForSelector('#connection[data-live="polling"]', { timeout: 10000 });
  if ((await c.textContent("#connection")).trim() !== t["conn.reconnecting"]) fail("no reconnecting state");
  await c.waitForSelector('#connection[data-live="live"]', { timeout: 10000 });
  if (!dropped) fail("the live connection was never dropped");
  if (!(await c.textContent("#wait")).trim()) fail("no estimated wait");
  if (!(await c.textContent("#updated")).trim()) fail("no last update time");
  await axe(c, "queued", lang);
  await c.screenshot({ path: shot.replace(/\.png$/, `-${lang}-waiting.png`), fullPage: true });

  // A leaves: C moves up, pushed over the WebSocket.
  await a.click("#leave");
  await b.waitForSelector("#admitted", { timeout: 15000 });
  await c.waitForFunction(() => document.getElementById("position")?.textContent.trim() === "1", null, { timeout: 15000 });
  if ((await c.getAttribute("#progress", "value")) !== "100") fail("the one ahead has gone in: 100%");

  // B leaves: C's turn.
  await b.click("#leave");
  await c.waitForSelector("#admitted", { timeout: 15000 });
  if ((await c.textContent("#announce")).trim() !== t["turn.announce"]) fail("the turn is not announced");
  const title = await c.title();
  if (!title.startsWith(t["turn.tab_title"].split("{name}")[0])) fail(`tab title: ${title}`);
  if ((await c.evaluate(() => window.__vibrations.length)) !== 1) fail("no vibration");
  await axe(c, "admitted", lang);

  // The seat map scrolls in its own box; the buttons stay in view, on top.
  const layout = await c.evaluate(() => {
    const box = document.querySelector(".seatmap");
    const hold = document.getElementById("hold");
    const r = hold.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return {
      scrolls: box.scrollHeight > box.clientHeight || box.scrollWidth > box.clientWidth,
      inView: r.top >= 0 && r.bottom <= window.innerHeight,
      onTop: hit === hold || hold.contains(hit),
      pageWide: document.documentElement.scrollWidth > window.innerWidth + 1,
    };
  });
  if (!layout.scrolls || !layout.inView || !layout.onTop || layout.pageWide) fail(`seat map layout (${lang}): ${JSON.stringify(layout)}`);

  // Keyboard only: a free seat, Enter, then the hold button, Enter.
  await c.focus('[data-seat="main-A-2"]');
  await c.keyboard.press("Enter");
  if ((await c.getAttribute('[data-seat="main-A-2"]', "aria-pressed")) !== "true") fail("seat not selected by keyboard");
  await axe(c, "seats", lang);
  await c.screenshot({ path: shot.replace(/\.png$/, `-${lang}-seats.png`) });
  await c.focus("#hold");
  await c.keyboard.press("Enter");
  await c.waitForSelector("#confirm", { timeout: 10000 });
  await axe(c, "hold", lang);
  await c.keyboard.press("Enter");
  await c.waitForSelector("#booked", { timeout: 10000 });
  if ((await c.textContent("#booked")).trim() !== t["booked.title"]) fail(`not booked in ${lang}`);
  await axe(c, "booked", lang);
  const reservation = (await c.textContent("#reservation")).trim();
  await c.screenshot({ path: lang === runs[0].split(":")[0] ? shot : shot.replace(/\.png$/, `-${lang}.png`), fullPage: true });
  const took = [];
  for (const p of [a, b, c]) took.push(Number(await p.getAttribute("#app", "data-pow-took")));
  for (const p of [a, b, c]) await p.context().close();
  return { lang, event, position, reservation, pow_took_ms: took };
}

try {
  const results = [];
  for (const run of runs) {
    const [lang, event] = run.split(":");
    results.push(await journey(lang, event));
  }
  if (errors.length) fail(errors.join("\n"));
  console.error(`axe checked: ${checked.join(", ")}`);
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
