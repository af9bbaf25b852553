/**
 * A loopback control endpoint for the workerd tests (which cannot spawn
 * processes): stop and start the real edge redis-server on its port, so a
 * test can take Redis away mid-run and give it back.
 */
import { createServer, type Server } from "node:http";
import { freePort, startRedis, type RedisProcess } from "../../scripts/redis-server";

export interface ControlServer {
  url: string;
  close(): Promise<void>;
}

export async function startControlServer(redis: { current: RedisProcess }): Promise<ControlServer> {
  const port = await freePort();
  const server: Server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      try {
        if (req.method === "POST" && req.url === "/edge-redis/stop") {
          await redis.current.stop();
          return reply(200, { stopped: true });
        }
        if (req.method === "POST" && req.url === "/edge-redis/start") {
          if (redis.current.process.exitCode === null && redis.current.process.signalCode === null) return reply(200, { running: true });
          redis.current = await startRedis({ port: redis.current.port });
          return reply(200, { started: true });
        }
        reply(404, { error: "no such control" });
      } catch (e) {
        reply(500, { error: (e as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
