// The dashboard end to end: the relay binary alone (serving the dashboard it embeds), the real demo SDK,
// headless Chromium. Run with scripts/test-e2e.sh (it builds the wasm package, the dashboard, then the relay).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  demoSessionIds,
  FOREIGN_HOST,
  launchBrowser,
  PATIENCE_MS,
  ROOT,
  relayStats,
  startDemo,
  startRelay,
  withTimeout,
} from "./harness.mjs";
import { view } from "./a11y.mjs";

const SEED = 7;
const SESSIONS = 2;
const IDS = demoSessionIds(SEED, SESSIONS);

/** Installs `window.__open(url)` in a page: a WebSocket (resolved once open) with `next()` (the next message, a
 * batch unpacked), `all` (every message received, in order), `closed` (the close code), `ask(msg)` (sends a v2
 * request and resolves with "ack" or the error code answering its id) and `reply(msg)` (sends a seed-000 message
 * and resolves with the next message: its type, or its code if an error). */
function installSockets() {
  window.__open = (u) =>
    new Promise((ok, fail) => {
      const ws = new WebSocket(u);
      const queue = [];
      let waiting = null;
      ws.all = [];
      ws.onmessage = (e) => {
        for (const m of [JSON.parse(e.data)].flat()) {
          ws.all.push(m);
          if (waiting) {
            const w = waiting;
            waiting = null;
            w(m);
          } else queue.push(m);
        }
      };
      ws.closed = new Promise((done) => (ws.onclose = (e) => done(e.code)));
      ws.next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((w) => (waiting = w)));
      ws.until = async (pred) => {
        for (;;) {
          const m = await ws.next();
          if (pred(m)) return m;
        }
      };
      ws.ask = async (msg) => {
        ws.send(JSON.stringify(msg));
        for (;;) {
          const m = await ws.next();
          if (m.id === msg.id && (m.type === "ack" || m.type === "error")) return m.type === "ack" ? "ack" : m.code;
          if (m.type === "error" && m.id === undefined && msg.id === undefined) return m.code;
        }
      };
      ws.reply = async (msg) => {
        ws.send(JSON.stringify(msg));
        const m = await ws.next();
        return m.type === "error" ? m.code : m.type;
      };
      ws.onopen = () => ok(ws);
      ws.onerror = () => fail(new Error(`socket ${u} failed`));
    });
}

