"use client";
// What the client's app has registered: tools (with their input schemas), components (with their props
// schemas) and MCP servers. The first place to look when "the agent can't see my tool".

import { memo } from "react";
import { isObj, type McpServer, type Named, str } from "@/lib/model";
import { JsonTree } from "./JsonTree";

export const RegistryPanel = memo(function RegistryPanel({
  tools,
  components,
  mcpServers,
}: {
  tools: Named[];
  components: Named[];
  mcpServers: McpServer[];
}) {
  return (
    <div className="registry" data-testid="registry">
      <section>
        <h3>
          Tools <span className="count">{tools.length}</span>
        </h3>
        {tools.length === 0 && <p className="empty small">No tools registered. Tools the app registers appear here with their input schema.</p>}
        {tools.map((t) => (
          <SchemaCard key={t.name} entry={t} kind="tool" schemaLabel="inputSchema" />
        ))}
      </section>
      <section>
        <h3>
          Components <span className="count">{components.length}</span>
        </h3>
        {components.length === 0 && <p className="empty small">No components registered.</p>}
        {components.map((c) => (
          <SchemaCard key={c.name} entry={c} kind="component" schemaLabel="propsSchema" />
        ))}
      </section>
      <section>
        <h3>
          MCP servers <span className="count">{mcpServers.length}</span>
        </h3>
        {mcpServers.length === 0 && <p className="empty small">No MCP servers configured.</p>}
        {mcpServers.length > 0 && (
          <table className="mcp-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>URL</th>
                <th>Status</th>
              </tr>
            </thead>
            <tbody>
              {mcpServers.map((s) => (
                <tr key={s.name} data-testid="mcp-server">
                  <td>
                    <code>{s.name}</code>
                  </td>
                  <td>
                    <code className="muted">{s.url ?? "–"}</code>
                  </td>
                  <td>
                    <span className={`badge mcp-${s.status ?? "unknown"}`}>{s.status ?? "unknown"}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
});

function SchemaCard({ entry, kind, schemaLabel }: { entry: Named; kind: "tool" | "component"; schemaLabel: string }) {
  const schema = isObj(entry.schema) ? entry.schema : undefined;
  const props = schema && isObj(schema.properties) ? Object.entries(schema.properties) : [];
  const required = new Set(Array.isArray(schema?.required) ? schema.required.filter((r) => typeof r === "string") : []);
  return (
    <div className={`schema-card ${kind}`} data-testid={`registry-${kind}`} data-name={entry.name}>
      <div className="schema-head">
        <code className="name">{kind === "component" ? `<${entry.name} />` : entry.name}</code>
        {entry.description && <span className="muted">{entry.description}</span>}
      </div>
      {props.length > 0 && (
        <table className="params">
          <tbody>
            {props.map(([name, p]) => {
              const type = isObj(p) ? (str(p.type) ?? (Array.isArray(p.enum) ? "enum" : "any")) : "any";
              const values = isObj(p) && Array.isArray(p.enum) ? p.enum.join(" | ") : "";
              return (
                <tr key={name}>
                  <td>
                    <code>{name}</code>
                    {required.has(name) && <span className="required" title="required">*</span>}
                  </td>
                  <td>
                    <code className="type">{type}</code>
                  </td>
                  <td className="muted small">{values}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {entry.schema === undefined ? (
        <p className="muted small">No {schemaLabel}.</p>
      ) : (
        <details>
          <summary>{schemaLabel}</summary>
          <JsonTree data={entry.schema} depth={3} />
        </details>
      )}
    </div>
  );
}
