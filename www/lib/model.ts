// Typed, defensive views over SDK-owned snapshot data. Threads, messages and registry entries are whatever the
// SDK sent (the relay forwards them untouched), so every field is checked before use.

import type { Snapshot } from "devrelay-client";
import { count } from "./renderCount";

export type Obj = Record<string, unknown>;

export const CONTENT_TYPES = ["text", "tool_use", "tool_result", "component", "resource"] as const;
export const ROLES = ["user", "assistant", "tool", "system"] as const;

export interface Block extends Obj {
  type: string;
}

export interface MessageView {
  id: string;
  role: string;
  createdAt?: number;
  content: Block[];
}

export interface ThreadView {
  id: string;
  name: string;
  status: string;
  createdAt?: number;
  messages: MessageView[];
}

export interface Named {
  name: string;
  description?: string;
  schema?: unknown;
  raw: unknown;
}

export interface McpServer {
  name: string;
  url?: string;
  status?: string;
  raw: unknown;
}

export interface SnapshotErrorView {
  /** Identity of this error across snapshots (its `id` if the SDK sends one, else timestamp + message + thread):
   * a rolling error list drops old errors and adds new ones, so position and count identify nothing. */
  key: string;
  message: string;
  timestamp?: number;
  threadId?: string;
}

export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
export const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
export const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function blocks(v: unknown): Block[] {
  if (typeof v === "string") return [{ type: "text", text: v }];
  return arr(v)
    .filter(isObj)
    .map((b) => ({ ...b, type: str(b.type) ?? "unknown" }));
}

/** `compute(snapshot)`, computed once per snapshot object: snapshots are immutable and keep their identity until
 * the SDK sends a new one (see docs/client-api.md), so every render and every component asking about the same
 * snapshot shares one result. */
function perSnapshot<T>(name: string, compute: (s: Snapshot) => T, empty: T): (s: Snapshot | undefined) => T {
  const cache = new WeakMap<Snapshot, T>();
  return (snapshot) => {
    if (!snapshot) return empty;
    let v = cache.get(snapshot);
    if (v === undefined) {
      count(name);
      v = compute(snapshot);
      cache.set(snapshot, v);
    }
    return v;
  };
}

const NO_THREADS: ThreadView[] = [];

/** The snapshot's threads, normalized; the same array for the same snapshot. */
export const threadsOf = perSnapshot("threadsOf", computeThreads, NO_THREADS);

function computeThreads(snapshot: Snapshot): ThreadView[] {
  return arr(snapshot.threads)
    .filter(isObj)
    .map((t, i) => ({
      id: str(t.id) ?? `thread-${i}`,
      name: str(t.name) ?? str(t.title) ?? str(t.id) ?? `Thread ${i + 1}`,
      status: str(t.status) ?? "unknown",
      createdAt: num(t.createdAt),
      messages: arr(t.messages)
        .filter(isObj)
        .map((m, j) => ({
          id: str(m.id) ?? `message-${j}`,
          role: str(m.role) ?? "unknown",
          createdAt: num(m.createdAt),
          content: blocks(m.content),
        })),
    }));
}

function named(v: unknown, schemaKey: string): Named[] {
  return arr(v)
    .filter(isObj)
    .map((e) => ({ name: str(e.name) ?? "(unnamed)", description: str(e.description), schema: e[schemaKey], raw: e }));
}

export interface RegistryView {
  tools: Named[];
  components: Named[];
  mcpServers: McpServer[];
}

/** The snapshot's registry, normalized; the same object for the same snapshot. */
export const registryOf = perSnapshot("registryOf", computeRegistry, { tools: [], components: [], mcpServers: [] });

function computeRegistry(snapshot: Snapshot): RegistryView {
  const r = isObj(snapshot.registry) ? (snapshot.registry as Obj) : {};
  return {
    tools: named(r.tools, "inputSchema"),
    components: named(r.components, "propsSchema"),
    mcpServers: arr(r.mcpServers)
      .filter(isObj)
      .map((s) => ({ name: str(s.name) ?? "(unnamed)", url: str(s.url), status: str(s.status), raw: s })),
  };
}

/** The snapshot's errors, each with its identity (`key`); the same array for the same snapshot. */
export const errorsOf = perSnapshot("errorsOf", computeErrors, []);

function computeErrors(snapshot: Snapshot): SnapshotErrorView[] {
  return arr(snapshot.errors).map((e) => {
    if (!isObj(e)) return { key: JSON.stringify(["value", e]), message: String(e) };
    const message = str(e.message) ?? JSON.stringify(e);
    const timestamp = num(e.timestamp);
    const threadId = str(e.threadId);
    const id = str(e.id);
    const key = id !== undefined ? JSON.stringify(["id", id]) : JSON.stringify([timestamp ?? null, message, threadId ?? null]);
    return { key, message, timestamp, threadId };
  });
}

/** Text a search can match in a block: its text, tool or component name, uri. */
export function blockText(b: Block): string {
  const parts: string[] = [];
  for (const key of ["text", "name", "componentName", "uri", "toolUseId", "id"]) {
    const v = str(b[key]);
    if (v) parts.push(v);
  }
  if (b.type === "tool_result") parts.push(...blocks(b.content).map(blockText));
  if (b.type === "tool_use" && b.input !== undefined) parts.push(JSON.stringify(b.input));
  if (b.type === "component" && b.props !== undefined) parts.push(JSON.stringify(b.props));
  return parts.join(" ");
}

export interface ThreadFilter {
  status: string;
  role: string;
  contentType: string;
  search: string;
}

export const NO_FILTER: ThreadFilter = { status: "", role: "", contentType: "", search: "" };

/** Whether one message passes the role / content-type / search parts of the filter. */
export function messageMatches(m: MessageView, f: ThreadFilter, q = f.search.trim().toLowerCase()): boolean {
  if (f.role && m.role !== f.role) return false;
  if (f.contentType && !m.content.some((b) => b.type === f.contentType)) return false;
  if (q && !m.content.some((b) => blockText(b).toLowerCase().includes(q))) return false;
  return true;
}

/** A thread passes when its status matches and it has a message passing the rest (the search also matches its
 * name or id). */
export function threadMatches(t: ThreadView, f: ThreadFilter): boolean {
  if (f.status && t.status !== f.status) return false;
  const q = f.search.trim().toLowerCase();
  const nameHit = q !== "" && (t.name.toLowerCase().includes(q) || t.id.toLowerCase().includes(q));
  if (!f.role && !f.contentType && (q === "" || nameHit)) return true;
  const messageFilter = nameHit ? { ...f, search: "" } : f;
  return t.messages.some((m) => messageMatches(m, messageFilter));
}

export function isFiltered(f: ThreadFilter): boolean {
  return f.status !== "" || f.role !== "" || f.contentType !== "" || f.search.trim() !== "";
}
