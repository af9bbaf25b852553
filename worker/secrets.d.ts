// Secrets and optional vars that are not in wrangler.toml's [vars] (and so not
// in the generated worker-configuration.d.ts): set with `wrangler secret put`,
// .dev.vars, or `--var` locally.
interface Env {
  PREWARM_TOKEN?: string;
  REGIONAL_TOKEN?: string;
  EDGE_REDIS_TIMEOUT_MS?: string;
}
