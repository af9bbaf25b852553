/**
 * The registry's URL allow-list (`nodeUrlAllow`): patterns matched against the
 * parsed URL, part by part, so that no user part, path, query or fragment walks
 * a URL around it; through the ops API and the CLI with a real Redis.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, type SchedulerConfigInput } from "../../prewarm-scheduler/config/config";
import { Engine } from "../../prewarm-scheduler/runs/engine";
import { opsApp } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import { isInvalidFileError } from "../../prewarm-scheduler/config/schema-errors";
import { allowedUrl, parseUrlPattern, parseUrlPatterns } from "../../prewarm-scheduler/config/url-allow";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** pattern -> [URL, the URL as kept when allowed, or null when refused] */
const CASES: Record<string, [string, string | null][]> = {
  "http://10.0.*.*:8787": [
    ["http://10.0.1.5:8787", "http://10.0.1.5:8787"],
    ["http://10.0.1.5:8787/", "http://10.0.1.5:8787"],
    ["HTTP://10.0.1.5:8787", "http://10.0.1.5:8787"],
    // What fetch connects to: the same address, written canonically.
    ["http://10.0.1.5.:8787", "http://10.0.1.5:8787"],
    ["http://0x0a.0.1.5:8787", "http://10.0.1.5:8787"],
    ["http://10.0.258:8787", "http://10.0.1.2:8787"],
    // The walk-around and its relatives: a user part puts the host after the @.
    ["http://10.0.1.5@evil.example:8787", null],
    ["http://10.0.1.5:x@evil.example:8787", null],
    ["http://10.0.1.5:8787@evil.example:8787", null],
    ["http://10.0.1.5%40evil.example:8787", null],
    ["http://10.0.1.5%2f.evil.example:8787", null],
    ["http://10.0.1.5.evil.example:8787", null],
    ["http://evil.example:8787/10.0.1.5:8787", null],
    ["http://10.0.1.5:8787\\@evil.example", null],
    ["http://[::ffff:10.0.1.5]:8787", null],
    ["http://10.0.1.5:8787/x", null],
    ["http://10.0.1.5:8787?x=1", null],
    ["http://10.0.1.5:8787/?", null],
    ["http://10.0.1.5:8787#f", null],
    ["http://10.0.1.5:8787/#", null],
    ["http://10.0.1.5:8788", null],
    ["http://10.0.1.5", null],
    ["https://10.0.1.5:8787", null],
    ["http://10.1.1.5:8787", null],
    ["not a url", null],
  ],
  "https://*.edge.example.com": [
    ["https://sh-1.edge.example.com", "https://sh-1.edge.example.com"],
    ["HTTPS://SH-1.EDGE.Example.COM/", "https://sh-1.edge.example.com"],
    ["https://sh-1.edge.example.com:443", "https://sh-1.edge.example.com"],
    ["https://sh%2D1.edge.example.com", "https://sh-1.edge.example.com"],
    // The walk-around and its relatives: the allowed-looking text in a path, query, fragment or user part.
    ["https://evil.example/a.edge.example.com", null],
    ["https://evil.example/.edge.example.com", null],
    ["https://evil.example?.edge.example.com", null],
    ["https://evil.example#.edge.example.com", null],
    ["https://a.edge.example.com@evil.example", null],
    ["https://evil.example%2f.edge.example.com", null],
    ["https://evil.example%23.edge.example.com", null],
    ["https://evil%40x.edge.example.com", null],
    ["https://evil.example%2eedge.example.com", null],
    ["https://a.edge.example.com.evil.example", null],
    ["https://a.edge.example.com.", null],
    ["https://a.b.edge.example.com", null],
    ["https://edge.example.com", null],
    ["https://a!b.edge.example.com", null],
    ["https://*.edge.example.com", null],
    ["https://a.edge.example.com:8443", null],
    ["https://a.edge.example.com/v1", null],
    ["http://a.edge.example.com", null],
    ["https://[::1]", null],
  ],
  "http://edge-*.example.com:8787": [
    ["http://edge-sh1.example.com:8787", "http://edge-sh1.example.com:8787"],
    ["http://edge-.example.com:8787", null],
    ["http://edge-a.b.example.com:8787", null],
    ["http://edge.example.com:8787", null],
    ["http://xedge-a.example.com:8787", null],
  ],
  "http://[0:0::1]:8787": [
    ["http://[::1]:8787", "http://[::1]:8787"],
    ["http://[0:0:0:0:0:0:0:1]:8787/", "http://[::1]:8787"],
    ["http://[::2]:8787", null],
    ["http://[::1]:8788", null],
    ["http://127.0.0.1:8787", null],
    ["http://[::1]@evil.example:8787", null],
  ],
  "https://gw.example.com/edge/sh-1": [
    ["https://gw.example.com/edge/sh-1", "https://gw.example.com/edge/sh-1"],
    ["https://gw.example.com/edge/sh-1/", "https://gw.example.com/edge/sh-1"],
    ["https://gw.example.com/edge/x/../sh-1", "https://gw.example.com/edge/sh-1"],
    ["https://gw.example.com/", null],
    ["https://gw.example.com/edge/sh-1/x", null],
    ["https://gw.example.com/edge/sh-1%2F..%2Fadmin", null],
    ["https://gw.example.com/edge/sh-2", null],
    ["https://gw.example.com/edge/sh-1?x", null],
  ],
};

