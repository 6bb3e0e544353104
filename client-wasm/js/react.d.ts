import type { DevtoolsConnection, DevtoolsConnectionOptions, DevtoolsState } from "./devrelay_client.js";

export type { DevtoolsConnectionOptions, DevtoolsState } from "./devrelay_client.js";

/**
 * Connects to the relay when the component mounts (loading the wasm on first use), closes and frees the
 * connection on unmount or when the options' content changes. Re-renders once per burst of state changes.
 * `connection` is null until the wasm has loaded; use it for actions (selectSession, requestSnapshot, ...).
 */
export function useDevtoolsConnection(
  options?: DevtoolsConnectionOptions,
): DevtoolsState & { connection: DevtoolsConnection | null };
