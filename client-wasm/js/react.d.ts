import type { ReactElement, ReactNode } from "react";
import type {
  ChannelMessage,
  DevtoolsConnection,
  DevtoolsConnectionOptions,
  DevtoolsOptionsError,
  DevtoolsRequestError,
  DevtoolsState,
  MetricsUpdate,
} from "./devrelay_client.js";

export type {
  ChannelMessage,
  DevtoolsConnectionOptions,
  DevtoolsOptionsError,
  DevtoolsRequestError,
  DevtoolsState,
  MetricsUpdate,
} from "./devrelay_client.js";

/** What `useDevtoolsConnection` returns (and `useDevtools` reads from the provider). */
export type DevtoolsConnectionState = DevtoolsState & {
  connection: DevtoolsConnection | null;
  optionsError: DevtoolsOptionsError | null;
};

/**
 * Connects to the relay when the component mounts (loading the wasm on first use), closes and frees the
 * connection on unmount or when the options' content changes. Re-renders once per burst of state changes.
 * `connection` is null until the wasm has loaded; use it for actions (selectSession, requestSnapshot, ...).
 * Invalid options never throw out of the hook: the state is `closed` with the message in `error`, and
 * `optionsError` holds the constructor's `DevtoolsOptionsError` (its `field` says which option) until the options
 * change.
 */
export function useDevtoolsConnection(options?: DevtoolsConnectionOptions): DevtoolsConnectionState;

/** One connection (`useDevtoolsConnection(options)`) for the subtree: `useDevtools`, `useChannel` and
 *  `useMetrics` below it use it. */
export function DevtoolsProvider(props: { options?: DevtoolsConnectionOptions; children?: ReactNode }): ReactElement;

/** The nearest `DevtoolsProvider`'s state and connection; throws outside one. */
export function useDevtools(): DevtoolsConnectionState;

export interface UseChannelOptions {
  /** Messages kept, an integer 1..=100_000 (else a RangeError). Default 200. */
  limit?: number | null;
  /** The connection to use instead of the provider's (null: not loaded yet, nothing subscribed). */
  connection?: DevtoolsConnection | null;
}

/** A channel's recent messages, oldest first. */
export interface ChannelFeed<T = unknown> {
  messages: readonly ChannelMessage<T>[];
  /** Messages that arrived since the hook subscribed. */
  total: number;
  /** Of those, let go because `limit` were kept. */
  dropped: number;
  /** The relay's refusal of the subscription (or `LEGACY_RELAY`), if any. */
  error: DevtoolsRequestError | null;
  /** `Date.now()` when the last message arrived; null before the first. */
  receivedAt: number | null;
}

/** The recent messages of `channel` (or of several, merged in arrival order; null: none), bounded by `limit`.
 *  Subscribes while mounted (the connection renews it after reconnects); re-renders at most once per animation
 *  frame. */
export function useChannel<T = unknown>(
  channel: string | readonly string[] | null,
  options?: UseChannelOptions,
): ChannelFeed<T>;

/** One `metric.update`, with the relay's publication time. */
export interface MetricsSample extends MetricsUpdate {
  timestamp: number;
}

export interface RealtimeMetrics {
  /** The latest `metric.update`; null until the first. */
  metrics: MetricsUpdate | null;
  /** The last `history` updates, oldest first (for charts). */
  history: readonly MetricsSample[];
  /** When the relay published the latest (ms). */
  updatedAt: number | null;
  /** When the latest arrived here (`Date.now()`). */
  receivedAt: number | null;
  error: DevtoolsRequestError | null;
}

/** The relay's metrics (the `metrics` channel, every `--metrics-interval-secs`): latest and a bounded history. */
export function useMetrics(options?: {
  /** Updates kept, an integer 1..=100_000. Default 120 (ten minutes at the relay's default 5 s). */
  history?: number | null;
  connection?: DevtoolsConnection | null;
}): RealtimeMetrics;
