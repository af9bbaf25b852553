/** The edge worker's entry: wiring only; the routes live in router.ts, the hot read's fast path in hot-read.ts. */
import { hotRead } from "./hot-read";
import { router } from "./router";

export default {
  fetch: (request, env, ctx) => hotRead(request, env, ctx) ?? router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
