// The page's proof-of-work solve time in headless Chromium: N challenges
// from the service (at the event's difficulty), each solved by the page's
// own worker. With a throttle rate, Chromium's CPU throttling (4 is
// Lighthouse's mid-range phone) slows the page down that many times.
// Prints {maxnumber, runs, throttle, median_ms, p90_ms, min_ms, max_ms}.
// Usage: node pow-bench.mjs <base-url> <event-id> [runs] [throttle]
import { chromium } from "playwright-core";

const [base, event, n = "21", throttle = "1"] = process.argv.slice(2);
if (!base || !event) {
  console.error("usage: node pow-bench.mjs <base-url> <event-id> [runs] [throttle]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${base}/events/${event}`);
  if (Number(throttle) > 1) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: Number(throttle) });
  }
  const out = await page.evaluate(async ({ event, runs }) => {
    const took = [];
    let maxnumber = 0;
    for (let i = 0; i < runs; i++) {
      const c = await (await fetch(`/api/v1/events/${event}/queue/challenge`)).json();
      maxnumber = c.maxnumber;
      const t0 = performance.now();
      await new Promise((resolve, reject) => {
        const w = new Worker("/assets/pow-worker.js");
        w.onmessage = (ev) => { w.terminate(); ev.data.error ? reject(new Error(ev.data.error)) : resolve(ev.data); };
        w.postMessage(c);
      });
      took.push(performance.now() - t0);
    }
    return { maxnumber, took };
  }, { event, runs: Number(n) });
  const sorted = [...out.took].sort((a, b) => a - b);
  const at = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  console.log(JSON.stringify({ maxnumber: out.maxnumber, runs: sorted.length, throttle: Number(throttle), median_ms: at(0.5), p90_ms: at(0.9), min_ms: Math.round(sorted[0]), max_ms: Math.round(sorted[sorted.length - 1]) }));
} finally {
  await browser.close();
}
