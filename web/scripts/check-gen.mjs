// Fails when src/api/schema.d.ts is not what openapi-typescript makes of ../openapi/openapi.yaml.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dir = mkdtempSync(join(tmpdir(), 'pressluft-gen-'))
const out = join(dir, 'schema.d.ts')
try {
  execFileSync('node', ['node_modules/openapi-typescript/bin/cli.js', '../openapi/openapi.yaml', '-o', out], { stdio: ['ignore', 'ignore', 'inherit'] })
  const want = readFileSync(out, 'utf8')
  const have = readFileSync('src/api/schema.d.ts', 'utf8')
  if (want !== have) {
    console.error('web/src/api/schema.d.ts is stale: it differs from openapi/openapi.yaml. Regenerate it with: (cd web && npm run gen)')
    process.exit(1)
  }
  console.log('web/src/api/schema.d.ts matches openapi/openapi.yaml')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
