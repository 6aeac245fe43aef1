//! Pure reconcile logic (filled in below).
