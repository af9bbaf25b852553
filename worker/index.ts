/** The edge worker's entry: wiring only; the routes live in router.ts. */
import { router } from "./router";

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
