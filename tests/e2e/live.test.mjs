// The Live view (/live) and follow mode end to end: the relay binary (metrics every second), the real demo SDK,
// headless Chromium. The Live view shows every channel's messages as they arrive, filters them, pauses and
// resumes; its KPI cards follow the relay's `metrics` channel; a dashboard that follows one session receives no
// message of another. Run with scripts/test-e2e.sh.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { view } from "./a11y.mjs";
import { demoSessionIds, launchBrowser, PATIENCE_MS, startDemo, startRelay, withTimeout } from "./harness.mjs";

const SEED = 11;
const SESSIONS = 2;
const IDS = demoSessionIds(SEED, SESSIONS);

/** Every message in frames the page received: batches (JSON arrays) flattened. */
function messagesOf(frames) {
  return frames.flatMap((text) => {
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [parsed];
  });
}

describe("live view and follow mode", () => {
  let relay, demo, browser, context;

  before(async () => {
    [relay, browser] = await Promise.all([startRelay(0, ["--metrics-interval-secs", "1"]), launchBrowser()]);
    demo = startDemo(relay.url, { sessions: SESSIONS, rate: 15, seed: SEED });
    context = await browser.newContext({ viewport: { width: 1500, height: 950 } });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([demo?.stop(), relay?.stop()]);
  });

  async function open(path) {
    const page = await context.newPage();
    page.setDefaultTimeout(PATIENCE_MS);
    page.on("pageerror", (e) => console.error("page error:", e));
    // The dashboard token in the fragment, as the relay prints its URL.
    await page.goto(`${relay.page}${path}${relay.token ? `#token=${relay.token}` : ""}`);
    return page;
  }

  const rows = (page) => page.getByTestId("live-row");
  /** The channels and events of the rendered rows. */
  const rendered = (page) =>
    page.$$eval("[data-testid=live-row]", (els) => els.map((e) => ({ channel: e.dataset.channel, event: e.dataset.event })));

  test("every channel's messages arrive, filter by channel, event and text, and virtualize", async () => {
    const page = await open("live");
    await page.locator("[data-testid=connection-status][data-state=open]").waitFor();
    // The demo's sessions (global presence and sessions/* traffic) and the relay's metrics all stream in.
    await page.waitForFunction(
      (ids) => {
        const channels = new Set([...document.querySelectorAll("[data-testid=live-row]")].map((e) => e.dataset.channel));
        return ids.every((id) => channels.has(`sessions/${id}`)) && channels.has("metrics");
      },
      IDS,
    );
    // A topic published over the HTTP API shows too.
    const res = await fetch(`http://127.0.0.1:${relay.port}/api/publish`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(relay.token ? { authorization: `Bearer ${relay.token}` } : {}) },
      body: JSON.stringify({ channel: "topics/e2e-deploys", event: "deploy.finished", data: { build: "b-42", ok: true } }),
    });
    assert.equal(res.status, 200, await res.text());
    await page.locator("[data-testid=live-row][data-channel='topics/e2e-deploys']").waitFor();
    await view(page, "live-01-stream");

    // Channel: only metrics.
    await page.getByTestId("live-filter-channel").selectOption("metrics");
    await page.waitForFunction(() => {
      const els = [...document.querySelectorAll("[data-testid=live-row]")];
      return els.length > 0 && els.every((e) => e.dataset.channel === "metrics");
    });
    // A namespace: every session's channel, nothing else.
    await page.getByTestId("live-filter-channel").selectOption("sessions/*");
    await page.waitForFunction(() => {
      const els = [...document.querySelectorAll("[data-testid=live-row]")];
      return els.length > 0 && els.every((e) => e.dataset.channel.startsWith("sessions/"));
    });
    // Event, within the namespace.
    await page.getByTestId("live-filter-event").selectOption("stream_event");
    await page.waitForFunction(() => {
      const els = [...document.querySelectorAll("[data-testid=live-row]")];
      return els.length > 0 && els.every((e) => e.dataset.channel.startsWith("sessions/") && e.dataset.event === "stream_event");
    });
    await page.getByTestId("live-filter-channel").selectOption("");
    await page.getByTestId("live-filter-event").selectOption("");
    // Free text: the topic's data.
    await page.getByTestId("live-filter-text").fill("b-42");
    await page.waitForFunction(() => {
      const els = [...document.querySelectorAll("[data-testid=live-row]")];
      return els.length === 1 && els[0].dataset.channel === "topics/e2e-deploys";
    });
    await view(page, "live-02-filtered");
    await page.getByTestId("live-filter-text").fill("no message has this text 7f3a");
    await page.getByTestId("live-empty").waitFor();
    await page.getByTestId("live-filter-text").fill("");

    // Virtualized: thousands of messages, a screenful of rows in the DOM.
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=live-count]")?.textContent) > 500);
    const inDom = await rows(page).count();
    assert.ok(inDom > 10 && inDom <= 80, `${inDom} rows rendered`);
    await page.close();
  });

  test("pause holds the list still and counts what arrives; resume shows it", async () => {
    const page = await open("live");
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=live-count]")?.textContent) > 20);
    await page.getByTestId("live-pause").click();
    assert.equal(await page.getByTestId("live-pause").getAttribute("aria-pressed"), "true");
    const count = await page.getByTestId("live-count").innerText();
    const before = await rendered(page);
    // Messages keep arriving: the counter says so, the list does not move.
    await page.waitForFunction(() => {
      const m = /^([\d,]+) new/.exec(document.querySelector("[data-testid=live-paused-count]")?.textContent ?? "");
      return m !== null && Number(m[1].replace(/,/g, "")) >= 20;
    });
    assert.equal(await page.getByTestId("live-count").innerText(), count);
    assert.deepEqual(await rendered(page), before, "a paused list holds still");
    await view(page, "live-03-paused");
    await page.getByTestId("live-pause").click();
    assert.equal(await page.getByTestId("live-pause").getAttribute("aria-pressed"), "false");
    await page.getByTestId("live-paused-count").waitFor({ state: "detached" });
    await page.waitForFunction((n) => document.querySelector("[data-testid=live-count]")?.textContent !== n, count);
    // Clear: only what arrives afterwards.
    await page.getByTestId("live-clear").click();
    await page.waitForFunction(() => {
      const n = Number(document.querySelector("[data-testid=live-count]")?.textContent);
      return n >= 1 && n < 200;
    });
    await page.close();
  });

  test("KPI cards follow the metrics channel, with a live indicator and charts", async () => {
    const page = await open("live");
    const kpis = page.getByTestId("kpis");
    // Metrics every second: a few updates, the indicator live, the figures the demo's.
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=kpis]")?.dataset.updates) >= 3);
    assert.equal(await page.getByTestId("live-indicator").getAttribute("data-state"), "live");
    await page.waitForFunction(() => document.querySelector("[data-testid=kpi-sessions-value]")?.textContent === "2");
    assert.match(await page.getByTestId("kpi-dashboards-value").innerText(), /^[1-9]\d*$/);
    await page.waitForFunction(() => /^[1-9][\d,]*\/min$/.test(document.querySelector("[data-testid=kpi-messages-in-value]")?.textContent ?? ""));
    assert.match(await page.getByTestId("kpi-fanout-value").innerText(), /^p99 /);
    // The charts are uPlot canvases with the history in them.
    const chart = page.getByTestId("kpi-messages-in-chart");
    await chart.locator("canvas").waitFor();
    assert.ok(Number(await chart.getAttribute("data-points")) >= 3);
    assert.match(await chart.getAttribute("aria-label"), /^Messages in over the last \d+ updates: now [\d,]+\/min$/);
    // The cards keep updating.
    const updates = Number(await kpis.getAttribute("data-updates"));
    await page.waitForFunction((n) => Number(document.querySelector("[data-testid=kpis]")?.dataset.updates) > n, updates);
    await view(page, "live-04-kpis");
    await page.close();
  });

  test("a dashboard following one session receives nothing of another", async () => {
    const [a, b] = IDS;
    const page = await context.newPage();
    page.setDefaultTimeout(PATIENCE_MS);
    page.on("pageerror", (e) => console.error("page error:", e));
    // Every frame the page receives, and waiters for a message matching a predicate.
    const frames = [];
    const waiters = [];
    page.on("websocket", (ws) =>
      ws.on("framereceived", (f) => {
        const text = String(f.payload);
        frames.push(text);
        const got = messagesOf([text]);
        for (const w of waiters.splice(0)) {
          if (got.some(w.pred)) w.ok();
          else waiters.push(w);
        }
      }),
    );
    const received = (pred) =>
      withTimeout(new Promise((ok) => waiters.push({ pred, ok })), "a message the page should receive");
    await page.goto(relay.open(`clientId=${a}&follow=selected`));
    assert.equal(await page.getByTestId("follow-selected").isChecked(), true);
    // Its client view fills from a's channel: snapshot (threads) and live events.
    await page.locator(`[data-testid=client-view][data-session-id="${a}"]`).waitFor();
    await page.locator("[data-testid=thread-item]").first().waitFor();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) >= 30);
    // Both clients are listed (global presence), b is publishing all the while...
    await page.locator(`[data-testid=client-card][data-session-id="${b}"]`).waitFor();
    const messages = messagesOf(frames);
    const of = (id) => messages.filter((m) => m.channel === `sessions/${id}`);
    // ...and not one publication of b's channel reached this page.
    assert.ok(of(a).length >= 30, `a's traffic arrived: ${of(a).length}`);
    assert.equal(of(b).length, 0, "nothing of b");
    assert.ok(!messages.some((m) => m.type === "ack" && m.channel === "sessions/*"), "never subscribed to sessions/*");
    await view(page, "follow-01-one-session");

    // Unticking follow mode subscribes to every session: b's traffic comes.
    const bArrives = received((m) => m.channel === `sessions/${b}`);
    // (A click, not `uncheck()`: the box reflects the URL, which changes a moment later.)
    await page.getByTestId("follow-selected").click();
    await page.waitForURL((u) => !u.searchParams.has("follow"));
    await page.waitForFunction(() => document.querySelector("[data-testid=follow-selected]")?.checked === false);
    await bArrives;
    await page.close();
  });
});
