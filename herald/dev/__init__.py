"""`herald dev`: the local trial — demo data, a mail catcher, and the Inbox page to watch it."""