describe("devrelay dashboard", () => {
  let relay, demo, browser, page;
  // What the first page load fetched from the relay, and the WebSocket URLs the page opened.
  const loaded = [];
  const sockets = [];
  /** The client the dashboard selected by itself (the first to connect). */
  let selected;
  // Frames the page sends on its WebSocket, and waiters for a frame matching a predicate.
  const sentWaiters = [];
  const frameSent = (pred) =>
    withTimeout(new Promise((ok) => sentWaiters.push({ pred, ok })), "a frame sent by the dashboard");

  before(async () => {
    [relay, browser] = await Promise.all([startRelay(), launchBrowser()]);
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    page = await context.newPage();
    page.setDefaultTimeout(PATIENCE_MS);
    page.on("pageerror", (e) => console.error("page error:", e));
    page.on("response", (r) => loaded.push(r));
    page.on("websocket", (ws) => {
      sockets.push(ws.url());
      ws.on("framesent", (f) => {
        const text = String(f.payload);
        for (const w of sentWaiters.splice(0)) {
          if (w.pred(text)) w.ok(text);
          else sentWaiters.push(w);
        }
      });
    });
    // The relay's own address, no ?relay=: the page connects back to where it came from.
    // A page-lifetime marker: if the page reloaded, it would be gone.
    await page.goto(relay.open());
    await page.evaluate(() => {
      window.__devrelayPageId = "first-load";
    });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([demo?.stop(), relay?.stop()]);
  });

  const status = () => page.getByTestId("connection-status");
  const card = (id) => page.locator(`[data-testid=client-card][data-session-id="${id}"]`);
  const liveCards = () => page.locator("[data-testid=client-card][data-state=live]");

  test("the relay serves the dashboard itself, and the page connects back to it", async () => {
    await page.locator("[data-testid=connection-status][data-state=open]").waitFor();
    // The only server is the relay: the page, its scripts, styles and wasm all came from it, and its WebSocket
    // went to the same origin.
    assert.deepEqual(
      sockets.map((u) => u.replace(/\/$/, "")),
      [relay.url],
      "one WebSocket, to the relay that served the page (the token is not in its URL)",
    );
    // The token came in the page's fragment, went into the first message, and left the address bar.
    assert.ok(relay.token, "the relay printed a token");
    assert.equal(new URL(page.url()).hash, "", "the fragment is gone from the address bar");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("devrelay.token")), relay.token);
    assert.ok(loaded.length >= 5, `the page loaded its assets: ${loaded.map((r) => r.url())}`);
    for (const r of loaded) {
      assert.ok(r.url().startsWith(relay.page), `from the relay: ${r.url()}`);
      assert.ok(r.ok(), `${r.status()} ${r.url()}`);
    }
    const wasm = loaded.find((r) => r.url().endsWith(".wasm"));
    assert.ok(wasm, "the client's wasm came from the relay");
    assert.equal(wasm.headers()["content-type"], "application/wasm");
    assert.match(wasm.headers()["content-encoding"] ?? "", /^(br|gzip)$/, "precompressed wasm");

    // The page and its hashed assets, by hand: types, cache policy, and every encoding decoding to the same bytes.
    const html = await fetch(relay.page);
    assert.equal(html.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(html.headers.get("cache-control"), "no-cache");
    const text = await html.text();
    const scripts = [...text.matchAll(/src="(\/_next\/static\/[^"]+\.js)"/g)].map((m) => m[1]);
    assert.ok(scripts.length >= 2, `the page references its chunks: ${scripts}`);
    const twins = { br: 0, gzip: 0 };
    for (const path of scripts) {
      const url = new URL(path, relay.page);
      const bodies = {};
      for (const accept of ["identity", "br", "gzip"]) {
        const res = await fetch(url, { headers: { "accept-encoding": accept } });
        assert.equal(res.status, 200, `${path} (${accept})`);
        assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
        assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
        const encoding = res.headers.get("content-encoding") ?? "identity";
        bodies[accept] = await res.text(); // fetch decodes br and gzip
        if (accept === "identity") {
          assert.equal(encoding, "identity", path);
        } else if (encoding !== "identity") {
          assert.equal(encoding, accept, path);
          twins[accept]++;
          assert.equal(bodies[accept], bodies.identity, `${path}: the ${accept} twin decodes to the file`);
        } else {
          // www/precompress.mjs leaves out only files too small to gain from it.
          assert.ok(Buffer.byteLength(bodies[accept]) < 512, `${path} (${bodies[accept].length} B) has a ${accept} twin`);
        }
      }
    }
    assert.ok(twins.br > 0 && twins.gzip > 0, `precompressed chunks served: ${JSON.stringify(twins)}`);
    // Client-side routes get the page; API paths keep their 404s.
    const route = await fetch(new URL("/sessions/some-client", relay.page));
    assert.equal(route.status, 200);
    assert.equal(await route.text(), text);
    assert.equal((await fetch(new URL("/api/nothing", relay.page))).status, 404);
  });

  test("with no client connected, the empty state teaches how to connect one", async () => {
    await page.locator("[data-testid=connection-status][data-state=open]").waitFor();
    const empty = page.locator("[data-testid=empty-state][data-reason=no-clients]");
    await empty.waitFor();
    const text = await empty.innerText();
    // The relay it names is the one that served the page.
    assert.ok(text.includes(`npx devrelay demo --url ${relay.url} `), text);
    assert.ok(text.includes(`cargo run --release -p devrelay -- demo --url ${relay.url}`), text);
    assert.match(text, /"handshake"/);
    await view(page, "01-empty-state");
  });

  test("the demo client appears, its timeline fills, a thread shows its messages, the registry shows", async () => {
    demo = startDemo(relay.url, { sessions: SESSIONS, rate: 12, seed: SEED });
    for (const id of IDS) await card(id).and(page.locator("[data-state=live]")).waitFor();
    // The first client to connect is selected and put in the URL.
    await page.waitForURL((u) => IDS.includes(u.searchParams.get("clientId")));
    selected = new URL(page.url()).searchParams.get("clientId");
    await page.locator(`[data-testid=client-view][data-session-id="${selected}"]`).waitFor();
    const cardText = await card(selected).innerText();
    assert.match(cardText, /devrelay-demo\/\d+\.\d+\.\d+/);
    assert.match(cardText, /proj_demo/);

    // The timeline fills with categorised rows.
    await page.waitForFunction(
      () => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) >= 40,
    );
    const categories = await page
      .locator("[data-testid=timeline-row]")
      .evaluateAll((rows) => [...new Set(rows.map((r) => r.dataset.category))]);
    assert.ok(categories.length >= 2, `several categories on screen: ${categories}`);
    const rowCount = await page.locator("[data-testid=timeline-row]").count();
    const total = Number(await page.getByTestId("timeline-count").innerText());
    assert.ok(rowCount <= 80, `virtualized: ${rowCount} rows in the DOM for ${total} events`);

    // Threads: the history has at least three; selecting one shows its messages and their content blocks.
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=thread-item]").length >= 3);
    // (Addressed by id: the list is newest first, so a thread started meanwhile would shift positions.)
    const threadId = await page.getByTestId("thread-item").first().getAttribute("data-thread-id");
    const thread = page.locator(`[data-testid=thread-item][data-thread-id="${threadId}"]`);
    const threadName = await thread.locator(".thread-name").innerText();
    await thread.click();
    await page.locator("[data-testid=messages] [data-testid=message]").first().waitFor();
    assert.equal(await page.locator(".thread-head h3").innerText(), threadName);
    const roles = await page.getByTestId("message").evaluateAll((ms) => ms.map((m) => m.dataset.role));
    assert.equal(roles[0], "user", `a thread starts with the user's message: ${roles}`);
    const blockTypes = await page
      .locator("[data-testid=messages] [data-block-type]")
      .evaluateAll((bs) => [...new Set(bs.map((b) => b.dataset.blockType))]);
    assert.ok(blockTypes.includes("text"), `blocks: ${blockTypes}`);

    // Click an event: the detail pane shows its JSON tree.
    await page.getByTestId("timeline-row").first().click();
    await page.locator("[data-testid=event-detail] [data-testid=json-tree]").waitFor();
    await view(page, "02-threads-and-timeline");

    // Filters. Search (debounced): thread ids never occur in message text, so searching one leaves exactly the
    // threads whose id contains it; a search nothing matches says so.
    const search = page.getByTestId("thread-search");
    await search.fill(threadId);
    await page.waitForFunction((id) => {
      const ids = [...document.querySelectorAll("[data-testid=thread-item]")].map((i) => i.dataset.threadId);
      return ids.includes(id) && ids.every((i) => i.includes(id));
    }, threadId);
    await search.fill("no thread says zqxj");
    await page.getByText("No thread matches these filters.").waitFor();
    await search.fill("");
    // Status: only threads in that status remain.
    const statuses = await page.getByTestId("filter-status").locator("option").evaluateAll((os) =>
      os.map((o) => o.value).filter(Boolean),
    );
    await page.getByTestId("filter-status").selectOption(statuses[0]);
    await page.waitForFunction((st) => {
      const items = [...document.querySelectorAll("[data-testid=thread-item]")];
      return items.length > 0 && items.every((i) => i.querySelector(".badge").textContent === st);
    }, statuses[0]);
    await page.getByTestId("filter-status").selectOption("");
    // Role + content type: in the open thread (which starts with the user's text), exactly the messages that
    // match stay highlighted; the others are dimmed.
    await page.getByTestId("filter-role").selectOption("user");
    await page.getByTestId("filter-content").selectOption("text");
    await page.waitForFunction(() => {
      const ms = [...document.querySelectorAll("[data-testid=messages] [data-testid=message]")];
      const matches = (m) => m.dataset.role === "user" && m.querySelector(":scope > [data-block-type=text]") !== null;
      return ms.some(matches) && ms.every((m) => matches(m) === !m.classList.contains("dimmed"));
    });
    await page.getByTestId("filter-role").selectOption("");
    await page.getByTestId("filter-content").selectOption("");

    // Request snapshot sends the command for this client (v2: `request_snapshot` with a request id).
    const request = frameSent((f) => f.includes('"request_snapshot"'));
    await page.getByTestId("request-snapshot").click();
    const sent = JSON.parse(await request);
    assert.deepEqual({ ...sent, id: typeof sent.id }, { type: "request_snapshot", sessionId: selected, id: "number" });

    // Registry: the demo app's tools (with schemas), components and MCP servers.
    await page.getByTestId("tab-registry").click();
    await page.getByTestId("registry").waitFor();
    assert.equal(await page.getByTestId("registry-tool").count(), 5);
    assert.equal(await page.getByTestId("registry-component").count(), 4);
    assert.equal(await page.getByTestId("mcp-server").count(), 3);
    const weather = page.locator("[data-testid=registry-tool][data-name=get_weather]");
    assert.match(await weather.innerText(), /city\s*\*?\s*string/);
    await weather.locator("summary").click();
    await weather.locator("[data-testid=json-tree]").waitFor();
    await view(page, "02b-registry");
    await page.getByTestId("tab-threads").click();
  });

  test("every content block type renders, with the snapshot's errors, streaming state and registry", async () => {
    // A hand-driven SDK sending the golden fixture snapshot (all five block types, errors, a streaming thread),
    // plus one block of a type from the future, which must still show (as raw JSON).
    const snapshot = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/state_snapshot.json"), "utf8"));
    snapshot.sessionId = "sess-fixture";
    snapshot.threads[0].messages[3].content.push({ type: "audio", uri: "file:///answer.ogg", seconds: 3 });
    const sdk = new WebSocket(relay.url);
    const answered = new Promise((ok) => {
      sdk.onmessage = (e) => {
        if (JSON.parse(e.data).type === "request_snapshot") {
          sdk.send(JSON.stringify(snapshot));
          ok();
        }
      };
    });
    await new Promise((ok, fail) => {
      sdk.onopen = ok;
      sdk.onerror = fail;
    });
    sdk.send(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "1.4.2", sessionId: "sess-fixture" }));
    try {
      const other = await page.context().newPage();
      other.setDefaultTimeout(PATIENCE_MS);
      // The snapshot is only sent when asked: the dashboard asks when it opens a client it has none for.
      await other.goto(relay.open(`clientId=sess-fixture`));
      await withTimeout(answered, "the dashboard's request for a snapshot");
      await other.locator("[data-testid=thread-item][data-thread-id=thr_1]").click();
      await other.locator("[data-testid=messages] [data-testid=message]").first().waitFor();
      const types = await other
        .locator("[data-testid=messages] [data-block-type]")
        .evaluateAll((bs) => [...new Set(bs.map((b) => b.dataset.blockType))].sort());
      assert.deepEqual(types, ["audio", "component", "resource", "text", "tool_result", "tool_use"]);
      const messages = other.getByTestId("messages");
      const text = await messages.innerText();
      for (const expected of [
        "What's the weather in Lisbon?", // text
        "get_weather", // tool_use name, with its input as a JSON tree
        "for call_1", // tool_result, linked to its call
        "21°C, sunny", // the result's nested text block
        "<WeatherCard />", // component, with its props
        "file:///forecast.json", // resource uri
        "application/json", // and its MIME type
        "answer.ogg", // the unknown block, as JSON
      ]) {
        assert.ok(text.includes(expected), `message view shows ${expected}`);
      }
      assert.equal(await other.getByTestId("streaming-badge").innerText(), "streaming");
      assert.match(await other.getByTestId("error-banner").innerText(), /Component WeatherMap failed to render/);
      await other.getByTestId("tab-registry").click();
      assert.equal(await other.locator("[data-testid=registry-component][data-name=WeatherCard]").count(), 1);
      assert.equal(await other.locator("[data-testid=registry-tool][data-name=get_weather]").count(), 1);
      assert.match(await other.getByTestId("mcp-server").innerText(), /filesystem\s+stdio:\/\/mcp-fs\s+connected/);
      // Back on the threads tab, the thread is still open.
      await other.getByTestId("tab-threads").click();
      await other.locator("[data-testid=messages] [data-testid=message]").first().waitFor();
      await view(other, "02c-every-content-type");
      await other.close();
    } finally {
      sdk.close();
    }
  });

  test("the timeline follows new events, pauses when scrolled up, jumps to latest, clears, counts drops", async () => {
    const count = async () => Number(await page.getByTestId("timeline-count").innerText());
    const scroller = page.getByTestId("timeline-scroller");
    // Whether the timeline shows its newest row (and, with `n`, has more than `n` events).
    const followingPast = (n) => {
      const el = document.querySelector("[data-testid=timeline-scroller]");
      const total = Number(document.querySelector("[data-testid=timeline-count]").textContent);
      return total > n && el.scrollHeight - el.scrollTop - el.clientHeight < 30;
    };
    // Start from "following" (the previous test clicked an old row, which pauses auto-scroll).
    if (await page.getByTestId("jump-to-latest").isVisible()) await page.getByTestId("jump-to-latest").click();
    let seen = await count();
    await page.waitForFunction(followingPast, seen);

    // Scrolled to the top, it stays there while events keep coming, and offers a jump with the number of new ones.
    await scroller.evaluate((el) => el.scrollTo(0, 0));
    await page.getByTestId("jump-to-latest").waitFor();
    await page.waitForFunction(() => / \(\d+ new\)/.test(document.querySelector("[data-testid=jump-to-latest]").textContent));
    assert.equal(await scroller.evaluate((el) => el.scrollTop), 0, "no auto-scroll while paused");
    await page.getByTestId("jump-to-latest").click();
    await page.getByTestId("jump-to-latest").waitFor({ state: "detached" });
    assert.ok(await page.evaluate(followingPast, 0), "back at the newest event");

    // Opening an event's details keeps the timeline live and following.
    // (A plain DOM click: Playwright's click() scrolls its target back into view when a new row has moved it,
    // and any scroll up rightly pauses following.)
    const rendered = await page.getByTestId("timeline-row").count();
    await page.getByTestId("timeline-row").nth(rendered - 4).dispatchEvent("click");
    await page.locator("[data-testid=event-detail] [data-testid=json-tree]").waitFor();
    await page.waitForFunction(followingPast, await count());
    await view(page, "03-live-overview");
    // Keyboard: ↑ selects the previous event, Esc closes the details.
    const seqOf = async () => (await page.getByTestId("event-detail").innerText()).match(/seq (\d+)/)[1];
    const before = Number(await seqOf());
    await page.getByTestId("timeline-scroller").focus();
    await page.keyboard.press("ArrowUp");
    await page.waitForFunction(
      (b) => Number(document.querySelector("[data-testid=event-detail]").textContent.match(/seq (\d+)/)[1]) < b,
      before,
    );
    await page.keyboard.press("Escape");
    await page.getByTestId("event-detail").waitFor({ state: "detached" });

    // Clear empties this client's timeline (and it refills with new events).
    seen = await count();
    await page.getByTestId("timeline-clear").click();
    await page.waitForFunction((n) => Number(document.querySelector("[data-testid=timeline-count]").textContent) < n, seen);
    assert.ok((await count()) < Math.min(seen, 20));

    // With a small buffer (?buffer=30) old events are dropped, and the dashboard says how many.
    const small = await page.context().newPage();
    small.setDefaultTimeout(PATIENCE_MS);
    await small.goto(relay.open(`clientId=${selected}&buffer=30`));
    await small.getByTestId("dropped-count").waitFor();
    assert.match(await small.getByTestId("dropped-count").innerText(), /^\d+ dropped$/);
    assert.ok(Number(await small.getByTestId("timeline-count").innerText()) <= 30);
    await small.close();
  });

  test("thousands of events stay virtualized", async () => {
    const [fastId] = demoSessionIds(99, 1);
    const fast = startDemo(relay.url, { sessions: 1, rate: 600, seed: 99 });
    const other = await page.context().newPage();
    other.setDefaultTimeout(PATIENCE_MS);
    try {
      await other.goto(relay.open(`clientId=${fastId}`));
      await other.waitForFunction(
        () => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) >= 3000,
        null,
        // A patience bound, not a timing: the demo's 600/s is not reached on a loaded machine.
        { polling: 500, timeout: 4 * PATIENCE_MS },
      );
      const rows = await other.getByTestId("timeline-row").count();
      assert.ok(rows > 0 && rows <= 80, `${rows} rows in the DOM for 3000+ events`);
      // Still following the newest event, and the oldest is one scroll away.
      await other.getByTestId("timeline-scroller").evaluate((el) => el.scrollTo(0, 0));
      await other.getByTestId("jump-to-latest").waitFor();
      const first = await other.getByTestId("timeline-row").first().innerText();
      // (Any AG-UI event: the page subscribes when its socket is ready, which may be in the middle of a run.)
      assert.match(first, /RUN_|THINKING|TOOL_CALL|TEXT_MESSAGE|tambo/);
      assert.ok((await other.getByTestId("timeline-row").count()) <= 80);
      await view(other, "03b-thousands-of-events");
    } finally {
      await other.close();
      await fast.stop();
    }
  });

  test("stopping the demo marks its clients disconnected and clears the view; starting it brings them back", async () => {
    await demo.stop();
    for (const id of IDS) await card(id).and(page.locator("[data-state=disconnected]")).waitFor();
    await page.locator("[data-testid=client-gone][data-state=disconnected]").waitFor();
    assert.equal(await page.getByTestId("client-view").count(), 0, "the client's view is cleared");
    assert.equal(await liveCards().count(), 0);
    assert.equal(await status().getAttribute("data-state"), "open", "the relay connection itself is fine");
    await view(page, "04-client-disconnected");

    demo = startDemo(relay.url, { sessions: SESSIONS, rate: 12, seed: SEED });
    for (const id of IDS) await card(id).and(page.locator("[data-state=live]")).waitFor();
    // The URL still names the selected client: its view comes back by itself.
    await page.locator(`[data-testid=client-view][data-session-id="${selected}"]`).waitFor();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) > 0);
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=thread-item]").length >= 3);
  });

  test("restarting the relay shows reconnecting, then connected, with the list rebuilt, without a reload", async () => {
    const port = relay.port;
    await relay.stop();
    await page.locator("[data-testid=connection-status][data-state=reconnecting]").waitFor();
    await page.waitForFunction(() =>
      /Reconnecting \(attempt [1-9]/.test(document.querySelector("[data-testid=connection-status]").textContent),
    );
    // While the relay is away, the known clients are shown as stale, not as connected, and the view says so.
    for (const id of IDS) await card(id).and(page.locator("[data-state=stale]")).waitFor();
    assert.equal(await liveCards().count(), 0);
    await page.getByTestId("offline-banner").waitFor();
    await view(page, "05-relay-reconnecting");

    // The same token (a relay started with --token keeps it across restarts; a fresh random one is another
    // test: the page then says its token is wrong).
    relay = await startRelay(port, ["--token", relay.token]);
    await page.locator("[data-testid=connection-status][data-state=open]").waitFor();
    for (const id of IDS) await card(id).and(page.locator("[data-state=live]")).waitFor();
    await page.locator(`[data-testid=client-view][data-session-id="${selected}"]`).waitFor();
    await page.getByTestId("offline-banner").waitFor({ state: "detached" });
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=timeline-count]")?.textContent) > 0);
    // The new relay process has new epochs: the page tells a restart from a gap it could have filled.
    const notice = page.locator("[data-testid=recovery-status][data-state=restarted]");
    await notice.waitFor();
    assert.equal(await notice.innerText(), "Relay restarted — resynced");
    assert.equal(await page.evaluate(() => window.__devrelayPageId), "first-load", "the page was not reloaded");
  });

  test("a page from another origin is never a dashboard, and its SDK sockets can only publish their session", async () => {
    // The relay will not even serve its page under a foreign name (DNS rebinding: Host is checked first)...
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    const foreign = await context.newPage();
    foreign.setDefaultTimeout(PATIENCE_MS);
    const rebound = await foreign.goto(`http://${FOREIGN_HOST}:${relay.port}/`);
    assert.equal(rebound.status(), 403);
    assert.match(await rebound.text(), /forbidden Host/);

    // ...so the foreign page comes from another relay told to answer to that name: same dashboard, foreign
    // origin, even with our token in its fragment. Pointed at our relay, its dashboard is refused (4502: its
    // Origin is neither loopback nor our own), once, and it does not retry.
    const elsewhere = await startRelay(0, ["--allow-host", FOREIGN_HOST], "foreign-site");
    try {
      const before = await relayStats(relay);
      const received = [];
      let opened = 0;
      foreign.on("websocket", (ws) => {
        opened++;
        ws.on("framereceived", (f) => received.push(String(f.payload)));
      });
      await foreign.goto(
        `http://${FOREIGN_HOST}:${elsewhere.port}/?relay=${encodeURIComponent(relay.url)}#token=${relay.token}`,
      );
      assert.equal(await foreign.evaluate(() => location.origin), `http://${FOREIGN_HOST}:${elsewhere.port}`);
      const refused = foreign.locator("[data-testid=access-refused][data-code='4502']");
      await refused.waitFor();
      assert.match(await refused.innerText(), /may not open a dashboard/);
      assert.match(await foreign.getByTestId("origin-hint").innerText(), /--allow-origin http:\/\/devrelay-evil\.test:\d+/);
      assert.equal(await foreign.getByTestId("connection-status").getAttribute("data-state"), "closed");
      assert.equal(opened, 1, "a refusal is final: no reconnect");
      assert.ok(
        received.every((f) => JSON.parse(f).type === "error"),
        `nothing but the refusal came from the relay: ${received}`,
      );
      assert.equal(await foreign.locator("[data-testid=client-card]").count(), 0);
      await view(foreign, "06-foreign-origin-refused");

      // What a script on that page can do: open a socket as an SDK (it runs in an app's page) and publish its
      // own session — shown to our dashboard — but neither watch nor ask anything of other sessions.
      const outcome = await foreign.evaluate(async (url) => {
        const ws = new WebSocket(url);
        const frames = [];
        const next = () => new Promise((ok) => (ws.onmessage = (e) => ok(JSON.parse(e.data))));
        await new Promise((ok) => (ws.onopen = ok));
        ws.send(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "x", sessionId: "cross-site" }));
        frames.push(await next());
        ws.send(JSON.stringify({ type: "request_client_snapshot", sessionId: "anyone" }));
        frames.push(await next());
        ws.send(JSON.stringify({ type: "subscribe_dashboard" }));
        frames.push(await next());
        const watcher = new WebSocket(url);
        await new Promise((ok) => (watcher.onopen = ok));
        watcher.send(JSON.stringify({ type: "hello", batch: true }));
        const closed = await new Promise((ok) => (watcher.onclose = (e) => ok([e.code, e.reason])));
        window.__crossSiteSdk = ws; // kept open: our dashboard shows it until this page goes
        return { frames: frames.map((f) => (f.type === "error" ? f.code : f.type)), closed };
      }, relay.url);
      assert.deepEqual(outcome.frames, ["handshake_ack", "wrong_role", "wrong_role"]);
      assert.equal(outcome.closed[0], 4502, `a v2 dashboard hello is refused too: ${outcome.closed}`);
      await card("cross-site").waitFor();
      // Its card names the page it came from: a stray page is recognisable.
      assert.equal(
        await card("cross-site").getByTestId("client-origin").innerText(),
        `http://${FOREIGN_HOST}:${elsewhere.port}`,
      );
      const afterStats = await relayStats(relay);
      assert.ok(afterStats.authFailures >= before.authFailures + 2, `refusals counted: ${JSON.stringify(afterStats)}`);
    } finally {
      await context.close();
      await elsewhere.stop();
    }
    await card("cross-site").and(page.locator("[data-state=disconnected]")).waitFor();

    // Control: the same dashboard from a localhost origin is connected to the same relay right now.
    assert.equal(await status().getAttribute("data-state"), "open");
  });

  test("in Chromium, every role is held to its cell: tokens missing or wrong, SDKs that read or command, agents on another's channel", async () => {
    // The page is a relay's own (an allowed Origin, loopback): what is refused here is refused for the role, not
    // the Origin. A relay with a separate agent token, so that agents are agents (the dashboard token would make a
    // dashboard that may also be an agent).
    const agentToken = "agent-token-for-the-e2e-0123";
    const roles = await startRelay(0, ["--agent-token", agentToken], "roles-relay");
    await page.evaluate(installSockets);
    const outcome = await page.evaluate(
      async ({ url, token, agentToken }) => {
        const open = window.__open;
        const out = {};
        // A dashboard without a token, and with a wrong one (on the URL, as a client that can only set a URL).
        let ws = await open(url);
        ws.send(JSON.stringify({ type: "hello", batch: true }));
        out.dashboardNoToken = [(await ws.next()).code, await ws.closed];
        ws = new WebSocket(`${url}/?token=wrong-token-0123456789`);
        out.dashboardWrongToken = await new Promise((done) => (ws.onclose = (e) => done(e.code)));
        // An agent without a token, with a wrong one, and with the right one on another agent's channel.
        ws = await open(url);
        ws.send(JSON.stringify({ type: "hello", agentId: "chromium-agent" }));
        out.agentNoToken = [(await ws.next()).code, await ws.closed];
        ws = await open(url);
        ws.send(JSON.stringify({ type: "hello", agentId: "chromium-agent", token: "wrong-token-0123456789" }));
        out.agentWrongToken = [(await ws.next()).code, await ws.closed];
        const agent = await open(url);
        agent.send(JSON.stringify({ type: "hello", agentId: "chromium-agent", token: agentToken }));
        await agent.next();
        const publish = (channel, id) => ({ type: "publish", channel, event: "x", data: 1, id });
        out.agent = [
          await agent.ask(publish("agents/chromium-agent", 1)),
          await agent.ask(publish("agents/someone-else", 2)),
          await agent.ask(publish("sessions/someone", 3)),
          await agent.ask({ type: "subscribe", channel: "agents/someone-else", id: 4 }),
        ];
        agent.close();
        // The agent token opens no dashboard; the dashboard token does.
        ws = await open(`${url}/?token=${agentToken}`);
        ws.send(JSON.stringify({ type: "hello", batch: true }));
        out.dashboardWithAgentToken = [(await ws.next()).code, await ws.closed];
        ws = await open(url);
        ws.send(JSON.stringify({ type: "hello", batch: true, token }));
        out.dashboard = (await ws.next()).role;
        ws.close();
        // A v2 SDK (no token, loopback): its own session only; it may not read, ask, or command an agent.
        const sdk = await open(url);
        sdk.send(JSON.stringify({ type: "hello", sessionId: "chromium-sdk" }));
        await sdk.next();
        out.sdk = [
          await sdk.ask(publish("sessions/chromium-sdk", 1)),
          await sdk.ask({ type: "subscribe", channel: "global", id: 2 }),
          await sdk.ask({ type: "subscribe", channel: "sessions/*", id: 3 }),
          await sdk.ask({ type: "request_snapshot", sessionId: "chromium-sdk", id: 4 }),
          await sdk.ask(publish("agents/chromium-agent", 5)),
          await sdk.ask(publish("topics/commands", 6)),
        ];
        sdk.close();
        // A seed-000 SDK: it may not watch nor ask for another's snapshot.
        const legacy = await open(url);
        legacy.send(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "x", sessionId: "chromium-legacy" }));
        await legacy.next();
        out.legacy = [
          await legacy.ask({ type: "request_client_snapshot", sessionId: "chromium-sdk" }),
          await legacy.ask({ type: "subscribe_dashboard" }),
        ];
        legacy.close();
        return out;
      },
      { url: roles.url, token: roles.token, agentToken },
    );
    await roles.stop();
    assert.deepEqual(outcome, {
      dashboardNoToken: ["UNAUTHORIZED", 4501],
      dashboardWrongToken: 4501,
      agentNoToken: ["UNAUTHORIZED", 4501],
      agentWrongToken: ["UNAUTHORIZED", 4501],
      agent: ["ack", "FORBIDDEN", "FORBIDDEN", "FORBIDDEN"],
      dashboardWithAgentToken: ["FORBIDDEN", 4502],
      dashboard: "dashboard",
      sdk: ["ack", "FORBIDDEN", "FORBIDDEN", "FORBIDDEN", "FORBIDDEN", "FORBIDDEN"],
      legacy: ["wrong_role", "wrong_role"],
    });
    // The dashboard page itself is untouched by all that.
    assert.equal(await status().getAttribute("data-state"), "open");
  });

  test("in Chromium, only a dashboard commands an agent or answers its permission requests: SDKs and agents are refused and the agent never hears of it", async () => {
    // The target: an agent (the agent token) with a pending permission request. Against it, from the relay's own
    // page (an allowed Origin, loopback): a seed-000 SDK without a token, a v2 SDK without a token, another
    // agent, and sockets that try a dashboard's action as their first message. Then a dashboard does the same
    // and is obeyed: the agent receives exactly the dashboard's command and the dashboard's answer, nothing else.
    const agentToken = "agent-token-for-the-e2e-4567";
    const commands = await startRelay(0, ["--agent-token", agentToken], "commands-relay");
    await page.evaluate(installSockets);
    let outcome;
    try {
      outcome = await page.evaluate(
        async ({ url, token, agentToken }) => {
          const open = window.__open;
          const out = {};
          const command = (id, agentId = "target") => ({ type: "command", id, agentId, command: "touch", args: [`/tmp/devrelay-e2e-${id}`] });
          const answer = (id) => ({ type: "permission_response", requestId: "perm-target", allowed: true, id });

          const agent = await open(url);
          agent.send(JSON.stringify({ type: "hello", agentId: "target", token: agentToken, capabilities: { commands: true, allow: ["*"] } }));
          out.agentRole = (await agent.next()).role;
          out.permissionRequest = await agent.ask({
            type: "publish",
            channel: "agents/target",
            event: "permission_request",
            data: { requestId: "perm-target", toolName: "bash", command: "rm -rf target", description: "clean" },
            id: "p1",
          });
          // A dashboard watching the sessions the SDKs below publish: what they may still do arrives here.
          const dash = await open(url);
          dash.send(JSON.stringify({ type: "hello", batch: true, token }));
          const connected = await dash.next();
          out.dashboardRole = connected.role;
          for (const [i, channel] of ["sessions/legacy-sdk", "sessions/v2-sdk", "agents/rogue", "agents/target"].entries()) {
            out[`watch${i}`] = await dash.ask({ type: "subscribe", channel, id: `w${i}` });
          }

          // A seed-000 SDK (handshake, no token): v2's dashboard messages are the wrong role for it; it stays.
          const legacy = await open(url);
          out.legacyHandshake = await legacy.reply({ type: "handshake", protocolVersion: 1, sdkVersion: "x", sessionId: "legacy-sdk" });
          out.legacy = [
            await legacy.reply(command("legacy-cmd")),
            await legacy.reply({ type: "cancel", id: "legacy-cmd", agentId: "target" }),
            await legacy.reply(answer("legacy-answer")),
            await legacy.reply({ type: "subscribe", channel: "sessions/v2-sdk" }),
            await legacy.reply({ type: "subscribe", channel: "agents/target" }),
            await legacy.reply({ type: "request_client_snapshot", sessionId: "v2-sdk" }),
          ];
          legacy.send(
            JSON.stringify({ type: "stream_event", sessionId: "legacy-sdk", timestamp: 1, threadId: "t", event: { type: "RUN_STARTED" }, seq: 1 }),
          );
          const publication = (channel) => (m) => m.channel === channel && m.type === undefined;
          out.legacyStillPublishes = (await dash.until(publication("sessions/legacy-sdk"))).event;

          // A v2 SDK (hello with a session, no token): FORBIDDEN, and it keeps its connection.
          const sdk = await open(url);
          sdk.send(JSON.stringify({ type: "hello", sessionId: "v2-sdk" }));
          out.sdkRole = (await sdk.next()).role;
          out.sdk = [
            await sdk.ask(command("sdk-cmd")),
            await sdk.ask({ type: "cancel", id: "sdk-cmd", agentId: "target" }),
            await sdk.ask({ type: "input", agentId: "target", data: "y\r", id: "sdk-input" }),
            await sdk.ask(answer("sdk-answer")),
            await sdk.ask({ type: "subscribe", channel: "sessions/legacy-sdk", id: "sdk-sub1" }),
            await sdk.ask({ type: "subscribe", channel: "agents/target", id: "sdk-sub2" }),
          ];
          out.sdkStillPublishes = await sdk.ask({ type: "publish", channel: "sessions/v2-sdk", event: "x", data: 1, id: "own" });
          await dash.until(publication("sessions/v2-sdk"));

          // Another agent (the agent token): FORBIDDEN too, and it keeps its connection.
          const rogue = await open(url);
          rogue.send(JSON.stringify({ type: "hello", agentId: "rogue", token: agentToken }));
          out.rogueRole = (await rogue.next()).role;
          out.rogue = [
            await rogue.ask(command("rogue-cmd")),
            await rogue.ask({ type: "cancel", id: "rogue-cmd", agentId: "target" }),
            await rogue.ask({ type: "input", agentId: "target", data: "y\r", id: "rogue-input" }),
            await rogue.ask(answer("rogue-answer")),
            await rogue.ask({ type: "subscribe", channel: "sessions/legacy-sdk", id: "rogue-sub1" }),
            await rogue.ask({ type: "subscribe", channel: "agents/target", id: "rogue-sub2" }),
          ];
          out.rogueStillPublishes = await rogue.ask({ type: "publish", channel: "agents/rogue", event: "x", data: 1, id: "own" });
          await dash.until(publication("agents/rogue"));

          // A socket whose first message is a dashboard's action, without a token: that needs the dashboard
          // token, which nothing later can add: UNAUTHORIZED, closed with 4501.
          out.first = [];
          for (const first of [command("first-cmd"), answer("first-answer")]) {
            const ws = await open(url);
            ws.send(JSON.stringify(first));
            const connected = await ws.next();
            const refusal = await ws.next();
            out.first.push([connected.type, refusal.code, refusal.id, await ws.closed]);
          }

          // The dashboard: obeyed. Its command reaches the agent; its answer is the one that resolves the request.
          out.dashCommand = await dash.ask({ type: "command", id: "dash-cmd", agentId: "target", command: "echo", args: ["ok"] });
          const received = await agent.until((m) => m.type === "command");
          out.dashAnswer = await dash.ask({ type: "permission_response", requestId: "perm-target", allowed: false, id: "dash-answer" });
          const response = await agent.until((m) => m.type === "permission_response");
          out.resolved = (await dash.until(publication("agents/target"))).event;
          out.agentGot = {
            command: [received.id, received.from?.clientId === connected.clientId],
            response: [response.requestId, response.allowed, response.by?.clientId === connected.clientId],
            commands: agent.all.filter((m) => m.type === "command").map((m) => m.id),
            responses: agent.all.filter((m) => m.type === "permission_response").length,
            types: [...new Set(agent.all.map((m) => m.type ?? "publication"))].sort(),
          };

          // The SDKs and the other agent never received what they tried to subscribe to: the channels were
          // published after their attempts (a legacy event, the resolution on agents/target), and each connection's
          // last request is answered after anything that would have been queued for it before.
          legacy.send(
            JSON.stringify({ type: "stream_event", sessionId: "legacy-sdk", timestamp: 2, threadId: "t", event: { type: "RUN_FINISHED" }, seq: 2 }),
          );
          await dash.until(publication("sessions/legacy-sdk"));
          out.legacyLast = await legacy.reply({ type: "request_client_list" });
          out.sdkLast = await sdk.ask({ type: "publish", channel: "sessions/v2-sdk", event: "x", data: 2, id: "own2" });
          out.rogueLast = await rogue.ask({ type: "publish", channel: "agents/rogue", event: "x", data: 2, id: "own2" });
          out.legacyFrames = legacy.all.map((m) => m.type);
          const publications = (ws) => ws.all.filter((m) => m.channel !== undefined && m.type === undefined).length;
          out.sdkPublications = publications(sdk);
          out.roguePublications = publications(rogue);
          for (const ws of [agent, dash, legacy, sdk, rogue]) ws.close();
          return out;
        },
        { url: commands.url, token: commands.token, agentToken },
      );
    } finally {
      await commands.stop();
    }
    const forbidden = Array(6).fill("FORBIDDEN");
    assert.deepEqual(outcome, {
      agentRole: "agent",
      permissionRequest: "ack",
      dashboardRole: "dashboard",
      watch0: "ack",
      watch1: "ack",
      watch2: "ack",
      watch3: "ack",
      legacyHandshake: "handshake_ack",
      legacy: ["wrong_role", "wrong_role", "wrong_role", "wrong_role", "wrong_role", "wrong_role"],
      legacyStillPublishes: "stream_event",
      sdkRole: "sdk",
      sdk: forbidden,
      sdkStillPublishes: "ack",
      rogueRole: "agent",
      rogue: forbidden,
      rogueStillPublishes: "ack",
      first: [
        ["connected", "UNAUTHORIZED", "first-cmd", 4501],
        ["connected", "UNAUTHORIZED", "first-answer", 4501],
      ],
      dashCommand: "ack",
      dashAnswer: "ack",
      resolved: "permission_resolved",
      agentGot: {
        // Exactly one command and one answer, the dashboard's, and nothing from the others.
        command: ["dash-cmd", true],
        response: ["perm-target", false, true],
        commands: ["dash-cmd"],
        responses: 1,
        types: ["ack", "command", "connected", "permission_response"],
      },
      legacyLast: "wrong_role",
      sdkLast: "ack",
      rogueLast: "ack",
      legacyFrames: ["handshake_ack", ...Array(7).fill("error")],
      sdkPublications: 0,
      roguePublications: 0,
    });
    // The dashboard page itself is untouched by all that.
    assert.equal(await status().getAttribute("data-state"), "open");
  });

  test("an SDK stopped by SIGSTOP shows as stale on its card, and continues on the same connection after SIGCONT", async () => {
    // Its own relay, pinging every second, so that a stopped process is noticed within a few seconds.
    const pinging = await startRelay(0, ["--ping-interval-secs", "1", "--stale-grace-secs", "600"], "pinging-relay");
    const paused = startDemo(pinging.url, { sessions: 1, rate: 0, seed: 33 });
    const [id] = demoSessionIds(33, 1);
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const other = await context.newPage();
    other.setDefaultTimeout(PATIENCE_MS);
    try {
      await other.goto(pinging.open());
      const its = other.locator(`[data-testid=client-card][data-session-id="${id}"]`);
      await its.and(other.locator("[data-state=live]")).waitFor();
      assert.equal(await its.getAttribute("data-unresponsive"), null);
      const connections = (await relayStats(pinging)).connectionsTotal;

      paused.child.kill("SIGSTOP");
      await its.and(other.locator("[data-unresponsive=true]")).waitFor();
      assert.equal(await its.getAttribute("data-state"), "live", "still connected, not disconnected");
      assert.match(await its.getByTestId("client-stale-status").innerText(), /not answering since .*: dropped unless it answers soon/);
      await its.getByTestId("client-unresponsive").waitFor();
      await view(other, "10-client-stale");

      paused.child.kill("SIGCONT");
      await its.and(other.locator(":not([data-unresponsive])")).waitFor();
      assert.equal(await its.getAttribute("data-state"), "live");
      const stats = await relayStats(pinging);
      assert.equal(stats.connectionsTotal, connections, "no reconnect: the same connection continued");
      assert.equal(stats.stale, 1);
      assert.equal(stats.heartbeatTimeouts, 0);
    } finally {
      paused.child.kill("SIGCONT");
      await context.close();
      await paused.stop();
      await pinging.stop();
    }
  });

  test("without the token the dashboard says so and takes one; a restarted relay's new token is asked for", async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const bare = await context.newPage();
    bare.setDefaultTimeout(PATIENCE_MS);
    try {
      // The page without its fragment (a bookmark, a copied link): refused, and told what to do.
      await bare.goto(relay.page);
      const refused = bare.locator("[data-testid=access-refused][data-code='4501']");
      await refused.waitFor();
      assert.match(await refused.innerText(), /token is missing/);
      assert.match(await refused.innerText(), new RegExp(`token-${relay.port}`));
      assert.equal(await bare.getByTestId("connection-status").getAttribute("data-state"), "closed");
      await view(bare, "07-token-missing");
      // A wrong one: "wrong".
      await bare.getByTestId("token-input").fill("not-the-token-0123456789");
      await bare.getByTestId("token-submit").click();
      await bare.locator("[data-testid=access-refused][data-code='4501']").filter({ hasText: "token is wrong" }).waitFor();
      await view(bare, "08-token-wrong");
      // The right one, pasted: connected, and kept for the tab (a reload needs no fragment).
      await bare.getByTestId("token-input").fill(relay.token);
      await bare.getByTestId("token-submit").click();
      await bare.locator("[data-testid=connection-status][data-state=open]").waitFor();
      await bare.reload();
      await bare.locator("[data-testid=connection-status][data-state=open]").waitFor();
      assert.equal(await bare.getByTestId("access-refused").count(), 0);

      // The relay restarts with a fresh random token: the open page learns its token is now wrong.
      const port = relay.port;
      await relay.stop();
      relay = await startRelay(port);
      await bare.locator("[data-testid=access-refused][data-code='4501']").filter({ hasText: "token is wrong" }).waitFor();
      assert.match(await bare.getByTestId("access-refused").innerText(), /restarted with a new one/);
      // Its new URL works.
      await bare.goto(relay.open());
      await bare.locator("[data-testid=connection-status][data-state=open]").waitFor();
    } finally {
      await context.close();
    }
  });
});
