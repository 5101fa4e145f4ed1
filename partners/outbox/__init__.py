"""The transactional outbox: `services` (enqueue, deliver, dispatch, retry now) and `handlers`
(what each operation does at the partner). Import from the submodules; this package stays
import-light so `partners.models` can be loaded before it."""
