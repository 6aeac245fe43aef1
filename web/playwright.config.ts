import { defineConfig } from '@playwright/test'

// Browser tests against a running `pressluft serve` (scripts/test-browser.sh starts one and sets
// PRESSLUFT_URL), in Debian's Chromium: never a downloaded browser.
export default defineConfig({
  testDir: './tests',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 240_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  outputDir: '../target/playwright',
  use: {
    baseURL: process.env.PRESSLUFT_URL ?? 'http://127.0.0.1:8080',
    viewport: { width: 1366, height: 900 },
    trace: 'off',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // Preview and wp-admin URLs (<label>.127-0-0-1.sslip.io) reach the local nginx without DNS.
        '--host-resolver-rules=MAP *.sslip.io 127.0.0.1',
      ],
    },
  },
})
