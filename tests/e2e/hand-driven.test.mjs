// Dashboard behaviours that need a quiet relay: only hand-driven SDKs (plain WebSockets speaking the protocol's
// JSON), no demo traffic, so the tests can count renders, requests and errors exactly. Each test opens its own
// page (and its own session ids) of the dashboard the relay serves, with one relay and one browser.
// Run with scripts/test-e2e.sh.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertAccessible, view } from "./a11y.mjs";
import { launchBrowser, PATIENCE_MS, relayStats, startRelay, withTimeout } from "./harness.mjs";

/** A minimal SDK: handshake, snapshots and events on demand; counts the relay's `request_snapshot`s. */
class Sdk {
  static async connect(url, sessionId) {
    const ws = new WebSocket(url);
    await withTimeout(
      new Promise((ok, fail) => {
        ws.onopen = ok;
        ws.onerror = () => fail(new Error(`sdk ${sessionId}: socket error`));
      }),
      `sdk ${sessionId}: open`,
    );
    const sdk = new Sdk(ws, sessionId);
    const ack = sdk.next("handshake_ack");
    sdk.send({ type: "handshake", protocolVersion: 1, sdkVersion: "e2e/1.0", projectId: "proj_e2e", sessionId });
    await ack;
    return sdk;
  }

  constructor(ws, sessionId) {
    this.ws = ws;
    this.sessionId = sessionId;
    this.seq = 0;
    /** `request_snapshot`s received. */
    this.requests = 0;
    /** Called for each `request_snapshot` (default: answer with `this.snapshotBody`). */
    this.onRequest = () => this.snapshot();
    this.errors = [];
    this.waiters = [];
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "request_snapshot") {
        this.requests++;
        this.onRequest?.();
      }
      this.waiters = this.waiters.filter((w) => !(w.pred(m, this) && (w.ok(m), true)));
    };
  }

  send(message) {
    this.ws.send(JSON.stringify(message));
  }

  /** The next message of `type` (or any, with a predicate over message and sdk). */
  next(type, pred = () => true) {
    return withTimeout(
      new Promise((ok) => this.waiters.push({ pred: (m, s) => m.type === type && pred(m, s), ok })),
      `sdk ${this.sessionId}: waiting for ${type}`,
    );
  }

  /** Resolves once `n` snapshot requests have arrived in total. */
  requested(n) {
    if (this.requests >= n) return Promise.resolve();
    return this.next("request_snapshot", (_, s) => s.requests >= n);
  }

  snapshot(extra = {}) {
    this.send({
      type: "state_snapshot",
      sessionId: this.sessionId,
      timestamp: Date.now(),
      threads: [
        {
          id: "thr_1",
          name: "Weather",
          status: "complete",
          createdAt: Date.now() - 60_000,
          messages: [{ id: "m1", role: "user", createdAt: Date.now() - 60_000, content: [{ type: "text", text: "Hi" }] }],
        },
      ],
      registry: { components: [], tools: [{ name: "get_weather", description: "Weather by city" }] },
      errors: this.errors,
      ...extra,
    });
  }

  event(event) {
    this.seq++;
    this.send({ type: "stream_event", sessionId: this.sessionId, timestamp: Date.now(), threadId: "thr_1", seq: this.seq, event });
  }

  close() {
    this.ws.close();
  }
}

