/** Calls the admin API in-process, with the admin key: every action passes the API's own checks. */
export type ApiCall = (
  method: string,
  path: string,
  init?: { json?: unknown; headers?: Record<string, string> },
) => Promise<Response>;
