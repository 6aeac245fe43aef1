import { ref } from 'vue'
import { api, call, type Metrics } from './api/client'
import { startLive, stopLive } from './live'

/** Whether the browser holds a valid session (null: not known yet). */
export const loggedIn = ref<boolean | null>(null)
export const metrics = ref<Metrics | null>(null)

export async function checkSession(): Promise<boolean> {
  try {
    metrics.value = await call(api.GET('/metrics'))
    loggedIn.value = true
    startLive()
  } catch {
    loggedIn.value = false
    stopLive()
  }
  return loggedIn.value
}

export async function login(email: string, password: string) {
  await call(api.POST('/login', { body: { email, password } }))
  loggedIn.value = true
  await checkSession()
}

export async function logout() {
  try {
    await call(api.POST('/logout'))
  } finally {
    loggedIn.value = false
    metrics.value = null
    stopLive()
  }
}
