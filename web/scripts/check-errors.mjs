// Fails when an error code the server can answer (src/api/error.rs) or a job can fail with
// (reconcilers/src/error_code.rs) has no message in src/errors.ts.
import { readFileSync } from 'node:fs'

const root = new URL('../../', import.meta.url).pathname
const ts = readFileSync(new URL('../src/errors.ts', import.meta.url), 'utf8')
const mapped = new Set([...ts.matchAll(/^\s+([A-Za-z_0-9]+):/gm)].map((m) => m[1]))
const api = readFileSync(`${root}src/api/error.rs`, 'utf8')
const fnCode = api.slice(api.indexOf('pub fn code('), api.indexOf('pub fn status('))
const codes = [...fnCode.matchAll(/=> "([a-z_]+)"/g)].map((m) => m[1])
const jobs = readFileSync(`${root}reconcilers/src/error_code.rs`, 'utf8')
codes.push(...[...jobs.matchAll(/=> "([A-Z][A-Z_0-9]+)"/g)].map((m) => m[1]))
const missing = [...new Set(codes)].filter((c) => !mapped.has(c))
if (missing.length) {
  console.error(`web/src/errors.ts has no message for: ${missing.join(', ')} (add one line per code)`)
  process.exit(1)
}
console.log(`web/src/errors.ts maps all ${new Set(codes).size} error codes`)
