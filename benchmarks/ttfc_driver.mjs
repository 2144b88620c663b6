// Many streams at once, each timed to its first body bytes (TTFC) and to its end: the load side of
// benchmarks/ttfc_streams.py. Node, no dependencies: a Python client would itself saturate first.
//
//   node benchmarks/ttfc_driver.mjs URL BODY_JSON STREAMS RAMP_MS
//
// The streams start spread evenly over RAMP_MS (0: all at once), each on its own connection. Prints one
// JSON object: the count, errors, and TTFC and total times in ms (p50, p90, p99, max).
import http from "node:http";
import { performance } from "node:perf_hooks";

const [url, body, streamsText, rampText] = process.argv.slice(2);
const streams = Number(streamsText);
const ramp = Number(rampText || 0);
const target = new URL(url);
const payload = Buffer.from(body);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const ttfc = [];
const totals = [];
let errors = 0;
let firstError = null;

function one() {
  return new Promise((resolve) => {
    const started = performance.now();
    let first = null;
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": payload.length },
      },
      (res) => {
        if (res.statusCode !== 200) {
          errors += 1;
          firstError ??= `HTTP ${res.statusCode}`;
        }
        res.on("data", () => {
          if (first === null) first = performance.now() - started;
        });
        res.on("end", () => {
          if (first !== null) ttfc.push(first);
          totals.push(performance.now() - started);
          resolve();
        });
        res.on("error", (err) => {
          errors += 1;
          firstError ??= String(err);
          resolve();
        });
      },
    );
    req.on("error", (err) => {
      errors += 1;
      firstError ??= String(err);
      resolve();
    });
    req.end(payload);
  });
}

function summary(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const round = (v) => Math.round(v * 100) / 100;
  return { p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), max: round(sorted.at(-1)) };
}

const runs = [];
const began = performance.now();
for (let i = 0; i < streams; i += 1) {
  const due = streams > 1 ? (ramp * i) / (streams - 1) : 0;
  const wait = due - (performance.now() - began);
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  runs.push(one());
}
await Promise.all(runs);
console.log(
  JSON.stringify({
    streams,
    ramp_ms: ramp,
    completed: totals.length,
    errors,
    first_error: firstError,
    ttfc_ms: summary(ttfc),
    total_ms: summary(totals),
    wall_ms: Math.round(performance.now() - began),
  }),
);
