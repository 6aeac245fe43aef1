// The dashboard's acceptance flows in real headless Chromium against a real `pressluft serve`
// driving this machine: one serial suite on one page (so "no reload" can be checked across
// flows). Screenshots of the main screens go to target/screenshots/.
import { expect, request, test, type APIRequestContext, type Page } from '@playwright/test'
import { mkdirSync } from 'node:fs'

const EMAIL = process.env.PRESSLUFT_ADMIN_EMAIL ?? 'admin@example.com'
const PASSWORD = process.env.PRESSLUFT_ADMIN_PASSWORD ?? ''
const BASE = process.env.PRESSLUFT_URL ?? 'http://127.0.0.1:8080'
const SHOTS = new URL('../../target/screenshots/', import.meta.url).pathname
const suffix = Math.random().toString(36).slice(2, 8)
const SLUG = `bt-${suffix}`
const SITE_NAME = `Browser test ${suffix}`

test.describe.configure({ mode: 'serial' })

let page: Page
const problems: string[] = []
let expected401s = 0
let siteId = ''
const t0 = Date.now()
const step = (s: string) => console.log(`[browser ${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`)

async function shot(name: string) {
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true })
}

/** A marker on the window: it survives client-side navigation, not a page load. */
async function expectNoReload() {
  expect(await page.evaluate(() => (window as unknown as { __pressluftMarker?: string }).__pressluftMarker)).toBe('set')
}

