/** A minimal Chrome DevTools Protocol session with a workerd process's inspector (profiles, heap usage). */

/** A minimal CDP session over the inspector's WebSocket. */
export async function inspect(port: number): Promise<{ send(method: string, params?: object): Promise<unknown>; close(): void }> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { webSocketDebuggerUrl: string }[];
  const target = targets[0];
  if (!target) throw new Error(`no inspector target on port ${port}`);
  // wrangler's inspector proxy wants an Origin of localhost; Node's WebSocket
  // (undici) takes extra handshake headers in its non-standard init object.
  const init = { headers: { Origin: "http://127.0.0.1" } } as unknown as string[];
  const ws = new WebSocket(target.webSocketDebuggerUrl, init);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", reject, { once: true });
  });
  let id = 0;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.addEventListener("message", (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve) => {
        waiting.set(++id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}
