/** The edge worker's entry: wiring only; the routes live in http/router.ts, the warmed read's fast path in http/hot-read.ts. */
import { hotRead } from "./http/hot-read";
import { router } from "./http/router";

export default {
  fetch: (request, env, ctx) => hotRead(request, env, ctx) ?? router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
