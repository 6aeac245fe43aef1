"""The pre-import backup taken by the import's own job (reconcilers::import): when the control
plane passes `pre_backup_id` (a backup it declared and that is not stored yet), the import module
runs pressluft_backup's create for it in a thread, started before the archive is read - the two
read different things (the live environment; the archive and the staging area) - and waits for it
before anything of the target changes. The stored backup is then the rollback point, and its facts
complete the backup on the control plane (`pre_backup`). One job instead of a backup job and an
import job saves a playbook run and the queue between them; Backup.create is idempotent per backup
id (a stored backup reports its facts again), so a rerun after a crash takes nothing twice."""
from __future__ import annotations

import threading
import types

from ansible.module_utils.pressluft_backup_lib import UUID_RE, Backup, Invalid, Known

REPORTED = ("backup_id", "backup_scope", "backup_checksum", "backup_manifest", "backup_size_bytes",
            "backup_storage_type", "backup_storage_path", "backup_created", "backup_timings_ms")


class PreBackup:
    def __init__(self, module):
        p = module.params
        if not UUID_RE.match(p.get("pre_backup_id") or ""):
            raise Invalid("pre_backup_id must be a UUID")
        if not p.get("pre_backup_storage_path") or not p.get("storage_type"):
            raise Invalid("pre_backup_storage_path and storage_type are required with pre_backup_id")
        params = dict(p, action="create", backup_id=p["pre_backup_id"], backup_scope="full",
                      storage_path=p["pre_backup_storage_path"])
        self.job = Backup(types.SimpleNamespace(params=params, check_mode=module.check_mode))
        self.facts = None
        self.error = None
        self.thread = threading.Thread(target=self._run, name="pre-import-backup", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            changed, more = self.job.create()
            facts = dict(self.job.facts)
            facts.update(more)
            facts["backup_created"] = changed
            self.facts = facts
        except Known as exc:
            self.error = "%s: %s" % (exc.code, exc)
        except Exception as exc:  # pylint: disable=broad-except  # reported by result(), never lost
            self.error = "%s: %s" % (type(exc).__name__, exc)
        finally:
            if self.facts is not None:
                self.facts["backup_timings_ms"] = self.job.timer.done()

    def result(self):
        """Waits for the backup: (its storage, its manifest) - the rollback point. Known
        IMPORT_FAILED when it could not be stored (nothing of the target was changed)."""
        self.thread.join()
        manifest = (self.facts or {}).get("backup_manifest")
        if self.error is not None or not isinstance(manifest, dict) or not self.facts.get("backup_checksum"):
            raise Known("IMPORT_FAILED", "the pre-import backup could not be taken (nothing was changed): %s"
                        % (self.error or "no verified manifest"))
        return self.job.storage, manifest

    def report(self):
        """The backup's facts for the control plane once it is stored, else None (waits)."""
        self.thread.join()
        if self.facts is None or not self.facts.get("backup_checksum"):
            return None
        return {k: self.facts.get(k) for k in REPORTED if k in self.facts}
