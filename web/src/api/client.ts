// The API client: types generated from openapi/openapi.yaml (schema.d.ts, `npm run gen`), the
// runtime is openapi-fetch. Every request carries the CSRF proof; a 401 sends the user to login.
import createClient from 'openapi-fetch'
import type { components, paths } from './schema'

export type Schemas = components['schemas']
export type Site = Schemas['Site']
export type Environment = Schemas['Environment']
export type Job = Schemas['Job']
export type PEvent = Schemas['Event']
export type Node = Schemas['Node']
export type Condition = Schemas['Condition']
export type Release = Schemas['Release']
export type Backup = Schemas['Backup']
export type Domain = Schemas['Domain']
export type Promotion = Schemas['Promotion']
export type ApiToken = Schemas['ApiToken']
export type Settings = Schemas['Settings']
export type ApplyPlan = Schemas['ApplyPlan']
export type ApplyReceipt = Schemas['ApplyReceipt']
export type Metrics = Schemas['Metrics']

export const api = createClient<paths>({
  baseUrl: '/api',
  headers: { 'X-Pressluft-CSRF': '1' },
  credentials: 'same-origin',
})

let unauthorized: (() => void) | undefined
export function onUnauthorized(f: () => void) {
  unauthorized = f
}

api.use({
  onResponse({ request, response }) {
    if (response.status === 401 && !new URL(request.url).pathname.endsWith('/api/login')) unauthorized?.()
    return response
  },
})

/** An API failure: the stable `code`, the server's message, and the field it names, if any. */
export class ApiError extends Error {
  constructor(
    public code: string,
    message: string,
    public status: number,
    public details?: Record<string, unknown>,
  ) {
    super(message)
  }
  get field(): string | undefined {
    const f = this.details?.field
    return typeof f === 'string' ? f : undefined
  }
}

type Result<T> = { data?: T; error?: unknown; response: Response }

/** Awaits an openapi-fetch call: its data, or an ApiError with the body's code and message. */
export async function call<T>(p: Promise<Result<T>>): Promise<T> {
  let r: Result<T>
  try {
    r = await p
  } catch (e) {
    throw new ApiError('network', String(e), 0)
  }
  if (r.response.ok) return r.data as T
  const body = (r.error ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> }
  throw new ApiError(body.code ?? `http_${r.response.status}`, body.message ?? r.response.statusText, r.response.status, body.details)
}

/** Every item of a paged list (lists are oldest first), up to `max` items. */
export async function all<T>(
  page: (cursor?: string) => Promise<Result<{ items: T[]; next_cursor?: string }>>,
  max = 2000,
): Promise<T[]> {
  const out: T[] = []
  let cursor: string | undefined
  do {
    const p = await call(page(cursor))
    out.push(...p.items)
    cursor = p.next_cursor
  } while (cursor && out.length < max)
  return out
}