describe("nodeUrlAllow patterns", () => {
  for (const [pattern, cases] of Object.entries(CASES)) {
    describe(pattern, () => {
      const patterns = [parseUrlPattern(pattern)];
      it.each(cases)("%s -> %s", (url, want) => {
        expect(allowedUrl(url, patterns)).toBe(want);
      });
    });
  }

  it("matches a URL against any pattern of the list", () => {
    const patterns = parseUrlPatterns(["http://10.0.*.*:8787", "https://*.edge.example.com"]);
    expect(allowedUrl("https://a.edge.example.com", patterns)).toBe("https://a.edge.example.com");
    expect(allowedUrl("http://10.0.0.7:8787", patterns)).toBe("http://10.0.0.7:8787");
    expect(allowedUrl("http://10.0.1.5@evil.example:8787", patterns)).toBeNull();
    expect(allowedUrl("https://evil.example/a.edge.example.com", patterns)).toBeNull();
    expect(allowedUrl("http://10.0.0.7:8787", [])).toBeNull();
  });

  it.each([
    ["http://10.0.*:8787", /an IPv4 pattern has four parts, \* standing for one part \(e\.g\. 10\.0\.\*\.\*\)/],
    ["http://10.0.*.*:*", /the port must be a number 1\.\.65535/],
    ["http://*.example.com:0", /the port must be a number/],
    ["ftp://*.example.com", /the scheme must be http or https/],
    ["*.example.com", /must be scheme:\/\/host/],
    ["http://user@*.example.com", /no user part/],
    ["http://*.example.com/?x", /no user part, query or fragment/],
    ["http://*.example.com#x", /no user part, query or fragment/],
    ["http://[::*]:8787", /an IPv6 address is matched exactly/],
    ["http://[zz]:8787", /\[zz\] is not an IPv6 address/],
    ["http://:8787", /the host is missing/],
    ["http://*.example.com.", /must not end with a dot/],
    ["http://a..example.com", /empty label/],
    ["http://*.exa%6dple.com", /host label "exa%6dple" may hold only/],
    ["http://bücher.example", /xn-- form/],
    ["http://10.0.1.256:8787", /IPv4 part 256 must be 0\.\.255/],
    ["http://010.0.1.5:8787", /IPv4 part 010 must be 0\.\.255 without leading zeros/],
    ["http://edge.5", /must not end in a number/],
    ["http://*.example.com/a/*", /the path may hold only/],
    ["http://*.example.com/a/../b", /the path may hold only/],
    ["http://*.example.com/a%2Fb", /the path may hold only/],
  ])("refuses the pattern %s, saying why", (pattern, why) => {
    expect(() => parseUrlPattern(pattern)).toThrow(why);
  });

  it("a pattern that cannot be read is a config error naming it, at start-up", () => {
    let err: unknown;
    try {
      parseConfig({ token: "t", nodeUrlAllow: ["https://*.edge.example.com", "http://10.0.*:8787"] });
    } catch (e) {
      err = e;
    }
    expect(isInvalidFileError(err)).toBe(true);
    expect(isInvalidFileError(err) && err.problems).toEqual(['nodeUrlAllow[1]: "http://10.0.*:8787": an IPv4 pattern has four parts, * standing for one part (e.g. 10.0.*.*)']);
  });
});