describe("dashboard against hand-driven SDKs", () => {
  let relay, browser;
  const sdks = [];
  /** Uncaught exceptions and unhandled rejections of every page: any one fails the test that caused it. */
  const pageErrors = [];

  before(async () => {
    [relay, browser] = await Promise.all([startRelay(), launchBrowser()]);
  });

  after(async () => {
    for (const s of sdks) s.close();
    await browser?.close();
    await relay?.stop();
  });

  async function sdk(sessionId) {
    const s = await Sdk.connect(relay.url, sessionId);
    sdks.push(s);
    return s;
  }

  async function open(query) {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.setDefaultTimeout(PATIENCE_MS);
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.addInitScript(() =>
      window.addEventListener("unhandledrejection", (e) => {
        throw new Error(`unhandled rejection: ${e.reason}`);
      }),
    );
    await page.goto(relay.open(`${query}`));
    return page;
  }

  const card = (page, id) => page.locator(`[data-testid=client-card][data-session-id="${CSS.escape(id)}"]`);
  const counts = (page) => page.evaluate(() => ({ ...window.__devrelayRenders }));
  // The dashboard speaks v2: its snapshot requests are `request_snapshot` messages (seed 000's are
  // `request_client_snapshot`); the relay counts inbound messages by type.
  const requestsSeen = async () => (await relayStats(relay)).in.request_snapshot?.messages ?? 0;

  // `CSS.escape` for Node (ids here are plain, but __proto__ & co. must not become selectors' syntax).
  const CSS = { escape: (s) => s.replace(/["\\]/g, "\\$&") };

  test("the clock re-renders only the relative times; threads are derived once per snapshot", async () => {
    const quiet = await sdk("quiet-1");
    const other = await sdk("quiet-2");
    other.snapshot();
    const page = await open("clientId=quiet-1&debugRenders");
    await page.locator("[data-testid=thread-item][data-thread-id=thr_1]").waitFor();
    await card(page, "quiet-2").waitFor();
    // Settled: everything the page does after opening (snapshot, client list, URL) has happened by one tick later.
    const first = await counts(page);
    await page.waitForFunction((t) => window.__devrelayRenders.clockTick > t, first.clockTick ?? 0);
    const c0 = await counts(page);

    // Three ticks of the clock, no traffic at all.
    await page.waitForFunction((t) => window.__devrelayRenders.clockTick >= t + 3, c0.clockTick);
    const c1 = await counts(page);
    for (const name of [
      "Dashboard",
      "StatusPill",
      "ClientList",
      "ClientCard:quiet-1",
      "ClientCard:quiet-2",
      "ClientView",
      "ThreadsPanel",
      "Timeline",
    ]) {
      assert.ok(c0[name] > 0, `${name} is instrumented (rendered ${c0[name]} times before)`);
      assert.equal(c1[name], c0[name], `${name} did not re-render while only the clock ticked`);
    }
    assert.ok(c1.Ago > c0.Ago, `the relative times did tick (${c0.Ago} -> ${c1.Ago} renders)`);
    assert.equal(c1.threadsOf, c0.threadsOf, "no thread derivation while only the clock ticked");

    // Events of quiet-1 re-render its view and its card, never quiet-2's card, the threads, or the threads'
    // derivation (the snapshot did not change).
    for (let i = 1; i <= 5; i++) {
      quiet.event({ type: "TEXT_MESSAGE_CONTENT", messageId: "m2", delta: `part ${i}` });
      await page.waitForFunction((n) => Number(document.querySelector("[data-testid=timeline-count]").textContent) === n, i);
    }
    const c2 = await counts(page);
    assert.ok(c2.Timeline > c1.Timeline && c2["ClientCard:quiet-1"] > c1["ClientCard:quiet-1"], "the events did render");
    assert.equal(c2["ClientCard:quiet-2"], c1["ClientCard:quiet-2"], "another client's card is not re-rendered");
    assert.equal(c2.ThreadsPanel, c1.ThreadsPanel, "the threads are not re-rendered for events");
    assert.equal(c2.threadsOf, c1.threadsOf, "threads are not re-derived for events");
    // A new snapshot is derived once (for the view and both cards together).
    quiet.snapshot({ threads: [] });
    await page.getByText("No threads yet").waitFor();
    const c3 = await counts(page);
    assert.equal(c3.threadsOf, c2.threadsOf + 1, "one derivation per new snapshot");
    await page.close();
  });

  test("opening a client sends one snapshot request", async () => {
    const a = await sdk("one-a");
    const b = await sdk("one-b");
    // one-a answers only when told: meanwhile the page sees other clients come and go.
    a.onRequest = null;
    const r0 = await requestsSeen();
    const page = await open("clientId=one-a");
    await a.requested(1);
    await page.locator('[data-testid=client-view][data-session-id="one-a"]').waitFor();
    const c = await sdk("one-c");
    await card(page, "one-c").waitFor();
    c.close();
    await card(page, "one-c").and(page.locator("[data-state=disconnected]")).waitFor();
    a.snapshot();
    await page.locator("[data-testid=thread-item][data-thread-id=thr_1]").waitFor();
    // Barrier: an explicit request, sent after anything automatic on the same socket and delivered in order.
    await page.getByTestId("request-snapshot").click();
    await a.requested(2);
    assert.equal(a.requests, 2, "one automatic request when the client opened, one from the button");
    assert.equal((await requestsSeen()) - r0, 2, "the relay received exactly those two");

    // Choosing another client asks for its snapshot once too.
    await card(page, "one-b").getByTestId("client-card-select").click();
    await page.locator('[data-testid=client-view][data-session-id="one-b"] [data-testid=thread-item]').first().waitFor();
    await page.getByTestId("request-snapshot").click();
    await b.requested(2);
    assert.equal(b.requests, 2);
    assert.equal((await requestsSeen()) - r0, 4);
    await page.close();
  });

  test("dismissed errors are hidden by identity, so a rolling error list still shows new ones", async () => {
    const s = await sdk("errs");
    const error = (n) => ({ message: `error ${n}`, timestamp: 1_000 + n, threadId: "thr_1" });
    s.errors = [error(1), error(2), error(3)];
    const page = await open("clientId=errs");
    const banner = page.getByTestId("error-banner");
    await banner.waitFor();
    assert.match(await banner.innerText(), /3 errors reported by the app/);
    await view(page, "07-error-banner");
    await page.getByTestId("dismiss-errors").click();
    await banner.waitFor({ state: "detached" });

    // The SDK keeps its last three: error 1 drops off, error 4 comes in. Only error 4 is new.
    s.errors = [error(2), error(3), error(4)];
    s.snapshot();
    await banner.waitFor();
    assert.match(await banner.innerText(), /^1 error reported by the app/);
    const items = await page.getByTestId("error-item").allInnerTexts();
    assert.equal(items.length, 1, `only the new error: ${items}`);
    assert.match(items[0], /error 4/);
    // The same errors in a newer snapshot: still only error 4.
    s.snapshot();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=error-item]").length === 1);
    await page.getByTestId("dismiss-errors").click();
    await banner.waitFor({ state: "detached" });
    s.errors = [error(3), error(4), error(5)];
    s.snapshot();
    await banner.waitFor();
    assert.match(await banner.innerText(), /^1 error reported by the app[\s\S]*error 5/);
    await page.close();
  });

  test("a client card's forget button is its own control: Enter on it forgets without selecting", async () => {
    const ghost = await sdk("ghost-a");
    await sdk("ghost-b");
    const page = await open("clientId=ghost-b");
    await page.locator('[data-testid=client-view][data-session-id="ghost-b"]').waitFor();
    assert.equal(await card(page, "ghost-b").getByTestId("client-card-select").getAttribute("aria-current"), "true");
    ghost.close();
    await card(page, "ghost-a").and(page.locator("[data-state=disconnected]")).waitFor();
    await view(page, "08-disconnected-card");

    const forget = card(page, "ghost-a").getByTestId("client-forget");
    assert.equal(await forget.getAttribute("aria-label"), "Forget ghost-a");
    await forget.focus();
    await page.keyboard.press("Enter");
    await card(page, "ghost-a").waitFor({ state: "detached" });
    assert.equal(new URL(page.url()).searchParams.get("clientId"), "ghost-b", "the forgotten client was not selected");
    await page.locator('[data-testid=client-view][data-session-id="ghost-b"]').waitFor();
    // And Enter on a card's select button selects it (keyboard, no mouse).
    const c = await sdk("ghost-c");
    await card(page, "ghost-c").getByTestId("client-card-select").focus();
    await page.keyboard.press("Enter");
    await page.waitForURL((u) => u.searchParams.get("clientId") === "ghost-c");
    c.close();
    await page.close();
  });

  test("tabs follow the ARIA tabs pattern; the connection pill is a status region", async () => {
    await sdk("tabs-1");
    const page = await open("clientId=tabs-1");
    await page.locator("[data-testid=thread-item]").first().waitFor();
    assert.equal(await page.getByTestId("connection-status").getAttribute("role"), "status");

    const state = () =>
      page.evaluate(() => {
        const tabs = [...document.querySelectorAll('[role=tablist] [role=tab]')];
        return tabs.map((t) => {
          const panel = document.getElementById(t.getAttribute("aria-controls"));
          return {
            tab: t.dataset.tab,
            selected: t.getAttribute("aria-selected") === "true",
            focused: document.activeElement === t,
            tabIndex: t.tabIndex,
            panelRole: panel?.getAttribute("role") ?? null,
            panelLabelledBy: panel?.getAttribute("aria-labelledby") === t.id,
            panelVisible: panel !== null && !panel.hidden,
          };
        });
      });
    const expectSelected = async (name, focused) => {
      const tabs = await state();
      for (const t of tabs) {
        const on = t.tab === name;
        assert.deepEqual(
          t,
          { tab: t.tab, selected: on, focused: focused && on, tabIndex: on ? 0 : -1, panelRole: "tabpanel", panelLabelledBy: true, panelVisible: on },
          `after selecting ${name}: ${JSON.stringify(tabs)}`,
        );
      }
    };
    await expectSelected("threads", false);
    await page.getByTestId("tab-threads").focus();
    await page.keyboard.press("ArrowRight");
    await expectSelected("registry", true);
    await page.getByTestId("registry-tool").first().waitFor();
    await page.keyboard.press("ArrowRight"); // wraps
    await expectSelected("threads", true);
    await page.keyboard.press("End");
    await expectSelected("registry", true);
    await page.keyboard.press("Home");
    await expectSelected("threads", true);
    await page.keyboard.press("ArrowLeft"); // wraps
    await expectSelected("registry", true);
    await view(page, "09-registry-by-keyboard");
    await page.close();
  });

  test("the timeline's aria-activedescendant only ever names a row that is rendered", async () => {
    const s = await sdk("many");
    const page = await open("clientId=many");
    // (Subscribed once the view is up: events sent before would not reach this page.)
    await page.locator("[data-testid=thread-item]").first().waitFor();
    for (let i = 0; i < 400; i++) s.event({ type: i % 2 ? "TEXT_MESSAGE_CONTENT" : "TOOL_CALL_ARGS", messageId: "m", delta: `${i}` });
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) === 400);
    const scroller = page.getByTestId("timeline-scroller");
    const active = () => scroller.evaluate((el) => {
      const id = el.getAttribute("aria-activedescendant");
      return { id, exists: id === null || document.getElementById(id) !== null };
    });
    await scroller.focus();
    await page.keyboard.press("ArrowUp"); // the newest event
    await page.getByTestId("event-detail").waitFor();
    const selected = await active();
    assert.ok(selected.id !== null && selected.exists, `names the selected row: ${JSON.stringify(selected)}`);

    // Scrolled far away, the virtualizer drops the row: the attribute must not point at nothing.
    await scroller.evaluate((el) => el.scrollTo(0, 0));
    await page.waitForFunction((id) => document.getElementById(id) === null, selected.id);
    const away = await active();
    assert.ok(away.exists, `after scrolling away: ${JSON.stringify(away)}`);
    assert.equal(away.id, null);
    await assertAccessible(page, "timeline scrolled away from its selection");
    // The keyboard brings the selection back into view, and names it again.
    await page.keyboard.press("ArrowUp");
    await page.waitForFunction(() => {
      const el = document.querySelector("[data-testid=timeline-scroller]");
      const id = el.getAttribute("aria-activedescendant");
      return id !== null && document.getElementById(id) !== null;
    });
    // Filtered out (its category hidden): not named either.
    const category = await page.evaluate(() => {
      const id = document.querySelector("[data-testid=timeline-scroller]").getAttribute("aria-activedescendant");
      return document.getElementById(id).dataset.category;
    });
    await page.locator(`.category-chips .chip.cat-${category}`).click();
    const filtered = await active();
    assert.ok(filtered.exists && filtered.id === null, `after hiding ${category}: ${JSON.stringify(filtered)}`);
    await page.close();
  });

  test("invalid options are shown on the page, naming the option and the page parameter", async () => {
    const errorsBefore = pageErrors.length;
    for (const [query, field, param, received] of [
      ["buffer=-5", "eventCapacity", "buffer", "-5"],
      ["buffer=2.5", "eventCapacity", "buffer", "2.5"],
      ["buffer=lots", "eventCapacity", "buffer", "NaN"],
      ["relay=not%20a%20url", "url", "relay", '"not a url"'],
    ]) {
      const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
      page.setDefaultTimeout(PATIENCE_MS);
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      await page.goto(relay.open(`${query}`));
      const problem = page.locator(`[data-testid=options-error][data-field="${field}"]`);
      await problem.waitFor();
      const text = await problem.innerText();
      assert.ok(text.includes(`?${param}=`) && text.includes(field) && text.includes(received), `${query}: ${text}`);
      assert.equal(await page.getByTestId("connection-status").getAttribute("data-state"), "closed");
      assert.match(await page.getByTestId("connection-status").innerText(), new RegExp(`invalid DevtoolsConnection option \`${field}\``));
      if (query === "buffer=-5") await view(page, "10-invalid-options");
      await page.close();
    }
    assert.deepEqual(pageErrors.slice(errorsBefore), [], "no uncaught exception or unhandled rejection");
  });

  test("a ?clientId= nobody has: the page waits for it", async () => {
    const page = await open("clientId=nobody-yet");
    await page.locator("[data-testid=client-gone][data-state=unknown]").getByText("Waiting for").waitFor();
    await view(page, "11-waiting-for-a-client");
    const s = await sdk("nobody-yet");
    await page.locator('[data-testid=client-view][data-session-id="nobody-yet"] [data-testid=thread-item]').first().waitFor();
    assert.equal(s.requests, 1);
    await page.close();
  });

  test("session ids named like Object members are ordinary clients", async () => {
    const ctor = await sdk("constructor");
    ctor.onRequest = null; // never answers: the view must say "no snapshot yet", not find an inherited one
    const proto = await sdk("__proto__");
    const page = await open("clientId=constructor");
    const view1 = page.locator('[data-testid=client-view][data-session-id="constructor"]');
    await view1.waitFor();
    await ctor.requested(1);
    assert.equal(await page.getByTestId("snapshot-age").innerText(), "no snapshot yet");
    await view1.getByText("Waiting for this client's first snapshot").first().waitFor();
    await card(page, "__proto__").getByTestId("client-card-select").click();
    await page.locator('[data-testid=client-view][data-session-id="__proto__"] [data-testid=thread-item]').first().waitFor();
    assert.match(await card(page, "__proto__").innerText(), /1 threads/);
    assert.equal(proto.requests, 1);
    await page.close();
    assert.deepEqual(pageErrors, []);
  });
});
