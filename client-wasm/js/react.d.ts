import type {
  DevtoolsConnection,
  DevtoolsConnectionOptions,
  DevtoolsOptionsError,
  DevtoolsState,
} from "./devrelay_client.js";

export type { DevtoolsConnectionOptions, DevtoolsOptionsError, DevtoolsState } from "./devrelay_client.js";

/**
 * Connects to the relay when the component mounts (loading the wasm on first use), closes and frees the
 * connection on unmount or when the options' content changes. Re-renders once per burst of state changes.
 * `connection` is null until the wasm has loaded; use it for actions (selectSession, requestSnapshot, ...).
 * Invalid options never throw out of the hook: the state is `closed` with the message in `error`, and
 * `optionsError` holds the constructor's `DevtoolsOptionsError` (its `field` says which option) until the options
 * change.
 */
export function useDevtoolsConnection(
  options?: DevtoolsConnectionOptions,
): DevtoolsState & { connection: DevtoolsConnection | null; optionsError: DevtoolsOptionsError | null };