test.beforeAll(async ({ browser }) => {
  mkdirSync(SHOTS, { recursive: true })
  page = await browser.newPage()
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    // The browser logs every 4xx answer; the only ones this suite provokes on purpose are the
    // wrong password (POST /api/login) and the session probe while logged out (GET /api/metrics).
    const url = m.location().url
    if (/status of 401/.test(m.text()) && /\/api\/(login|metrics)$/.test(url)) {
      expected401s++
      return
    }
    problems.push(`console error: ${m.text()} (${url})`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
})

test.afterAll(async () => {
  // Delete what this run created (unique slug), and wait until the node work is done.
  if (siteId) {
    step(`cleanup: deleting site ${SLUG}`)
    const api: APIRequestContext = await request.newContext({ baseURL: BASE, extraHTTPHeaders: { 'X-Pressluft-CSRF': '1' } })
    await api.post('/api/login', { data: { email: EMAIL, password: PASSWORD } })
    const site = await (await api.get(`/api/sites/${siteId}`)).json()
    await api.delete(`/api/sites/${siteId}?state_version=${site.state_version}`)
    const deadline = Date.now() + 180_000
    while (Date.now() < deadline) {
      if ((await api.get(`/api/sites/${siteId}`)).status() === 404) break
      await new Promise((r) => setTimeout(r, 1000))
    }
    step(`cleanup: site gone: ${(await api.get(`/api/sites/${siteId}`)).status() === 404}`)
    await api.dispose()
  }
  await page?.close()
})

test('log in (a wrong password shows the mapped error)', async () => {
  step('open the dashboard')
  await page.goto('/')
  await expect(page).toHaveURL(/\/login/)
  await shot('login')
  await page.getByLabel('E-mail').fill(EMAIL)
  await page.getByLabel('Password').fill('wrong password')
  await page.getByRole('button', { name: 'Log in' }).click()
  await expect(page.getByRole('alert')).toContainText('Wrong e-mail or password.')
  step('wrong password refused with the mapped message')
  // Client-side validation before submit.
  await page.getByLabel('E-mail').fill('not-an-email')
  await page.getByRole('button', { name: 'Log in' }).click()
  await expect(page.getByText('Enter your e-mail address.')).toBeVisible()
  // By keyboard: the fields are labelled and in order; Enter submits.
  await page.getByLabel('E-mail').fill(EMAIL)
  await page.keyboard.press('Tab')
  await expect(page.getByLabel('Password')).toBeFocused()
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  await expect(page).toHaveURL(/\/sites$/)
  await expect(page.getByRole('heading', { name: 'Sites', exact: true })).toBeVisible()
  await expect(page.getByRole('status').filter({ hasText: 'Live' })).toBeVisible()
  await page.evaluate(() => ((window as unknown as { __pressluftMarker?: string }).__pressluftMarker = 'set'))
  step('logged in')
})

test('create a site and watch it become Ready without reloading', async () => {
  await page.getByLabel('Slug').fill('Bad Slug!')
  await page.getByLabel('Name').fill(SITE_NAME)
  await page.getByLabel('Slug').fill('Bad Slug!')
  await page.getByRole('button', { name: 'Create site' }).click()
  await expect(page.getByText(/Use lower-case letters/)).toBeVisible()
  await page.getByLabel('Slug').fill(SLUG)
  await shot('sites')
  await page.getByRole('button', { name: 'Create site' }).click()
  await expect(page).toHaveURL(/\/sites\/[0-9a-f-]{36}$/)
  siteId = page.url().split('/').pop()!
  step(`site ${SLUG} created (${siteId}); waiting for Ready`)
  // Progress is shown while it is created: the job, its step and the elapsed time.
  await expect(page.getByTestId('progress')).toBeVisible({ timeout: 120_000 })
  await expect(page.getByTestId('progress')).toContainText('elapsed')
  step(`progress: ${await page.getByTestId('progress').innerText()}`)
  await shot('site-creating')
  const prod = page.locator('tr[data-env="production"]')
  await expect(prod.getByTestId('phase')).toHaveText('active', { timeout: 240_000 })
  await expect(page.locator('h1').getByTestId('phase')).toHaveText('active', { timeout: 60_000 })
  await expectNoReload()
  step('production is active (seen live, no reload)')
  await shot('site-detail')
})

test('open the preview, then WordPress admin through magic login', async () => {
  await page.locator('tr[data-env="production"]').getByRole('link').first().click()
  await expect(page).toHaveURL(/\/environments\//)
  await expect(page.getByRole('heading', { name: 'Desired vs observed' })).toBeVisible()
  await shot('environment-detail')
  const [preview] = await Promise.all([page.waitForEvent('popup'), page.getByTestId('preview').click()])
  await preview.waitForLoadState('domcontentloaded')
  const html = await preview.content()
  expect(html).toMatch(/wp-content|WordPress/)
  step(`preview ${preview.url()} shows WordPress`)
  await preview.close()
  const [admin] = await Promise.all([page.waitForEvent('popup'), page.getByRole('button', { name: 'Open WordPress admin' }).click()])
  await admin.waitForURL(/\/wp-admin\//, { timeout: 30_000 })
  await expect(admin.locator('#wpadminbar')).toBeVisible()
  await expect(admin.locator('body.wp-admin')).toHaveCount(1)
  step(`magic login landed in ${admin.url()}`)
  await admin.screenshot({ path: `${SHOTS}wp-admin.png` })
  await admin.close()
  await expectNoReload()
})

test('create a staging clone and see it become Ready', async () => {
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: SITE_NAME }).click()
  await expect(page.getByRole('heading', { name: 'Environments' })).toBeVisible()
  await page.getByLabel('Name', { exact: true }).fill('Staging')
  await page.getByLabel('Slug', { exact: true }).fill('staging')
  await page.getByRole('button', { name: 'Create environment' }).click()
  const row = page.locator('tr[data-env="staging"]')
  await expect(row).toBeVisible()
  step('staging declared; waiting for Ready')
  await expect(row.getByTestId('phase')).toHaveText('active', { timeout: 240_000 })
  await expectNoReload()
  step('staging is active')
  await shot('site-with-staging')
  await row.getByRole('link').first().click()
  await expect(page.getByRole('heading', { name: /Promote to/ })).toBeVisible()
  // The promotion's gates are shown before Promote can be used: blocked until the drift check ran.
  const promote = page.getByRole('button', { name: 'Promote', exact: true })
  await expect(promote).toBeDisabled()
  await page.getByRole('button', { name: 'Check gates (dry run)' }).click()
  await expect(page.getByTestId('drift-gate')).toBeVisible({ timeout: 60_000 })
  const gate = await page.getByTestId('drift-gate').innerText()
  step(`promotion drift gate: ${gate}`)
  if (gate.includes('clean')) await expect(promote).toBeEnabled()
  else await expect(promote).toBeDisabled()
  await shot('environment-staging')
})

test('apply a YAML manifest after reviewing its diff', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Apply YAML' }).click()
  const yaml = [
    'apiVersion: pressluft.dev/v1',
    'kind: Environment',
    'metadata:',
    '  name: production',
    'spec:',
    `  site: ${SLUG}`,
    '  type: production',
    '  fastcgi_cache_ttl_seconds: 900',
    '',
  ].join('\n')
  await page.getByLabel('Manifests').fill(yaml)
  const apply = page.getByTestId('apply')
  await expect(apply).toBeDisabled()
  await page.getByRole('button', { name: 'Preview changes (dry run)' }).click()
  const diff = page.getByTestId('diff')
  await expect(diff).toContainText('fastcgi_cache_ttl_seconds')
  await expect(diff).toContainText('900')
  await expect(apply).toBeEnabled()
  step(`diff: ${(await diff.innerText()).replace(/\s+/g, ' ')}`)
  await shot('apply-diff')
  // Editing the text invalidates the reviewed diff.
  await page.getByLabel('Manifests').fill(yaml + '\n')
  await expect(apply).toBeDisabled()
  await page.getByRole('button', { name: 'Preview changes (dry run)' }).click()
  await expect(apply).toBeEnabled()
  await apply.click()
  await expect(page.getByRole('status').filter({ hasText: 'Applied' })).toContainText('1 changed')
  const r = await page.request.get(`/api/sites/${siteId}/environments`)
  const prod = (await r.json()).items.find((e: { environment_type: string }) => e.environment_type === 'production')
  expect(prod.fastcgi_cache_ttl_seconds).toBe(900)
  step('applied; the environment has the new TTL')
  await shot('apply-done')
})

