// The Agents view end to end: the relay binary serving its dashboard, a real `devrelay run` agent running real
// programs, and two headless Chromium pages watching it. The terminal shows the program's colours; commands run,
// get rejected and get cancelled from the command box, and both dashboards show the same; a permission prompt
// answered on one page disappears from the other. Every view passes axe-core.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchBrowser, PATIENCE_MS, Proc, RELAY_BIN, startRelay, withTimeout } from "./harness.mjs";
import { view } from "./a11y.mjs";

const T = { timeout: PATIENCE_MS };

function runAgent(relay, name, args) {
  const token = relay.token ? ["--token", relay.token] : [];
  return new Proc(`agent ${name}`, RELAY_BIN, ["run", "--url", relay.url, "--name", name, "--quiet", ...token, ...args]);
}

async function openAgent(browser, relay, name) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  // The dashboard token in the fragment, as the relay prints its URL.
  await page.goto(`${relay.page}agents?agent=${name}${relay.token ? `#token=${relay.token}` : ""}`);
  await page.waitForSelector(`[data-testid="agent-panel"][data-agent-id="${name}"]`, T);
  return page;
}

/** The command item showing `text`, once it is in `state`. */
async function item(page, text, state) {
  const l = page.locator(`[data-testid="command-item"][data-state="${state}"]`, { hasText: text }).first();
  await l.waitFor(T);
  return l;
}

async function runCommand(page, line) {
  await page.fill('[data-testid="command-input"]', line);
  await page.press('[data-testid="command-input"]', "Enter");
}

