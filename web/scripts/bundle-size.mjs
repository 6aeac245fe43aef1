// Prints the gzipped size of the JavaScript a first visit loads (the entry chunk and its static
// imports, from Vite's manifest) and fails when it is over the target.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join } from 'node:path'

const TARGET_KB = 250
const dist = new URL('../dist/', import.meta.url).pathname
const manifest = JSON.parse(readFileSync(join(dist, '.vite/manifest.json'), 'utf8'))
const seen = new Set()
let raw = 0
let gz = 0
function visit(key) {
  if (seen.has(key)) return
  seen.add(key)
  const chunk = manifest[key]
  const bytes = readFileSync(join(dist, chunk.file))
  raw += bytes.length
  gz += gzipSync(bytes, { level: 9 }).length
  for (const dep of chunk.imports ?? []) visit(dep)
}
for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key)
let all = 0
for (const chunk of Object.values(manifest)) {
  if (chunk.file.endsWith('.js')) all += gzipSync(readFileSync(join(dist, chunk.file)), { level: 9 }).length
}
const kb = (n) => (n / 1024).toFixed(1)
console.log(`initial JS: ${kb(gz)} KB gzipped (${kb(raw)} KB raw, ${seen.size} chunk(s)) (target ${TARGET_KB})`)
console.log(`all JS: ${kb(all)} KB gzipped`)
if (gz > TARGET_KB * 1024) {
  console.error(`initial JS is over the target of ${TARGET_KB} KB gzipped`)
  process.exit(1)
}
