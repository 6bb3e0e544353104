// The Live view's message filters and one-line previews: pure functions over the channel messages the relay
// delivered (ChannelMessage from devrelay-client), so the view only lays them out.

import type { ChannelMessage } from "devrelay-client";

/** The channels the Live view listens to: everything a dashboard may subscribe to. */
export const LIVE_CHANNELS = ["global", "metrics", "sessions/*", "agents/*", "topics/*"] as const;

/** Longest preview, in characters. */
const PREVIEW_MAX = 160;

const previews = new WeakMap<ChannelMessage, string>();
const haystacks = new WeakMap<ChannelMessage, string>();

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** What a preview shows of the data: a session's `stream_event` is the SDK's whole message, its AG-UI event is
 * the interesting part; a snapshot is summed up; anything else is shown whole. */
function previewed(m: ChannelMessage): unknown {
  const d = m.data;
  if (m.event === "stream_event" && isObject(d) && isObject(d.event)) return d.event;
  if (m.event === "state_snapshot" && isObject(d)) {
    const threads = Array.isArray(d.threads) ? d.threads.length : 0;
    const registry = isObject(d.registry) ? d.registry : {};
    const tools = Array.isArray(registry.tools) ? registry.tools.length : 0;
    const components = Array.isArray(registry.components) ? registry.components.length : 0;
    return { threads, tools, components };
  }
  return d;
}

/** The message's data as one line of JSON, cut at PREVIEW_MAX (computed once per message). */
export function preview(m: ChannelMessage): string {
  let p = previews.get(m);
  if (p === undefined) {
    const json = JSON.stringify(previewed(m)) ?? "null";
    p = json.length > PREVIEW_MAX ? `${json.slice(0, PREVIEW_MAX - 1)}…` : json;
    previews.set(m, p);
  }
  return p;
}

/** What free text is searched in: channel, event and the whole data, lower-cased (computed once per message). */
function haystack(m: ChannelMessage): string {
  let h = haystacks.get(m);
  if (h === undefined) {
    h = `${m.channel}\n${m.event}\n${JSON.stringify(m.data) ?? ""}`.toLowerCase();
    haystacks.set(m, h);
  }
  return h;
}

export interface LiveFilter {
  /** "" (all), a namespace pattern (`sessions/*`) or one channel. */
  channel: string;
  /** "" (all) or one event name. */
  event: string;
  /** Free text, matched case-insensitively against channel, event and data. */
  text: string;
}

export const NO_FILTER: LiveFilter = { channel: "", event: "", text: "" };

/** Whether `channel` is `pattern` or in its namespace (`sessions/*`). */
export function inChannel(pattern: string, channel: string): boolean {
  if (pattern === "") return true;
  if (pattern.endsWith("/*")) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}

export function matches(m: ChannelMessage, f: LiveFilter): boolean {
  if (!inChannel(f.channel, m.channel)) return false;
  if (f.event !== "" && m.event !== f.event) return false;
  const text = f.text.trim().toLowerCase();
  return text === "" || haystack(m).includes(text);
}

/** Most distinct channels / events offered in the filter menus (the rest are still reachable by text). */
const MENU_MAX = 50;

/** The distinct channels and events among `messages`, sorted, at most MENU_MAX each. */
export function seen(messages: readonly ChannelMessage[]): { channels: string[]; events: string[] } {
  const channels = new Set<string>();
  const events = new Set<string>();
  for (const m of messages) {
    if (channels.size < MENU_MAX) channels.add(m.channel);
    if (events.size < MENU_MAX) events.add(m.event);
  }
  return { channels: [...channels].sort(), events: [...events].sort() };
}

/** A stable React key: a channel's (epoch, offset) names one publication. */
export function messageKey(m: ChannelMessage): string {
  return `${m.channel}\u0000${m.epoch}\u0000${m.offset}`;
}

/** The namespace of a channel, for its colour: global, metrics, sessions, agents, topics. */
export function namespaceOf(channel: string): string {
  const slash = channel.indexOf("/");
  return slash < 0 ? channel : channel.slice(0, slash);
}
