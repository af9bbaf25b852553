/**
 * nginx serving one JSON file on loopback: the static reverse cache a warmed
 * read is compared with. Started in the foreground with a generated config in
 * a temp dir; installed with apt-get when missing and running as root (as
 * .ci/run does for redis-server), else the row is skipped with a message.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../scripts/redis-server";

export interface Nginx {
  url: string;
  stop(): Promise<void>;
}

function nginxBin(): string | null {
  for (const p of ["/usr/sbin/nginx", "/usr/bin/nginx"]) {
    try {
      execFileSync(p, ["-v"], { stdio: "ignore" });
      return p;
    } catch {
      // not there
    }
  }
  if (process.getuid?.() !== 0) return null;
  console.error("bench: installing nginx (apt-get)");
  try {
    execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
    execFileSync("apt-get", ["install", "-y", "-qq", "nginx-light"], { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  } catch {
    return null;
  }
  return nginxBin();
}

/** Serves `body` as /sku.json, or null when nginx cannot be had here. */
export async function startNginx(body: string): Promise<Nginx | null> {
  const bin = nginxBin();
  if (!bin) return null;
  const dir = mkdtempSync(path.join(tmpdir(), "edge-prewarm-nginx-"));
  const port = await freePort();
  writeFileSync(path.join(dir, "sku.json"), body);
  writeFileSync(
    path.join(dir, "nginx.conf"),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  default_type application/json;
  server { listen 127.0.0.1:${port}; root ${dir}; }
}
`,
  );
  const child: ChildProcess = spawn(bin, ["-c", path.join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}/sku.json`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 50) throw new Error("nginx did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        child.kill("SIGQUIT");
      }),
  };
}
