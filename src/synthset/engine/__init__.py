"""The distillation engine: one method-independent runner (``runner.run``) that owns a
learned run's state, checkpoints, rollback, averaging, schedule, budget and logging, and
calls a method's ``step``; the compiled fast paths (``fast``); run-directory ownership
(``rundir``)."""
