import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The dashboard is served by `pressluft serve` (embedded); `npm run dev` proxies the API to it.
export default defineConfig({
  plugins: [vue()],
  build: {
    manifest: true,
    target: 'es2022',
    // Keep the CSP strict: no inline module-preload polyfill script.
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { '/api': { target: process.env.PRESSLUFT_URL ?? 'http://127.0.0.1:8080', changeOrigin: false } },
  },
})
