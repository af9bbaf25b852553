/**
 * The registry's URL allow-list (`nodeUrlAllow`): which URLs may receive the
 * fleet's token. A pattern is read once, at start-up, into its parts; a URL
 * is parsed (WHATWG, as `fetch` will parse it) and compared part by part, so
 * no user part, path or fragment can carry an allowed-looking text past it.
 *
 *   scheme   `http` or `https`, exact
 *   host     DNS labels, `*` standing for one label or part of one (never a
 *            `.`): `*.edge.example.com`, `edge-*.example.com`; an IPv4
 *            address in four parts, `*` one part: `10.0.*.*`; an IPv6
 *            literal in brackets, exact (no `*`)
 *   port     exact (absent: the scheme's default)
 *   path     absent (the URL's path must be `/`) or a prefix such as `/edge`,
 *            which the URL's path must equal
 *
 * A URL with a user part, a query or a fragment never matches, nor one whose
 * host ends with a dot.
 */

/** A `nodeUrlAllow` entry that cannot be read; the message names it. */
export class UrlPatternError extends Error {
  constructor(pattern: string, why: string) {
    super(`${JSON.stringify(pattern)}: ${why}`);
    this.name = "UrlPatternError";
  }
}

/** A pattern read into its parts. */
export interface UrlPattern {
  /** `http:` or `https:` (as `URL.protocol`). */
  scheme: string;
  /** An IPv6 literal as `URL.hostname` writes it (`[::1]`), or one matcher per label. */
  host: { ipv6: string } | { labels: (string | RegExp)[] };
  /** As `URL.port`: "" for the scheme's default. */
  port: string;
  /** "" (the URL's path must be `/`) or `/a/b`, without a trailing slash. */
  path: string;
}

const SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(\[[^\]]*\]|[^/:?#@[\]\\]*)(?::([^/?#]*))?(\/[^?#]*)?$/;
/** What a label may hold: letters, digits, `-` and `_` (docker service names), and `*` in a pattern. */
const LABEL = /^[a-z0-9_*-]+$/;
/** What a `*` stands for: one or more of a label's characters, never a `.`. */
const STAR = "[a-z0-9_-]+";
const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/** Reads a pattern; a `UrlPatternError` saying what is wrong with it otherwise. */
export function parseUrlPattern(pattern: string): UrlPattern {
  const fail = (why: string): never => {
    throw new UrlPatternError(pattern, why);
  };
  const m = SHAPE.exec(pattern);
  if (!m) return fail("must be scheme://host[:port][/path], with no user part, query or fragment");
  const scheme = `${m[1]!.toLowerCase()}:`;
  if (scheme !== "http:" && scheme !== "https:") fail("the scheme must be http or https");
  const rawHost = m[2]!;
  let host: UrlPattern["host"];
  if (rawHost.startsWith("[")) {
    if (rawHost.includes("*")) fail("an IPv6 address is matched exactly: no * inside [...]");
    let parsed: string | null = null;
    try {
      parsed = new URL(`http://${rawHost}`).hostname;
    } catch {
      // named below
    }
    if (parsed === null) fail(`${rawHost} is not an IPv6 address`);
    host = { ipv6: parsed! };
  } else {
    const name = rawHost.toLowerCase();
    if (name === "") fail("the host is missing");
    if (name.endsWith(".")) fail("the host must not end with a dot");
    const labels = name.split(".");
    for (const l of labels) {
      if (l === "") fail("the host has an empty label (..)");
      if (!LABEL.test(l)) fail(`host label ${JSON.stringify(l)} may hold only letters, digits, - and _ (an international name in its xn-- form), and *`);
    }
    if (labels.every((l) => /^[0-9*]+$/.test(l)) && labels.some((l) => /[0-9]/.test(l))) {
      // An IPv4 address: a URL's host is written in four decimal parts (10.1 reads as 10.0.0.1).
      if (labels.length !== 4) fail(`an IPv4 pattern has four parts, * standing for one part (e.g. ${labels.concat(["*", "*", "*"]).slice(0, 4).join(".")})`);
      for (const l of labels) if (!l.includes("*") && (Number(l) > 255 || (l.length > 1 && l.startsWith("0")))) fail(`IPv4 part ${l} must be 0..255 without leading zeros`);
    } else if (/^[0-9]+$/.test(labels.at(-1)!)) {
      fail("a host name must not end in a number (a URL reads such a host as an IPv4 address)");
    }
    host = { labels: labels.map((l) => (l.includes("*") ? new RegExp(`^${l.split("*").join(STAR)}$`) : l)) };
  }
  let port = m[3] ?? "";
  if (m[3] !== undefined) {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) fail("the port must be a number 1..65535 (a port is matched exactly: no *)");
    port = String(Number(port));
    if (port === (scheme === "http:" ? "80" : "443")) port = ""; // as URL.port writes a default port
  }
  let path = (m[4] ?? "").replace(/\/$/, "");
  if (path !== "") {
    const segments = path.slice(1).split("/");
    if (segments.some((s) => !SEGMENT.test(s) || s === "." || s === "..")) fail("the path may hold only letters, digits, . _ ~ - in / separated segments (no *, no % escapes, no . or ..)");
    path = `/${segments.join("/")}`;
  }
  return { scheme, host, port, path };
}

/** Reads every pattern of a list. */
export function parseUrlPatterns(patterns: readonly string[]): UrlPattern[] {
  return patterns.map(parseUrlPattern);
}

function hostMatches(hostname: string, want: UrlPattern["host"]): boolean {
  if ("ipv6" in want) return hostname === want.ipv6;
  if (hostname.startsWith("[") || hostname.endsWith(".")) return false;
  const labels = hostname.split(".");
  return labels.length === want.labels.length && want.labels.every((w, i) => (typeof w === "string" ? labels[i] === w : w.test(labels[i]!)));
}

/**
 * The URL as it will be used (scheme, host, port and path, rebuilt from its
 * parsed parts) when it matches one of `patterns`; null when it matches none
 * or is not a URL.
 */
export function allowedUrl(url: string, patterns: readonly UrlPattern[]): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  // `?` and `#` can only be in the serialization as a query's or fragment's start, even an empty one.
  if (u.username !== "" || u.password !== "" || u.href.includes("?") || u.href.includes("#")) return null;
  const path = u.pathname === "/" ? "" : u.pathname.replace(/\/$/, "");
  const p = patterns.find((p) => p.scheme === u.protocol && p.port === u.port && p.path === path && hostMatches(u.hostname, p.host));
  return p ? `${u.protocol}//${u.host}${path}` : null;
}