describe("agents view", () => {
  let relay;
  let browser;

  before(async () => {
    [relay, browser] = await Promise.all([startRelay(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close();
    await relay?.stop();
  });

  test("terminal colours, commands run / rejected / cancelled, two dashboards in sync", async () => {
    const agent = runAgent(relay, "e2e", [
      "--allow",
      "sh -c *",
      "--allow",
      "sleep ?*",
      "--cancel-grace-secs",
      "1",
      "--",
      "sh",
      "-c",
      "printf '\\033[31mRED-TEXT\\033[0m and \\033[32mGREEN-TEXT\\033[0m\\n'; exec sleep 300",
    ]);
    await agent.line(/^devrelay run: agent e2e/);
    const [a, b] = [await openAgent(browser, relay, "e2e"), await openAgent(browser, relay, "e2e")];

    // The terminal shows the output with its colours (xterm's palette classes: 1 red, 2 green).
    for (const page of [a, b]) {
      await page.waitForFunction(() => {
        const spans = [...document.querySelectorAll('[data-testid="agent-terminal"] .xterm-rows span')];
        const red = spans.find((s) => s.textContent.includes("RED-TEXT"));
        const green = spans.find((s) => s.textContent.includes("GREEN-TEXT"));
        return red?.className.includes("xterm-fg-1") && green?.className.includes("xterm-fg-2");
      }, undefined, T);
    }
    await a.waitForSelector('[data-testid="agent-item"][data-agent-id="e2e"][data-activity="running"]', T);
    const allowed = await a.textContent('[data-testid="allowed-patterns"]');
    assert.match(allowed, /sh -c \*/);
    await view(a, "agents-terminal");

    // An allowed command runs; both dashboards show its exit code and output.
    await runCommand(a, "sh -c 'echo hello-from-cmd; exit 3'");
    for (const page of [a, b]) {
      const done = await item(page, "hello-from-cmd", "completed");
      assert.match(await done.textContent(), /exit 3/);
      assert.match(await done.textContent(), /hello-from-cmd/);
    }

    // A disallowed one is rejected, and the box says why.
    await runCommand(a, "touch /tmp/devrelay-e2e-never");
    const error = await a.waitForSelector('[data-testid="command-error"]', T);
    assert.match(await error.textContent(), /rejected: no --allow pattern matches touch/);
    await item(b, "touch /tmp/devrelay-e2e-never", "rejected");
    await view(a, "agents-rejected");

    // `sleep 30` started on one page, cancelled from the other.
    await runCommand(a, "sleep 30");
    const running = await item(b, "sleep 30", "running");
    await running.locator('[data-testid="command-cancel"]').click();
    for (const page of [a, b]) {
      const cancelled = await item(page, "sleep 30", "cancelled");
      assert.match(await cancelled.textContent(), /signal 15/);
    }

    // History: ↑ brings the last command back.
    await a.focus('[data-testid="command-input"]');
    await a.press('[data-testid="command-input"]', "ArrowUp");
    assert.equal(await a.inputValue('[data-testid="command-input"]'), "sleep 30");

    // The agent leaves: it shows offline everywhere, its output stays.
    await agent.stop();
    for (const page of [a, b]) {
      await page.waitForSelector('[data-testid="agent-item"][data-agent-id="e2e"][data-activity="offline"]', T);
    }
    await a.close();
    await b.close();
  });

  test("a dashboard opened later gets the scrollback at once", async () => {
    const agent = runAgent(relay, "late", ["--", "sh", "-c", "for i in 1 2 3; do echo scrollback-line-$i; done; exec sleep 300"]);
    await agent.line(/^devrelay run: agent late/);
    // Wait until the relay has the output (the agent's channel published it), then open a page.
    const first = await openAgent(browser, relay, "late");
    await first.waitForFunction(() => document.querySelector('[data-testid="agent-terminal"]')?.textContent.includes("scrollback-line-3"), undefined, T);
    await first.close();
    const late = await openAgent(browser, relay, "late");
    await late.waitForFunction(() => {
      const t = document.querySelector('[data-testid="agent-terminal"]')?.textContent ?? "";
      return t.includes("scrollback-line-1") && t.includes("scrollback-line-3");
    }, undefined, T);
    await agent.stop();
    await late.close();
  });

  test("a permission prompt answered on one dashboard disappears on the other", async () => {
    // An agent speaking the protocol by hand (Node's WebSocket): it asks, and waits for its answer.
    const ws = new WebSocket(relay.url);
    const messages = [];
    const waiters = [];
    ws.onmessage = (ev) => {
      const parsed = JSON.parse(ev.data);
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
        messages.push(m);
        for (const w of waiters.splice(0)) w();
      }
    };
    const next = (pred) =>
      withTimeout(
        new Promise((ok) => {
          const check = () => {
            const m = messages.find(pred);
            if (m) ok(m);
            else waiters.push(check);
          };
          check();
        }),
        "agent waiting for a message",
      );
    await new Promise((ok) => ws.addEventListener("open", ok, { once: true }));
    ws.send(JSON.stringify({ type: "hello", agentId: "asker", name: "asker", token: relay.token }));
    await next((m) => m.type === "connected");
    const [a, b] = [await openAgent(browser, relay, "asker"), await openAgent(browser, relay, "asker")];
    ws.send(
      JSON.stringify({
        type: "publish",
        channel: "agents/asker",
        event: "permission_request",
        data: { requestId: "perm-e2e", toolName: "bash", command: "rm -rf target", description: "Clean the build", timeoutMs: 60000 },
        id: "p1",
      }),
    );
    for (const page of [a, b]) await page.waitForSelector('[data-testid="permission-prompt"][data-request-id="perm-e2e"]', T);
    await view(b, "agents-permission");
    await a.click('[data-testid="permission-allow"]');
    const answer = await next((m) => m.type === "permission_response");
    assert.equal(answer.allowed, true);
    for (const page of [a, b]) {
      await page.waitForSelector('[data-testid="permission-prompt"]', { state: "detached", ...T });
    }
    const notice = await b.waitForSelector('[data-testid="permission-resolved"]', T);
    assert.match(await notice.textContent(), /perm-e2e allowed by dashboard/);
    ws.close();
    await a.close();
    await b.close();
  });
});
