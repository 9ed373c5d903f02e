"""Everything that leaves PushHub for the outside world, and the work that drives it.

- Fan-out: ``scheduler`` claims due runs, ``dispatcher`` sends each run in chunks,
  ``retry_policy`` decides backoff, ``status_signal`` wakes status watchers.
- Wire formats: ``payloads`` renders a message for each platform; ``providers``
  speak to Apple, Google, Huawei and Web Push services (or the simulator).
- Registrations: ``verification`` dry-runs tracked registrations, ``webhooks``
  reports on them (reaching client-supplied URLs only through ``address_guard``
  and ``pinned_http``), ``sweeper`` deletes expired ones.
"""
