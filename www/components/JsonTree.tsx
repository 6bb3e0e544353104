"use client";
// A collapsible JSON tree (react-json-view-lite) with expand-all / collapse controls.

import { useState } from "react";
import { JsonView, allExpanded, darkStyles } from "react-json-view-lite";

type Mode = "auto" | "all" | "none";

/** The library's dark theme with our own value colours (globals.css `.json-*`): its solarized orange and magenta
 * are below WCAG AA contrast on our panels. */
const STYLE = {
  ...darkStyles,
  stringValue: "json-string",
  numberValue: "json-number",
  booleanValue: "json-boolean",
  nullValue: "json-null",
  undefinedValue: "json-null",
  otherValue: "json-other",
};

export function JsonTree({ data, depth = 2, controls = true }: { data: unknown; depth?: number; controls?: boolean }) {
  const [mode, setMode] = useState<Mode>("auto");
  const tree = typeof data === "object" && data !== null ? data : { value: data };
  const expand = mode === "all" ? allExpanded : mode === "none" ? (level: number) => level < 1 : (level: number) => level < depth;
  return (
    <div className="json-tree" data-testid="json-tree">
      {controls && (
        <div className="json-controls">
          <button type="button" onClick={() => setMode("all")}>
            Expand all
          </button>
          <button type="button" onClick={() => setMode("none")}>
            Collapse
          </button>
        </div>
      )}
      {/* Remount on mode change: shouldExpandNode only sets a node's initial state. */}
      <JsonView key={mode} data={tree} shouldExpandNode={expand} style={STYLE} clickToExpandNode />
    </div>
  );
}