describe("the registry refuses walk-around URLs", () => {
  let redis: RedisProcess;
  const engines: Engine[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.close()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const config = (o: Partial<SchedulerConfigInput> = {}) =>
    parseConfig({
      redis: redis.url,
      prefix: `allow-${Math.random().toString(36).slice(2, 10)}`,
      token: "fleet-secret",
      nodeUrlAllow: ["http://10.0.*.*:8787", "https://*.edge.example.com"],
      registryToken: "reg-secret",
      ...o,
    });
  const engine = (o: Partial<SchedulerConfigInput> = {}): Engine => {
    const e = new Engine(config(o));
    engines.push(e);
    return e;
  };
  const post = (app: ReturnType<typeof opsApp>, route: string, body: unknown, token?: string): Promise<Response> =>
    Promise.resolve(app.request(route, { method: "POST", headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) }));

  it("POST /v1/nodes/announce and POST /v1/nodes refuse them with a 400 naming the rule, not the URL; an allowed URL is kept as parsed", async () => {
    const e = engine();
    const app = opsApp(e);
    for (const url of ["http://10.0.1.5@evil.example:8787", "https://evil.example/a.edge.example.com", "https://a.edge.example.com@evil.example", "http://10.0.1.5:8787#evil.example"]) {
      for (const [route, token] of [["/v1/nodes/announce", "reg-secret"], ["/v1/nodes", undefined]] as const) {
        const res = await post(app, route, { name: "edge-x", url, region: "cn-east" }, token);
        const text = await res.text();
        expect([route, url, res.status]).toEqual([route, url, 400]);
        expect(JSON.parse(text)).toEqual({
          error: { code: "bad_request", message: expect.any(String), details: ["url: not allowed by the config's nodeUrlAllow (the fleet's token is only sent to the URLs the operator allows)"] },
        });
        expect(text).not.toContain("evil");
      }
    }
    expect(await e.registry.list()).toEqual([]);

    const joined = await post(app, "/v1/nodes/announce", { name: "edge-sh-1", url: "HTTPS://SH-1.Edge.Example.com:443/", region: "cn-east" }, "reg-secret");
    expect(joined.status).toBe(200);
    expect(await joined.json()).toMatchObject({ name: "edge-sh-1", url: "https://sh-1.edge.example.com", source: "announced" });
    expect((await e.fleet()).map((n) => [n.name, n.url])).toEqual([["edge-sh-1", "https://sh-1.edge.example.com"]]);
  });

  it("an entry stored before (by a laxer check, or before the allow-list was narrowed) is refused: listed as such, left out of the fleet", async () => {
    const e = engine();
    const now = Date.now();
    const entry = (name: string, url: string) => JSON.stringify({ name, url, region: "cn-east", source: "added", lastSeen: now });
    await e.redis.hset(`${e.cfg.prefix}:registry`, "edge-old", entry("edge-old", "http://10.0.1.5@evil.example:8787"), "edge-ok", entry("edge-ok", "http://10.0.1.6:8787"));
    expect((await e.registry.list()).map((n) => [n.name, n.state])).toEqual([["edge-ok", "live"], ["edge-old", "refused"]]);
    expect((await e.fleet()).map((n) => n.name)).toEqual(["edge-ok"]);
  });

  it("prewarm nodes add refuses them, naming the rule, not the URL", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-allow-"));
    const configFile = path.join(dir, "config.yaml");
    const cfg = config();
    writeFileSync(configFile, stringify({ redis: cfg.redis, prefix: cfg.prefix, token: cfg.token, nodeUrlAllow: cfg.nodeUrlAllow }));
    try {
      for (const url of ["http://10.0.1.5@evil.example:8787", "https://evil.example/a.edge.example.com"]) {
        const r = await cli(["nodes", "add", "edge-x", url, "cn-east", "--config", configFile]);
        expect([url, r.code]).toEqual([url, 2]);
        expect(r.err).toMatch(/url: not allowed by the config's nodeUrlAllow/);
        expect(r.err).not.toContain("evil");
      }
      const ok = await cli(["nodes", "add", "edge-x", "http://10.0.1.7:8787", "cn-east", "--config", configFile]);
      expect([ok.code, ok.err]).toEqual([0, ""]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/** Runs the `prewarm` CLI to its exit (`node --import tsx`, as scheduler.test.ts does). */
function cli(args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, err });
    });
  });
}
