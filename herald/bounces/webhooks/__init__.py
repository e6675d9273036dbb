"""Mail services' webhooks (SES through SNS, SendGrid, Mailgun, Postmark): each call
authenticated as its service documents, its bounce and complaint events fed to the same
ingest as a bounce by mail."""