test("see a failing job's log", async () => {
  await page.goto('/sites') // a deliberate page load: mark again
  await page.evaluate(() => ((window as unknown as { __pressluftMarker?: string }).__pressluftMarker = 'set'))
  await page.getByRole('link', { name: SITE_NAME }).click()
  await page.locator('tr[data-env="staging"]').getByRole('link').first().click()
  await page.getByLabel('Source type').selectOption('upload')
  await page.getByLabel('Source', { exact: true }).fill('http://127.0.0.1:9/missing-release.tar.gz')
  await page.getByRole('button', { name: 'Deploy', exact: true }).click()
  await expect(page.getByRole('status').filter({ hasText: 'Release declared' })).toBeVisible()
  step('deploy of a missing archive declared; waiting for its job to fail')
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click()
  await page.getByLabel('Status').selectOption('failed')
  const failed = page.locator('tr', { hasText: 'env_deploy' }).first()
  await expect(failed).toBeVisible({ timeout: 180_000 })
  await shot('jobs')
  await failed.getByRole('link').first().click()
  await expect(page.getByRole('heading', { name: /env_deploy/ })).toBeVisible()
  await expect(page.getByTestId('job-error')).toBeVisible()
  const log = page.getByTestId('log')
  await expect(log).toContainText(/TASK|PLAY|fatal|failed/i)
  step(`job error: ${await page.getByTestId('job-error').innerText()}`)
  await shot('job-failed')
  await expectNoReload()
})

test('the other screens work against the API', async () => {
  const nav = page.getByRole('navigation', { name: 'Main' })
  await nav.getByRole('link', { name: 'Nodes' }).click()
  await expect(page.locator('main h2').getByTestId('phase').first()).toHaveText('active')
  await shot('nodes')
  await nav.getByRole('link', { name: 'Events' }).click()
  await expect(page.locator('.timeline li').first()).toBeVisible()
  await expect(page.locator('.timeline')).toContainText('PhaseChanged')
  await shot('events')
  await nav.getByRole('link', { name: 'Settings' }).click()
  await expect(page.getByLabel('A backup is fresh for (minutes)')).toBeVisible()
  await shot('settings')
  await nav.getByRole('link', { name: 'API tokens' }).click()
  await page.getByLabel('New token name').fill(`browser ${suffix}`)
  await page.getByRole('button', { name: 'Create token' }).click()
  await expect(page.getByTestId('new-token')).not.toBeEmpty()
  const row = page.locator('tr', { hasText: `browser ${suffix}` })
  await row.getByRole('button', { name: 'Revoke' }).click()
  await page.getByRole('dialog').getByTestId('confirm').click()
  await expect(row).toContainText('revoked')
  await shot('tokens')
  // A phone: the navigation collapses behind a menu button.
  await nav.getByRole('link', { name: 'Sites' }).click()
  await expect(page.locator(`tr[data-site="${SLUG}"]`)).toBeVisible()
  await page.setViewportSize({ width: 390, height: 844 })
  await expect(page.getByRole('button', { name: 'Menu' })).toBeVisible()
  await expect(nav).toBeHidden()
  await shot('phone-sites')
  await page.getByRole('button', { name: 'Menu' }).focus()
  await page.keyboard.press('Enter')
  await expect(nav).toBeVisible()
  await expect(page.getByRole('button', { name: 'Menu' })).toHaveAttribute('aria-expanded', 'true')
  await shot('phone-menu')
  await page.setViewportSize({ width: 1366, height: 900 })
  await expectNoReload()
  step('nodes, events, settings, tokens, phone layout')
})

test('log out', async () => {
  await page.getByRole('button', { name: 'Log out' }).click()
  await expect(page).toHaveURL(/\/login/)
  expect((await page.request.get('/api/sites')).status()).toBe(401)
  step(`logged out; the API answers 401 (expected 401 console lines ignored: ${expected401s})`)
  expect(problems).toEqual([])
})
