// Automated accessibility check for the e2e suite: axe-core (installed by scripts/setup.sh in scripts/tools, like
// playwright-core) injected into the page and run on the whole document. Any violation fails the test, whatever
// its impact: the dashboard has none, and a new one should be fixed, not weighed. Called on every view the suite
// reaches (see `view()`), so each screen is checked in the state a user sees it.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { ROOT, screenshot } from "./harness.mjs";

const requireTools = createRequire(join(ROOT, "scripts", "tools", "package.json"));
const AXE_SOURCE = readFileSync(requireTools.resolve("axe-core/axe.min.js"), "utf8");

/** One line per failing node: rule, impact, where, and axe's summary of what to fix. */
function describe(violations) {
  return violations
    .flatMap((v) =>
      v.nodes.map(
        (n) => `  [${v.impact}] ${v.id} (${v.help}) at ${n.target.join(" ")}\n      ${n.failureSummary.replace(/\n/g, "\n      ")}`,
      ),
    )
    .join("\n");
}

/** Runs axe on the page as it is now; throws with every violation listed. */
export async function assertAccessible(page, name) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) {
    await page.addScriptTag({ content: AXE_SOURCE });
  }
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ["violations"] });
    // Only what the report needs: axe's result objects hold DOM references.
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.map(String), failureSummary: n.failureSummary ?? "" })),
    }));
  });
  if (violations.length > 0) {
    throw new Error(`accessibility violations in view "${name}" (axe-core):\n${describe(violations)}`);
  }
}

/** A view of the dashboard worth keeping: a screenshot in test-artifacts/e2e/, then the accessibility check. */
export async function view(page, name) {
  await screenshot(page, name);
  await assertAccessible(page, name);
}
