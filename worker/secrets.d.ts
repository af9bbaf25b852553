// Secrets, optional vars and optional bindings that are not in wrangler.toml (and so not
// in the generated worker-configuration.d.ts): set with `wrangler secret put`,
// .dev.vars, or `--var` locally.
interface Env {
  PREWARM_TOKEN?: string;
  REGIONAL_TOKEN?: string;
  EDGE_REDIS_TIMEOUT_MS?: string;
  CACHE_NAME?: string;
  LOCAL_COPY_TTL_SECONDS?: string;
  /**
   * The global tier behind the Cache API on Cloudflare (optional: without it
   * a prewarm and a purge reach one data centre). Declared in wrangler.toml's
   * `[[kv_namespaces]]` once created (`wrangler kv namespace create`), so it
   * is not generated from the committed wrangler.toml.
   */
  AGGREGATES_KV?: KVNamespace;
}
