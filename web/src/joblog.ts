// Follows a job's log: /api/jobs/{id}/log/stream sends the whole log from the start on every
// connection (so a reconnect starts over) and ends when the job has finished.
import { onUnmounted, ref, type Ref } from 'vue'

export function useJobLog() {
  const text = ref('')
  const following = ref(false)
  let source: EventSource | null = null
  function stop() {
    source?.close()
    source = null
    following.value = false
  }
  function follow(jobId: string, finished: () => boolean | Promise<boolean>) {
    stop()
    text.value = ''
    const s = new EventSource(`/api/jobs/${jobId}/log/stream`)
    source = s
    following.value = true
    s.onopen = () => (text.value = '')
    s.onmessage = (m) => {
      try {
        text.value += (JSON.parse(m.data) as { text: string }).text
      } catch {
        /* keep-alive or malformed piece */
      }
    }
    s.onerror = async () => {
      // The stream ended (job finished) or the connection dropped: stop once the job is over.
      if (source !== s) return
      if (s.readyState === EventSource.CLOSED || (await finished())) stop()
    }
  }
  onUnmounted(stop)
  return { text, following, follow, stop }
}

/** The step a running Ansible log is at: its last `TASK [...]` line. */
export function currentStep(log: Ref<string> | string): string {
  const t = typeof log === 'string' ? log : log.value
  const m = [...t.matchAll(/^TASK \[([^\]]*)\]/gm)]
  return m.length ? m[m.length - 1][1] : ''
}
