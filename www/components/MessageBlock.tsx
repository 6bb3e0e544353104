"use client";
// One content block of a message, rendered by type: text, tool_use, tool_result, component, resource (and any
// type a newer SDK sends, as raw JSON).

import { type Block, isObj, str } from "@/lib/model";
import { JsonTree } from "./JsonTree";

/** Resource text longer than this is cut in the preview (the JSON tree below has all of it). */
const RESOURCE_PREVIEW_CHARS = 600;

export function MessageBlock({ block }: { block: Block }) {
  switch (block.type) {
    case "text":
      return (
        <div className="block block-text" data-block-type="text">
          {str(block.text) ?? ""}
        </div>
      );
    case "tool_use":
      return (
        <div className="block block-tool-use" data-block-type="tool_use">
          <div className="block-head">
            <span className="kind tool">tool call</span>
            <code className="name">{str(block.name) ?? "(unnamed tool)"}</code>
            <code className="muted">{str(block.id)}</code>
          </div>
          <JsonTree data={block.input ?? {}} controls={false} />
        </div>
      );
    case "tool_result": {
      const isError = block.isError === true;
      const content = Array.isArray(block.content)
        ? block.content.filter(isObj).map((b) => ({ ...b, type: str(b.type) ?? "unknown" }))
        : [{ type: "text", text: typeof block.content === "string" ? block.content : JSON.stringify(block.content) }];
      return (
        <div className={`block block-tool-result ${isError ? "is-error" : ""}`} data-block-type="tool_result">
          <div className="block-head">
            <span className="kind tool">tool result</span>
            <code className="muted">for {str(block.toolUseId) ?? "?"}</code>
            {isError && <span className="badge error">error</span>}
          </div>
          {content.map((b, i) => (
            <MessageBlock key={i} block={b} />
          ))}
        </div>
      );
    }
    case "component":
      return (
        <div className="block block-component" data-block-type="component">
          <div className="block-head">
            <span className="kind component">component</span>
            <code className="name">&lt;{str(block.componentName) ?? "Unknown"} /&gt;</code>
          </div>
          <JsonTree data={block.props ?? {}} controls={false} />
        </div>
      );
    case "resource": {
      const text = str(block.text);
      return (
        <div className="block block-resource" data-block-type="resource">
          <div className="block-head">
            <span className="kind resource">resource</span>
            <code className="name">{str(block.uri) ?? "(no uri)"}</code>
            {str(block.mimeType) && <span className="badge">{str(block.mimeType)}</span>}
          </div>
          {text !== undefined && (
            <pre className="resource-text">
              {text.length > RESOURCE_PREVIEW_CHARS ? `${text.slice(0, RESOURCE_PREVIEW_CHARS)}…` : text}
            </pre>
          )}
        </div>
      );
    }
    default:
      return (
        <div className="block block-unknown" data-block-type={block.type}>
          <div className="block-head">
            <span className="kind">{block.type}</span>
          </div>
          <JsonTree data={block} controls={false} />
        </div>
      );
  }
}
