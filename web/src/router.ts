import { createRouter, createWebHistory } from 'vue-router'
import LoginView from './views/LoginView.vue'
import SitesView from './views/SitesView.vue'
import { onUnauthorized } from './api/client'
import { checkSession, loggedIn } from './session'
import { stopLive } from './live'

// Route-level code splitting: only login and the sites list are in the initial bundle.
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', name: 'login', component: LoginView, meta: { public: true, title: 'Log in' } },
    { path: '/', redirect: '/sites' },
    { path: '/sites', name: 'sites', component: SitesView, meta: { title: 'Sites' } },
    { path: '/sites/:id', name: 'site', component: () => import('./views/SiteView.vue'), meta: { title: 'Site' } },
    { path: '/environments/:id', name: 'environment', component: () => import('./views/EnvironmentView.vue'), meta: { title: 'Environment' } },
    { path: '/jobs', name: 'jobs', component: () => import('./views/JobsView.vue'), meta: { title: 'Jobs' } },
    { path: '/jobs/:id', name: 'job', component: () => import('./views/JobView.vue'), meta: { title: 'Job' } },
    { path: '/nodes', name: 'nodes', component: () => import('./views/NodesView.vue'), meta: { title: 'Nodes' } },
    { path: '/events', name: 'events', component: () => import('./views/EventsView.vue'), meta: { title: 'Events' } },
    { path: '/apply', name: 'apply', component: () => import('./views/ApplyView.vue'), meta: { title: 'Apply manifests' } },
    { path: '/tokens', name: 'tokens', component: () => import('./views/TokensView.vue'), meta: { title: 'API tokens' } },
    { path: '/settings', name: 'settings', component: () => import('./views/SettingsView.vue'), meta: { title: 'Settings' } },
    { path: '/:rest(.*)*', name: 'notfound', component: () => import('./views/NotFoundView.vue'), meta: { title: 'Not found' } },
  ],
})

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  if (loggedIn.value === null) await checkSession()
  if (!loggedIn.value) return { name: 'login', query: to.fullPath !== '/sites' ? { next: to.fullPath } : {} }
  return true
})

router.afterEach((to) => {
  document.title = `${(to.meta.title as string) ?? 'Pressluft'} · Pressluft`
})

onUnauthorized(() => {
  if (loggedIn.value === false) return
  loggedIn.value = false
  stopLive()
  const here = router.currentRoute.value
  if (!here.meta.public) router.push({ name: 'login', query: { next: here.fullPath, expired: '1' } })
})
