"""Background jobs users trigger and follow: export, import and bulk update of their tasks."""
