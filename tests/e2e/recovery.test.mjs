// Recovery end to end: the dashboard's connection is cut (a TCP proxy between the page and the relay drops it)
// while the demo streams; after the reconnect the timeline has no hole (checked by the SDK's `seq`) and the page
// says it recovered. The relay binary alone serves the page, the real demo SDK streams, headless Chromium shows
// it. Run with scripts/test-e2e.sh.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { view } from "./a11y.mjs";
import {
  demoSessionIds,
  launchBrowser,
  PATIENCE_MS,
  startCuttingProxy,
  startDemo,
  startRelay,
  withTimeout,
} from "./harness.mjs";

const SEED = 31;
const [ID] = demoSessionIds(SEED, 1);
/** Events the demo must have sent while the page was cut off before it may reconnect. */
const MISSED = 30;

/** A seed-000 dashboard straight to the relay: the highest `seq` the relay has delivered of session `id`. */
async function watch(relay, id) {
  const ws = new WebSocket(relay.url);
  const watcher = { maxSeq: 0, waiters: [], close: () => ws.close() };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "stream_event_update" && m.sessionId === id) {
      watcher.maxSeq = Math.max(watcher.maxSeq, m.event.seq);
      watcher.waiters = watcher.waiters.filter((w) => !(watcher.maxSeq >= w.seq && (w.ok(), true)));
    }
  };
  watcher.reached = (seq) =>
    watcher.maxSeq >= seq
      ? Promise.resolve()
      : withTimeout(new Promise((ok) => watcher.waiters.push({ seq, ok })), `the relay delivering seq ${seq}`);
  await withTimeout(
    new Promise((ok, fail) => {
      ws.onopen = ok;
      ws.onerror = () => fail(new Error("watcher: socket error"));
    }),
    "watcher: open",
  );
  ws.send(JSON.stringify({ type: "subscribe_dashboard", token: relay.token }));
  return watcher;
}

describe("recovery", () => {
  let relay, proxy, demo, browser, page, watcher;

  before(async () => {
    [relay, browser] = await Promise.all([startRelay(), launchBrowser()]);
    proxy = await startCuttingProxy(relay.port);
    demo = startDemo(relay.url, { sessions: 1, rate: 25, seed: SEED });
    watcher = await watch(relay, ID);
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    page = await context.newPage();
    page.setDefaultTimeout(PATIENCE_MS);
    page.on("pageerror", (e) => console.error("page error:", e));
  });

  after(async () => {
    watcher?.close();
    await browser?.close();
    await proxy?.close();
    await Promise.all([demo?.stop(), relay?.stop()]);
  });

  const timeline = () => page.getByTestId("timeline");
  const seqAttr = async (name) => Number(await timeline().getAttribute(`data-seq-${name}`));

  test("a connection cut while the demo streams: after the reconnect every missed event is there, once", async () => {
    await page.goto(proxy.open(relay, `clientId=${ID}`));
    await page.locator(`[data-testid=client-view][data-session-id="${ID}"]`).waitFor();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) >= 20);
    assert.equal(await page.getByTestId("recovery-status").getAttribute("data-state"), "none");

    assert.ok(proxy.cut() >= 1, "the page's socket went through the proxy");
    await page.locator("[data-testid=connection-status][data-state=reconnecting]").waitFor();
    const lastBefore = await seqAttr("last");
    // The demo goes on: the relay delivers at least MISSED more events while the page cannot receive them.
    await watcher.reached(lastBefore + MISSED);
    proxy.uncut();

    await page.locator("[data-testid=connection-status][data-state=open]").waitFor();
    const notice = page.locator("[data-testid=recovery-status][data-state=recovered]");
    await notice.waitFor();
    const replayed = Number(await notice.getAttribute("data-replayed"));
    assert.ok(replayed >= MISSED, `replayed ${replayed}, at least ${MISSED} were missed`);
    assert.match(await notice.innerText(), new RegExp(`recovered ${replayed.toLocaleString("en-US")} missed events`));
    // The client's own view says what its data went through.
    const badge = page.locator("[data-testid=session-recovery][data-outcome=recovered]");
    assert.match(await badge.innerText(), /^\d+ missed replayed$/);

    // The stream goes on past the gap; the timeline holds every seq from its first to its last exactly once.
    const target = watcher.maxSeq + 5;
    await page.waitForFunction(
      (t) => Number(document.querySelector("[data-testid=timeline]")?.dataset.seqLast) >= t,
      target,
    );
    // Read at once: the timeline keeps moving.
    const { first, last, gaps, count } = await timeline().evaluate((el) => ({
      first: Number(el.dataset.seqFirst),
      last: Number(el.dataset.seqLast),
      gaps: Number(el.dataset.seqGaps),
      count: Number(el.querySelector("[data-testid=timeline-count]").textContent),
    }));
    assert.equal(gaps, 0, "no hole in seq");
    assert.ok(first <= lastBefore - 19 && last >= target, `${first}..${last}`);
    assert.equal(count, last - first + 1, `every seq from ${first} to ${last} once (${count} events)`);
    assert.equal(await page.getByTestId("seq-gaps").count(), 0);
    await view(page, "20-recovered-after-a-cut");
  });
});
