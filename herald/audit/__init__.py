"""The audit log: who did what to what, and when, written in the action's own transaction."""
