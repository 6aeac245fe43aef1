// Stable API and job error codes → what an operator reads. One map for the whole dashboard.
import { ApiError } from './api/client'

export const messages: Record<string, string> = {
  // API (HTTP) codes
  bad_request: 'Some input is not valid.',
  unauthorized: 'Your session has ended. Please log in again.',
  forbidden: 'This action was refused (missing request proof). Reload the page and try again.',
  not_found: 'It no longer exists (it may have been deleted).',
  conflict: 'Someone changed it in the meantime, or it is in a state that does not allow this. Reload and try again.',
  too_many_attempts: 'Too many failed log-in attempts. Wait a minute and try again.',
  payload_too_large: 'The request is too large.',
  resource_not_failed: 'It has not failed, so there is nothing to reset.',
  reset_validation_failed: 'It cannot be reset right now (a job is running or its node is unreachable).',
  job_not_cancellable: 'The job has already finished; it cannot be cancelled.',
  resource_in_use: 'Another operation on this environment is running. Wait for it to finish.',
  internal: 'The server hit an unexpected error. The details are in the server log.',
  environment_not_active: 'The environment is not active yet; wait until it is Ready.',
  node_unreachable: 'Could not connect to the server (node unreachable).',
  wp_cli_error: 'WordPress on the node could not complete the command.',
  invalid_manifests: 'The manifests have problems; nothing was applied.',
  network: 'The dashboard cannot reach the Pressluft server. Check that it is running.',
  // job codes (jobs.error_code)
  JOB_TIMEOUT: 'The job took too long and was stopped.',
  ANSIBLE_TIMEOUT: 'A step on the node timed out; it will be retried.',
  ANSIBLE_PLAY_ERROR: 'A step on the node failed.',
  ANSIBLE_HOST_FAILED: 'A step on the node failed.',
  ANSIBLE_HOST_UNREACHABLE: 'The node could not be reached over SSH.',
  ANSIBLE_SYNTAX_ERROR: 'The playbook is broken (syntax error); this is a Pressluft bug.',
  ANSIBLE_UNEXPECTED_ERROR: 'The job failed unexpectedly.',
  ANSIBLE_UNKNOWN_EXIT: 'The job ended in an unknown way.',
  HEALTH_CHECK_FAILED: 'The site did not pass its health check after the change; it will be retried.',
  DNS_NOT_POINTING: 'The domain does not point at the node yet: fix its DNS record (A/AAAA).',
  ACME_CHALLENGE_FAILED: "Let's Encrypt could not validate the domain (HTTP challenge).",
  ACME_RATE_LIMITED: "Let's Encrypt rate limit reached; Pressluft retries later.",
  ACME_UNAVAILABLE: 'The certificate authority (ACME) could not be reached.',
  CERTIFICATE_INVALID: 'The uploaded certificate or key is unusable (mismatch, expired, wrong name or encrypted key).',
  BACKUP_DUMP_FAILED: 'The backup could not be made on the node (database dump or file archive).',
  BACKUP_STORAGE_FAILED: 'The backup storage refused or lost the upload.',
  BACKUP_VERIFY_FAILED: 'The stored backup did not match its checksum.',
  RESTORE_CHECKSUM_MISMATCH: 'The backup failed verification; nothing was restored.',
  RESTORE_STORAGE_UNREADABLE: 'The backup cannot be read from its storage.',
  RESTORE_ROLLED_BACK: 'The restored site was unhealthy, so it was rolled back to the pre-restore backup.',
  RESTORE_FAILED: 'The restore failed on the node.',
  PROMOTION_ROLLED_BACK: 'Production was unhealthy after the promotion and was switched back.',
  PROMOTION_FAILED: 'The promotion could not be prepared; production was not changed.',
  RELEASE_SOURCE_UNAVAILABLE: "The release's source (git repository or archive URL) could not be fetched.",
  RELEASE_CHECKSUM_MISMATCH: 'The release archive does not match its pinned checksum.',
  RELEASE_INVALID: 'The release is neither a WordPress root nor a wp-content overlay (or the archive is unsafe).',
  RELEASE_UNHEALTHY: 'The release failed its health check; the previous release serves again.',
  IMPORT_INVALID_ARCHIVE: 'The import archive is not a complete WordPress backup archive.',
  IMPORT_UNSAFE_ARCHIVE: 'The import archive contains unsafe paths or links; nothing was extracted.',
  IMPORT_MISSING_DUMP: 'The import archive holds no WordPress database dump.',
  IMPORT_PREFIX_MISMATCH: 'The dump uses another table prefix than the declared one.',
  IMPORT_TOO_LARGE: 'The import archive is larger than the configured limit.',
  IMPORT_CHECKSUM_MISMATCH: 'The import archive does not match its pinned checksum.',
  IMPORT_SOURCE_UNAVAILABLE: 'The import archive could not be downloaded.',
  IMPORT_UNHEALTHY: 'The imported site was unhealthy and was rolled back.',
  IMPORT_FAILED: 'The import failed on the node.',
  ADOPT_SOURCE_UNREACHABLE: "The source server could not be reached over SSH, or it refused Pressluft's adoption key (authorize the public key for the source user).",
  ADOPT_HOST_KEY_MISMATCH: 'The source server presented another SSH host key than the one pinned when the adoption was declared.',
  ADOPT_NOT_WORDPRESS: 'No WordPress site was found at the source path (wp-config.php, wp-includes/version.php).',
  ADOPT_DATABASE_UNREACHABLE: "The database credentials in the source's wp-config.php do not work on the source.",
  ADOPT_MULTISITE_UNSUPPORTED: 'The source is a WordPress multisite network, which cannot be adopted yet.',
}

/** The login form's own wording for the codes it can meet. */
export const loginMessages: Record<string, string> = {
  unauthorized: 'Wrong e-mail or password.',
  bad_request: 'Enter a valid e-mail address and a password.',
}

/** A job's error message, short: the node's own sentence for the code when the message is a
 * whole log (`CODE: what happened`), else its start. */
export function jobErrorDetail(code: string | null | undefined, message: string | null | undefined): string {
  if (!message) return ''
  if (code) {
    const m = message.match(new RegExp(`${code}: ([^\n'"]+)`))
    if (m) return m[1].trim()
  }
  return message.length > 300 ? `${message.slice(0, 300)}… (see the log)` : message
}

export function humanCode(code: string | null | undefined): string {
  if (!code) return ''
  return messages[code] ?? messages[code.toLowerCase()] ?? `Failed (${code}).`
}

/** A failure as a title (the mapped message) and the server's own specific message. */
export function describe(e: unknown, overrides: Record<string, string> = {}): { code: string; title: string; detail: string } {
  if (e instanceof ApiError) {
    const title = overrides[e.code] ?? humanCode(e.code)
    const detail = e.message && e.message !== title && e.code !== 'internal' ? e.message : ''
    return { code: e.code, title, detail }
  }
  return { code: 'client', title: 'Something went wrong in the dashboard.', detail: String(e) }
}
