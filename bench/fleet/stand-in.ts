/**
 * A stand-in for many edge nodes, for the fleet benchmark only: one HTTP
 * server on loopback that answers SPEC §5's `POST /v1/prewarm` for every
 * node at `/n/<i>/v1/prewarm`, after a fixed latency, warming nothing (it
 * is not an edge node: it checks the token and the batch and says every SKU
 * was warmed from the edge). Run as its own process so that it does not share
 * an event loop with the scheduler being measured.
 *
 *   tsx bench/fleet/stand-in.ts <port> <latencyMs> <token>
 *
 * Prints `stand-in listening on <port>` when ready; counts batches by node on
 * `GET /stats`.
 */
import { createServer } from "node:http";
import { readCapped } from "../../contract/http";
import type { PrewarmAnswer, PrewarmRequest } from "../../contract/prewarm";

const [port, latencyMs, token] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] ?? ""];
const batches = new Map<string, number>();

createServer((req, res) => {
  const m = /^\/n\/(\d+)\/v1\/prewarm$/.exec(req.url ?? "");
  if (req.url === "/stats") {
    res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ batches: Object.fromEntries(batches) }));
    return;
  }
  if (!m || req.method !== "POST") {
    res.writeHead(404).end();
    return;
  }
  if (req.headers.authorization !== `Bearer ${token}`) {
    res.writeHead(401).end();
    return;
  }
  void readCapped(req, 256 * 1024).then((bytes) => {
    if (bytes === null) return void res.writeHead(413).end();
    const body = JSON.parse(Buffer.from(bytes).toString("utf8")) as PrewarmRequest;
    setTimeout(() => {
      batches.set(m[1]!, (batches.get(m[1]!) ?? 0) + 1);
      const answer: PrewarmAnswer = { jobId: body.jobId ?? "", region: body.region ?? "", warmed: body.skus.length, fromEdge: body.skus.length, fromRegional: 0, failed: [], durationMs: latencyMs };
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(answer));
    }, latencyMs);
  });
}).listen(port, "127.0.0.1", () => console.log(`stand-in listening on ${port}`));
