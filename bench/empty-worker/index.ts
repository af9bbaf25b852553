/** An empty worker: the floor of what any answer from this workerd setup costs. */
const BODY = JSON.stringify({ ok: true });

export default {
  fetch: () => new Response(BODY, { headers: { "Content-Type": "application/json" } }),
};
