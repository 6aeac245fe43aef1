// Live updates: one EventSource on /api/events/stream for the whole app. Views subscribe and
// reload what an event concerns; `now` ticks every second for elapsed times.
import { onUnmounted, ref } from 'vue'
import type { PEvent } from './api/client'

export const connected = ref(false)
export const now = ref(Date.now())
setInterval(() => (now.value = Date.now()), 1000)

type Listener = (e: PEvent) => void
const listeners = new Set<Listener>()
let source: EventSource | null = null
let retry: number | undefined

export function startLive() {
  if (source) return
  source = new EventSource('/api/events/stream')
  source.onopen = () => (connected.value = true)
  source.onmessage = (m) => {
    let ev: PEvent
    try {
      ev = JSON.parse(m.data)
    } catch {
      return
    }
    for (const l of listeners) l(ev)
  }
  source.onerror = () => {
    connected.value = false
    // The browser reconnects by itself unless the answer was not a stream (e.g. 401).
    if (source && source.readyState === EventSource.CLOSED) {
      source = null
      retry = window.setTimeout(startLive, 3000)
    }
  }
}

export function stopLive() {
  clearTimeout(retry)
  source?.close()
  source = null
  connected.value = false
}

/** Calls `f` for every live event while the calling component is mounted. */
export function onLiveEvent(f: Listener) {
  listeners.add(f)
  onUnmounted(() => listeners.delete(f))
}

/** Reloads with `load` (at most every 300 ms) on events `match` accepts; also every `every` ms. */
export function liveReload(load: () => unknown, match: (e: PEvent) => boolean = () => true, every = 15000) {
  let timer: number | undefined
  onLiveEvent((e) => {
    if (!match(e)) return
    clearTimeout(timer)
    timer = window.setTimeout(load, 300)
  })
  const poll = window.setInterval(load, every)
  onUnmounted(() => {
    clearTimeout(timer)
    clearInterval(poll)
  })
}
