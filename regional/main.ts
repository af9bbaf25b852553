/**
 * Runs the reference regional aggregator:
 *   REGIONAL_PORT (8788), REGIONAL_REDIS_URL (redis://127.0.0.1:6380),
 *   REGIONAL_TOKEN, REGIONAL_ADMIN_TOKEN, REDIS_KEY_PREFIX (sku:).
 * SIGUSR2 toggles a full outage; SIGTERM/SIGINT stop it.
 */
import { startRegional } from "./server";

const env = process.env;
const regional = await startRegional({
  redisUrl: env["REGIONAL_REDIS_URL"] ?? "redis://127.0.0.1:6380",
  port: Number(env["REGIONAL_PORT"] ?? 8788),
  host: env["REGIONAL_HOST"] ?? "127.0.0.1",
  token: env["REGIONAL_TOKEN"] ?? "",
  adminToken: env["REGIONAL_ADMIN_TOKEN"] ?? "",
  keyPrefix: env["REDIS_KEY_PREFIX"] ?? "sku:",
});
console.log(`regional aggregator on ${regional.url}`);
process.on("SIGUSR2", () => {
  regional.faults.outage = !regional.faults.outage;
  console.log(`outage ${regional.faults.outage ? "on" : "off"}`);
});
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => void regional.close().then(() => process.exit(0)));
}
