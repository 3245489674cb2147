// Two fans in headless Chromium against a running app (capacity 1): the
// second waits and sees its position, the first leaves, the second is
// admitted, picks a seat with the keyboard, holds it and books it.
// Usage: node booking.mjs <base-url> <event-id> <screenshot.png>
import { chromium } from "playwright-core";

const [base, event, shot] = process.argv.slice(2);
if (!base || !event || !shot) {
  console.error("usage: node booking.mjs <base-url> <event-id> <screenshot.png>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const fail = (msg) => { throw new Error(msg); };
try {
  // Two browsers' worth of storage: two different fans.
  const first = await (await browser.newContext()).newPage();
  const second = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })).newPage();
  for (const page of [first, second]) page.on("pageerror", (e) => console.error(`page error: ${e.message}`));

  await first.goto(`${base}/events/${event}`);
  await first.click("#join");
  await first.waitForSelector("#admitted", { timeout: 10000 });

  await second.goto(`${base}/events/${event}`);
  await second.click("#join");
  await second.waitForSelector("#position", { timeout: 10000 });
  const position = (await second.textContent("#position")).trim();
  if (position !== "1") fail(`the second fan should be first in line, saw ${position}`);
  await second.screenshot({ path: shot.replace(/\.png$/, "-waiting.png"), fullPage: true });

  await first.click("#leave");
  // Pushed over the WebSocket: no reload.
  await second.waitForSelector("#admitted", { timeout: 10000 });
  await second.screenshot({ path: shot.replace(/\.png$/, "-seats.png"), fullPage: true });

  // Keyboard only: focus a free seat, press Enter, tab to the hold button.
  await second.focus('[data-seat="main-A-2"]');
  await second.keyboard.press("Enter");
  if ((await second.getAttribute('[data-seat="main-A-2"]', "aria-pressed")) !== "true") fail("seat not selected by keyboard");
  await second.click("#hold");
  await second.waitForSelector("#confirm", { timeout: 10000 });
  await second.keyboard.press("Enter");
  await second.waitForSelector("#booked", { timeout: 10000 });
  const reservation = (await second.textContent("#reservation")).trim();
  await second.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ position, reservation }));
} finally {
  await browser.close();
}
